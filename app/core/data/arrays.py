""".npy / .npz files, and the checks every loader shares.

Files are always read with `allow_pickle=False`: an object array would need unpickling, which can
run arbitrary code, so it is refused. Before any array is read its header (shape and dtype) is
checked against the bytes the file really holds and against free memory, so a lying header cannot
make us allocate a huge buffer.

How the array `x` is read, by number of dimensions:
    1  (N,)        one tabular feature            -> tabular (N, 1), standardised
    2  (N, D)      tabular                        -> tabular, standardised (mean/std kept)
    3  (N, A, B)   images (N, 1, A, B) when the dtype is uint8/bool or every value is in [0, 1];
                   otherwise a sequence (N, T=A, C=B), kept as it is
    4  (N, C, H, W) images; (N, H, W, C) is transposed when the last axis is 1, 3 or 4 and the
                   second is not
Image values: uint8 / 255, uint16 / 65535, bool as 0/1, other integers in [0, 1] as they are or in
[0, 255] / 255, floats must already be in [0, 1] (anything else is refused, not rescaled).

A .npz holds `x` (or a single array of any name), optionally `y` (N,) labels (integers or strings),
`label_names`, `factors` (N, F) and `factor_names` (F,).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import psutil

from app.core.data.dataset import Dataset
from app.core.errors import DataError

# Deflate cannot compress better than about 1032:1; a member claiming more is lying.
_MAX_DEFLATE_RATIO = 1100
_MAX_HEADER = 10_000


# ----------------------------------------------------------------------------- shared checks

def ensure_memory(nbytes: int, what: str) -> None:
    """Refuse work that cannot fit in free memory, before allocating anything."""
    available = psutil.virtual_memory().available
    if nbytes > available:
        raise DataError(f"{what}: needs about {_human(nbytes)} of memory but only {_human(available)} is free; "
                        f"use a smaller file or fewer samples")


def _human(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:,.0f} {unit}" if unit == "bytes" else f"{nbytes:,.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes} bytes"  # unreachable


def check_finite(x: np.ndarray, where: str, axis_names: tuple[str, ...] = ()) -> None:
    """Refuse NaN/Inf values, saying how many and where the first one is."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    first = np.unravel_index(int(np.argmax(bad)), x.shape)
    if axis_names:
        place = ", ".join(f"{name} {int(i)}" for name, i in zip(axis_names, first))
    else:
        place = f"sample {int(first[0])}" + (f", position {tuple(int(i) for i in first[1:])}" if len(first) > 1 else "")
    raise DataError(f"{where}: {int(bad.sum()):,} NaN/Inf values (first at {place}); remove or fill them first")


def standardise(x: np.ndarray, columns: list[str], where: str) -> tuple[np.ndarray, dict]:
    """Column-wise (x - mean) / std over all rows (std 0 -> 1); returns float32 and the statistics."""
    x64 = x.astype(np.float64, copy=False)
    with np.errstate(all="ignore"):
        mean = x64.mean(axis=0)
        std = x64.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        out = ((x64 - mean) / std).astype(np.float32)
    if not (np.isfinite(out).all() and np.isfinite(mean).all() and np.isfinite(std).all()):
        bad = [columns[i] for i in np.nonzero(~(np.isfinite(out).all(axis=0) & np.isfinite(mean) & np.isfinite(std)))[0]]
        raise DataError(f"{where}: values in column {', '.join(bad[:5])} are too large to standardise "
                        f"(beyond about 1e300); rescale them first")
    return out, {"mean": mean.tolist(), "std": std.tolist(), "columns": list(columns)}


def to_unit_images(a: np.ndarray, where: str) -> np.ndarray:
    """Image array of any numeric dtype -> float32 in [0, 1] (see the module docstring for the rules)."""
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / np.float32(65535)
    if a.size == 0:
        return a.astype(np.float32)
    if a.dtype.kind == "f":
        check_finite(a, where)
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0 and hi <= 1:
        return a.astype(np.float32)
    if a.dtype.kind in "iu" and lo >= 0 and hi <= 255:
        return a.astype(np.float32) / np.float32(255)
    raise DataError(f"{where}: image values range over [{lo:g}, {hi:g}]; scale them to [0, 1] "
                    f"(or save them as uint8 0..255)")


