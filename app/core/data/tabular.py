""".csv files: numeric columns, an optional label column, standardised.

Reading rules:
- UTF-8 with or without a byte-order mark (other 8-bit text is read as Latin-1; UTF-16 is refused).
- The separator is whichever of `,` `;` tab `|` splits the first row into the most fields (one
  column when none does). With a separator other than `,`, a decimal comma (`1,5`) is read as 1.5.
- The first row is a header unless every field in it is a number (then columns are col1, col2, ...).
- Quoted numbers ("1.5") are numbers. Blank lines are ignored.
- Refused with the line (as an editor counts it) and column named: rows with a different number of
  fields than the header, missing values (empty, NA, N/A, NaN, null, None, ?), text in a feature
  column, infinite values. Nothing is ever imputed or dropped silently.
- Each feature column is standardised ((v - mean) / std, std 0 -> 1); the statistics are kept in
  `normalisation` = {"mean": [...], "std": [...], "columns": [...]}. The loader uses every row;
  training refits them on the training split alone (app/core/data/splits.py) and model.json keeps those.
- With DataConfig.image_shape (e.g. 28x28) the rows are images instead: values in [0, 1] (or 0..255
  integers), not standardised. Without it, rows that look like flattened images get a hint.
- The label column (DataConfig.label_column) may hold text or numbers; its distinct values, sorted
  (numerically when all are numbers), become label_names and y indexes them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from app.core.data.arrays import ensure_memory, flat_image_hint, rows_as_images, standardise
from app.core.data.dataset import Dataset
from app.core.errors import DataError

SEPARATORS = (",", ";", "\t", "|")
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# Python lists of strings cost tens of bytes per field: refuse files that cannot fit that way.
_MEMORY_PER_FILE_BYTE = 30


def _decode(raw: bytes, name: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{name}: the file is UTF-16 text; save it as UTF-8 CSV")
    if b"\x00" in raw:
        raise DataError(f"{name}: contains NUL bytes, so it is a binary file, not CSV text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _pick_separator(text: str) -> str:
    first = next((line for line in io.StringIO(text) if line.strip()), "")
    best, best_fields = ",", 1
    for sep in SEPARATORS:
        try:
            fields = len(next(csv.reader([first], delimiter=sep, skipinitialspace=True), []))
        except csv.Error:
            continue
        if fields > best_fields:
            best, best_fields = sep, fields
    return best


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _show(text: str, limit: int = 40) -> str:
    """A user's column name or value, safe for a one-line message."""
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sep_name(sep: str) -> str:
    return {"\t": "tab"}.get(sep, repr(sep))


def load_csv(path: Path, label_column: str = "", image_shape: tuple | None = None) -> Dataset:
    """A CSV as a standardised table, or, with image_shape (C, H, W), its rows as images in [0, 1]."""
    name = path.name
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{name}: the file is empty")
    ensure_memory(size * _MEMORY_PER_FILE_BYTE, name)
    text = _decode(path.read_bytes(), name)
    sep = _pick_separator(text)

    rows: list[list[str]] = []
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, skipinitialspace=True, strict=False)
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{name}: line {reader.line_num + 1}: cannot be parsed as CSV ({exc})") from None
    if not rows:
        raise DataError(f"{name}: the file holds no rows (only blank lines)")

    first = [f.strip() for f in rows[0]]
    if all(_is_number(f) for f in first):
        header = [f"col{i + 1}" for i in range(len(first))]
        data, data_lines = rows, lines
    else:
        header = [f or f"col{i + 1}" for i, f in enumerate(first)]
        data, data_lines = rows[1:], lines[1:]
    if not data:
        raise DataError(f"{name}: has a header but no data rows")
    width = len(header)
    for row, line in zip(data, data_lines):
        if len(row) != width:
            raise DataError(f"{name}: line {line} has {len(row)} fields but the header has {width} "
                            f"(separator {_sep_name(sep)}); every row needs the same number of fields")

    label_index = None
    if label_column:
        wanted = label_column.strip()
        matches = [i for i, h in enumerate(header) if h == wanted]
        if not matches:
            matches = [i for i, h in enumerate(header) if h.lower() == wanted.lower()]
        if len(matches) != 1:
            why = "no column" if not matches else "more than one column"
            shown = ", ".join(_show(h) for h in header[:30]) + (", ..." if len(header) > 30 else "")
            raise DataError(f"{name}: {why} named {label_column!r} for the labels; the columns are: {shown}")
        label_index = matches[0]
    feature_index = [i for i in range(width) if i != label_index]
    if not feature_index:
        raise DataError(f"{name}: no feature columns besides the label column {label_column!r}")

    columns = [_numeric_column(name, header[j], [row[j] for row in data], data_lines, sep) for j in feature_index]
    x = np.stack(columns, axis=1)                                  # (N, D) float64
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = np.unravel_index(int(np.argmax(bad)), x.shape)
        raise DataError(f"{name}: {int(bad.sum()):,} infinite values (first at line {data_lines[r]}, column "
                        f"'{_show(header[feature_index[c]])}'); remove or replace them")
    feature_names = [header[j] for j in feature_index]
    hints: list[str] = []
    if image_shape is not None:
        x, normalisation, modality = rows_as_images(x, image_shape, name), {}, "image"
    else:
        hints = flat_image_hint(x)
        x, normalisation = standardise(x, feature_names, name)
        modality = "tabular"

    y = label_names = None
    if label_index is not None:
        y, label_names = _labels(name, header[label_index], [row[label_index] for row in data], data_lines)
    return Dataset(name=name, spec=str(path), x=x, modality=modality, y=y, label_names=label_names,
                   normalisation=normalisation, hints=hints)


def _numeric_column(name: str, column: str, values: list[str], lines: list[int], sep: str) -> np.ndarray:
    try:
        out = np.array(values, dtype=np.float64)
    except ValueError:
        out = None
    if out is not None:
        nan = np.isnan(out)
        if not nan.any():
            return out
        r = int(np.argmax(nan))
        raise DataError(f"{name}: line {lines[r]}, column '{_show(column)}': missing value ('{_show(values[r].strip())}'); "
                        f"fill or remove it (missing values are never imputed)")
    out = np.empty(len(values), dtype=np.float64)
    for r, raw in enumerate(values):
        text = raw.strip()
        if text.lower() in MISSING_TOKENS:
            raise DataError(f"{name}: line {lines[r]}, column '{_show(column)}': missing value"
                            f"{' (' + repr(_show(text)) + ')' if text else ''}; fill or remove it (missing values are never imputed)")
        try:
            out[r] = float(text)
            continue
        except ValueError:
            pass
        try:
            if sep == ",":
                raise ValueError
            out[r] = float(text.replace(",", "."))
        except ValueError:
            raise DataError(f"{name}: column '{_show(column)}' is not numeric (line {lines[r]} holds '{_show(text)}'); "
                            f"remove the column or name it as the label column") from None
    return out


def _labels(name: str, column: str, values: list[str], lines: list[int]) -> tuple[np.ndarray, list[str]]:
    texts = [v.strip() for v in values]
    for r, t in enumerate(texts):
        if t.lower() in MISSING_TOKENS - {"none"} or not t:
            raise DataError(f"{name}: line {lines[r]}, label column '{_show(column)}': missing label; every row needs one")
    unique = sorted(set(texts))
    if all(_is_number(t) for t in unique):
        unique.sort(key=float)
    index = {t: i for i, t in enumerate(unique)}
    return np.array([index[t] for t in texts], dtype=np.int64), unique
