"""`main.py convert SPEC --out data.npy`: any data the loaders read, written once as an .npy that
trains memory-mapped (app/core/data/mmap.py).

Images whose values are exact multiples of 1/255 (everything read from 8-bit files) are stored as
uint8, 4x smaller than float32 and streamed from disk; other data keeps float32. Labels go to
NAME.labels.npy and their names to NAME.json beside it. Writing goes in chunks into a temporary
file in the same folder, which is fsynced and renamed, so a killed conversion never leaves a
half-written data.npy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from app.core.config import DataConfig
from app.core.data import load_dataset
from app.core.errors import DataError

CHUNK = 65536


def _exact_uint8(x, n: int) -> bool:
    for start in range(0, n, CHUNK):
        part = np.asarray(x[start:start + CHUNK])
        if not np.array_equal(np.round(part * 255).astype(np.uint8).astype(np.float32) / np.float32(255), part):
            return False
    return True


def _write_npy(path: Path, x, dtype) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(x.shape))
        for start in range(0, len(x), CHUNK):
            part = np.asarray(x[start:start + CHUNK])
            out[start:start + len(part)] = np.round(part * 255) if dtype == np.uint8 else part
        out.flush()
        del out
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{path}: could not be written ({exc.strerror or exc}); free some space or choose "
                        f"a writable folder") from None


def convert(data_cfg: DataConfig, out: str | Path) -> dict:
    """Write data_cfg's data to `out` (.npy) with its labels beside it; returns what was written."""
    out = Path(out)
    if out.suffix.lower() != ".npy":
        raise DataError(f"{out.name}: the output must be an .npy file (e.g. data.npy)")
    data = load_dataset(data_cfg)
    images = data.modality == "image"
    dtype = np.uint8 if images and _exact_uint8(data.x, data.n) else np.float32
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_npy(out, data.x, dtype)
    written = {"out": str(out), "shape": list(data.x.shape), "dtype": np.dtype(dtype).name, "labels": None}
    stem = out.name[:-4]
    if data.y is not None:
        labels = out.with_name(stem + ".labels.npy")
        np.save(labels, data.y.astype(np.int64))
        written["labels"] = str(labels)
    meta = {"source": data_cfg.spec, "modality": data.modality, "label_names": data.label_names,
            "normalisation": data.normalisation or None}
    out.with_name(stem + ".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return written