def parse_image_shape(text: str) -> tuple[int, int, int] | None:
    """'28x28' -> (1, 28, 28); '1x28x28', '3x32x32' as given (C x H x W); '' -> None."""
    text = (text or "").strip().lower().replace(" ", "")
    if not text:
        return None
    try:
        dims = tuple(int(p) for p in text.split("x"))
    except ValueError:
        dims = ()
    if len(dims) not in (2, 3) or any(d < 1 for d in dims) or (len(dims) == 3 and dims[0] not in (1, 3, 4)):
        from app.core.errors import ConfigError
        raise ConfigError(f"image_shape = {text!r}: give HxW or CxHxW with 1, 3 or 4 channels, e.g. 28x28 or 3x32x32")
    return (1, *dims) if len(dims) == 2 else dims


def rows_as_images(a: np.ndarray, shape: tuple[int, int, int], where: str) -> np.ndarray:
    """(N, D) rows -> float32 (N, C, H, W) images in [0, 1]; D must be C*H*W, values in [0, 1] (or 0..255 integers)."""
    flat = a.reshape(len(a), -1)
    if flat.shape[1] != int(np.prod(shape)):
        raise DataError(f"{where}: rows of {flat.shape[1]} values cannot be {'x'.join(map(str, shape))} images "
                        f"({int(np.prod(shape))} values); fix --image-shape")
    return np.ascontiguousarray(to_unit_images(flat, where).reshape(len(flat), *shape))


def flat_image_hint(a: np.ndarray) -> list[str]:
    """A hint when (N, D) rows look like flattened grayscale images: D a perfect square, values in [0, 1]."""
    flat = a.reshape(len(a), -1)
    side = int(round(np.sqrt(flat.shape[1])))
    if side < 4 or side * side != flat.shape[1] or flat.dtype.kind not in "fiub" or not np.isfinite(flat).all():
        return []
    if float(flat.min()) < 0 or float(flat.max()) > 1:
        return []
    return [f"{flat.shape[1]} columns in [0, 1]: --image-shape {side}x{side} would read each row as a "
            f"{side}x{side} image (BCE loss, image views)"]


def labels_from_values(values: np.ndarray, where: str, names: list[str] | None = None
                       ) -> tuple[np.ndarray, list[str]]:
    """Labels of any kind -> (int64 y, label_names). Small non-negative integers keep their value."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise DataError(f"{where}: labels must be one-dimensional, got shape {values.shape}")
    if values.dtype.kind == "b":
        values = values.astype(np.int64)
    if values.dtype.kind == "f":
        check_finite(values, where, ("label",))
        if np.all(values == np.round(values)):
            values = values.astype(np.int64)
    if values.dtype.kind in "iu" and len(values) and values.min() >= 0 and values.max() < 100_000:
        y = values.astype(np.int64)
        count = int(y.max()) + 1
        if names is not None:
            if len(names) < count:
                raise DataError(f"{where}: {len(names)} label names for labels up to {count - 1}; "
                                f"give one name per label")
            return y, [str(n) for n in names]
        return y, [str(i) for i in range(count)]
    if values.dtype.kind not in "iufU":
        raise DataError(f"{where}: labels of type {values.dtype} are not supported; use integers or strings")
    unique, y = np.unique(values, return_inverse=True)
    return y.astype(np.int64).reshape(-1), [str(u) for u in unique]


# ----------------------------------------------------------------------------- reading

def _header_of(fp, where: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Read an .npy header from an open binary file: (shape, fortran_order, dtype, header length)."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=_MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=_MAX_HEADER)
        elif version == (3, 0) and hasattr(np.lib.format, "_read_array_header"):
            shape, fortran, dtype = np.lib.format._read_array_header(fp, version, max_header_size=_MAX_HEADER)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as exc:  # noqa: BLE001 - numpy's header parser fails in many ways on hostile bytes
        raise DataError(f"{where}: not a valid .npy array ({_short(exc)})") from None
    if dtype.hasobject:
        raise DataError(f"{where}: holds Python objects, which would need unpickling (refused for safety); "
                        f"save plain numeric arrays")
    return tuple(int(d) for d in shape), bool(fortran), dtype, fp.tell()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _check_kind(dtype: np.dtype, where: str, allow_strings: bool) -> None:
    if dtype.names is not None:
        raise DataError(f"{where}: structured arrays (fields {', '.join(dtype.names)}) are not supported; "
                        f"save one plain numeric array")
    ok = "biuf" + ("U" if allow_strings else "")
    if dtype.kind not in ok:
        raise DataError(f"{where}: arrays of type {dtype} are not supported; use numbers")


def _read_member(fp, where: str, available_bytes: int, allow_strings: bool = False) -> np.ndarray:
    """Read one .npy stream after checking its header against the bytes really there."""
    shape, fortran, dtype, header_len = _header_of(fp, where)
    _check_kind(dtype, where, allow_strings)
    count = int(np.prod(shape, dtype=object))
    declared = count * dtype.itemsize
    if declared > available_bytes - header_len:
        raise DataError(f"{where}: header declares shape {shape} ({declared:,} bytes) but the file holds only "
                        f"{max(available_bytes - header_len, 0):,}; the file is truncated or corrupt")
    ensure_memory(declared + count * 4, f"{where} (shape {shape})")
    try:
        data = fp.read(declared)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{where}: could not be read ({_short(exc)}); the file is truncated or corrupt") from None
    if len(data) != declared:
        raise DataError(f"{where}: holds {len(data):,} bytes of data where its header declares {declared:,}; "
                        f"the file is truncated or corrupt")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")


def read_npy(path: Path) -> np.ndarray:
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path.name}: the file is empty")
    with open(path, "rb") as fp:
        return _read_member(fp, path.name, size)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every member of a .npz, each checked before it is read."""
    name = path.name
    if path.stat().st_size == 0:
        raise DataError(f"{name}: the file is empty")
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - zipfile fails in many ways on hostile bytes
        if isinstance(exc, MemoryError):
            raise
        raise DataError(f"{name}: not a valid .npz (zip) file ({_short(exc)})") from None
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            where = f"{name}[{key}]"
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise DataError(f"{where}: inconsistent sizes in the zip directory; the file is corrupt")
            if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024:
                raise DataError(f"{where}: claims {info.file_size:,} bytes from {info.compress_size:,} compressed; "
                                f"the file is corrupt")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise DataError(f"{where}: unsupported zip compression (method {info.compress_type}); "
                                f"save it with numpy.savez or numpy.savez_compressed")
            try:
                with archive.open(info) as fp:
                    arrays[key] = _read_member(fp, where, info.file_size, allow_strings=True)
            except (DataError, MemoryError):
                raise
            except Exception as exc:  # noqa: BLE001 - zipfile/zlib fail in many ways on hostile bytes
                raise DataError(f"{where}: could not be read ({_short(exc)}); the file is corrupt") from None
    if not arrays:
        raise DataError(f"{name}: the archive holds no arrays; save at least an array named x")
    return arrays


# ----------------------------------------------------------------------------- interpreting

def dataset_from_array(a: np.ndarray, where: str, image_shape: tuple | None = None) -> tuple[np.ndarray, str, dict]:
    """(x, modality, normalisation) for an array of any supported rank (see module docstring);
    image_shape (C, H, W) reads (N, D) rows as images instead of a table."""
    _check_kind(a.dtype, where, allow_strings=False)
    if a.ndim == 0 or a.ndim > 4:
        raise DataError(f"{where}: an array with {a.ndim} dimensions (shape {a.shape}) is not supported; "
                        f"use (N, D) tabular, (N, T, C) sequences or (N, C, H, W) images")
    if a.shape[0] == 0:
        raise DataError(f"{where}: the array holds no samples (shape {a.shape})")
    if 0 in a.shape[1:]:
        raise DataError(f"{where}: every sample is empty (shape {a.shape})")
    if a.ndim <= 2:
        a = a.reshape(len(a), -1)
        if a.dtype.kind == "f":
            check_finite(a, where, ("sample", "column"))
        if image_shape is not None:
            return rows_as_images(a, image_shape, where), "image", {}
        x, norm = standardise(a, [f"x{i}" for i in range(a.shape[1])], where)   # in float64, then float32
        return x, "tabular", norm
    if image_shape is not None:
        raise DataError(f"{where}: holds {a.ndim}-D samples already (shape {a.shape}); --image-shape applies to "
                        f"flat (N, D) rows only, so leave it empty")
    if a.ndim == 3:
        is_image = a.dtype in (np.uint8, np.bool_)
        if not is_image:
            if a.dtype.kind == "f":
                check_finite(a, where, ("sample", "row", "column"))
            is_image = bool(a.min() >= 0 and a.max() <= 1)
        if is_image:
            return to_unit_images(a, where)[:, None, :, :], "image", {}
        x = a.astype(np.float32)
        check_finite(x, where, ("sample", "step", "channel"))
        return x, "sequence", {}
    if a.shape[3] in (1, 3, 4) and a.shape[1] not in (1, 3, 4):
        a = a.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(to_unit_images(a, where)), "image", {}


def load_npy(path: Path, image_shape: tuple | None = None) -> Dataset:
    a = read_npy(path)
    x, modality, norm = dataset_from_array(a, path.name, image_shape)
    return Dataset(name=path.name, spec=str(path), x=x, modality=modality, normalisation=norm,
                   hints=flat_image_hint(a) if modality == "tabular" else [])


def load_npz(path: Path, image_shape: tuple | None = None) -> Dataset:
    name = path.name
    arrays = read_npz(path)
    if "x" in arrays:
        key = "x"
    else:
        numeric = [k for k, v in arrays.items() if v.dtype.kind in "biuf"]
        if len(numeric) != 1:
            raise DataError(f"{name}: no array named x (found {', '.join(sorted(arrays)) or 'none'}); "
                            f"save the samples as x, e.g. numpy.savez(file, x=data, y=labels)")
        key = numeric[0]
    x, modality, norm = dataset_from_array(arrays[key], f"{name}[{key}]", image_shape)
    hints = flat_image_hint(arrays[key]) if modality == "tabular" else []
    n = len(x)

    y = label_names = None
    names = arrays.get("label_names")
    if names is not None:
        names = [str(v) for v in np.asarray(names).reshape(-1)]
    if "y" in arrays:
        if arrays["y"].ndim != 1 or len(arrays["y"]) != n:
            raise DataError(f"{name}[y]: shape {arrays['y'].shape} does not match {n:,} samples; "
                            f"give one label per sample")
        y, label_names = labels_from_values(arrays["y"], f"{name}[y]", names)

    factors = factor_names = None
    if "factors" in arrays:
        f = arrays["factors"]
        _check_kind(f.dtype, f"{name}[factors]", allow_strings=False)
        if f.ndim == 1:
            f = f[:, None]
        if f.ndim != 2 or len(f) != n or f.shape[1] == 0:
            raise DataError(f"{name}[factors]: shape {arrays['factors'].shape} should be ({n}, F), "
                            f"one row of factor values per sample")
        factors = f.astype(np.float32)
        check_finite(factors, f"{name}[factors]", ("sample", "factor"))
        if "factor_names" in arrays:
            factor_names = [str(v) for v in np.asarray(arrays["factor_names"]).reshape(-1)]
            if len(factor_names) != factors.shape[1]:
                raise DataError(f"{name}[factor_names]: {len(factor_names)} names for {factors.shape[1]} factors; "
                                f"give one name per factor column")
        else:
            factor_names = [f"factor{i}" for i in range(factors.shape[1])]
    return Dataset(name=name, spec=str(path), x=x, modality=modality, y=y, label_names=label_names,
                   factors=factors, factor_names=factor_names, normalisation=norm, hints=hints)

