"""IDX files, the format MNIST (and Fashion-MNIST, KMNIST, EMNIST) ships in, parsed by hand.

Format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte (0x08 = unsigned byte),
a byte giving the number of dimensions, then one big-endian uint32 per dimension, then the data.
Images are 0x00000803 (N, H, W); labels are 0x00000801 (N,). Files may be gzip-compressed.

Which files are loaded:
- a path to one images file (`*-images-idx3-ubyte[.gz]`, also `*-images.idx3-ubyte`) loads it, with
  its labels file (`images` replaced by `labels`, idx3 by idx1) when that exists beside it;
- a folder loads every images file in it, in alphabetical order of file name, concatenated (so the
  MNIST folder with train and t10k gives all 70,000); labels are used when every images file has its
  labels file, otherwise none are (and the dataset's `skipped` says why). Point at a single file to
  load only that one.

Every size in the header is checked against the bytes really there before anything is allocated:
a gzip stream is decompressed in chunks and never beyond the declared size + 1 byte.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import psutil

from app.core.data.arrays import ensure_memory
from app.core.data.dataset import Dataset
from app.core.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_IMAGES_RE = re.compile(r"^(?P<pre>.*)images(?P<mid>[-.]idx)3(?P<post>-ubyte(\.gz)?)$", re.IGNORECASE)
_ANY_IDX_RE = re.compile(r"idx[13]-ubyte(\.gz)?$", re.IGNORECASE)
_CHUNK = 1 << 20


def is_idx_name(name: str) -> bool:
    return bool(_ANY_IDX_RE.search(name))


def is_images_name(name: str) -> bool:
    return bool(_IMAGES_RE.match(name))


def labels_path_for(images: Path) -> Path | None:
    """The labels file beside an images file (raw or gzip), or None."""
    m = _IMAGES_RE.match(images.name)
    if not m:
        return None
    stem = f"{m['pre']}labels{m['mid']}1-ubyte"
    for candidate in (stem, stem + ".gz"):
        for p in images.parent.iterdir():
            if p.name.lower() == candidate.lower() and p.is_file():
                return p
    return None


def _read_exact(stream, n: int, path: Path, what: str) -> bytes:
    """Read exactly n bytes in chunks, so a lying size never allocates more than the stream holds."""
    parts, got = [], 0
    while got < n:
        chunk = stream.read(min(_CHUNK, n - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    data = b"".join(parts)
    if len(data) < n:
        raise DataError(f"{path.name}: truncated: {what} needs {n:,} bytes but the file holds only {len(data):,}")
    return data


def _count_bytes(stream, cap: int) -> int:
    """How many bytes the stream holds, up to cap, without keeping them."""
    got = 0
    while got < cap:
        chunk = stream.read(min(_CHUNK, cap - got))
        if not chunk:
            break
        got += len(chunk)
    return got


def read_idx(path: Path, expect_magic: int) -> np.ndarray:
    """The uint8 array of one IDX file, after checking magic, dimensions and sizes."""
    kind = "images" if expect_magic == IMAGES_MAGIC else "labels"
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            head = stream.read(4)
            if len(head) < 4:
                raise DataError(f"{path.name}: too short to be an IDX file ({len(head)} bytes)")
            magic = struct.unpack(">I", head)[0]
            if magic != expect_magic:
                raise DataError(f"{path.name}: wrong magic number 0x{magic:08x} (IDX {kind} files start with "
                                f"0x{expect_magic:08x}); is this an MNIST-format {kind} file?")
            ndim = expect_magic & 0xFF
            dims = struct.unpack(f">{ndim}I", _read_exact(stream, 4 * ndim, path, "the header"))
            if any(d == 0 for d in dims):
                raise DataError(f"{path.name}: header declares an empty array {dims}; the file holds no data")
            declared = int(np.prod(dims, dtype=object))
            shape_text = "x".join(map(str, dims))
            if not gzipped:
                actual = path.stat().st_size - 4 - 4 * ndim
                if actual != declared:
                    problem = "truncated" if actual < declared else "longer than its header says"
                    raise DataError(f"{path.name}: {problem}: header declares {shape_text} = "
                                    f"{declared:,} bytes of data but the file holds {actual:,}")
            elif declared * 5 > psutil.virtual_memory().available:
                # Too big to hold: count what the stream really holds (discarding it) so a lying header
                # is reported as such, not as a memory problem.
                actual = _count_bytes(stream, declared)
                if actual < declared:
                    raise DataError(f"{path.name}: truncated: header declares {shape_text} = {declared:,} bytes "
                                    f"of data but the file holds {actual:,}")
                stream.seek(4 + 4 * ndim)
            ensure_memory(declared * 5, f"{path.name} (header declares {shape_text})")
            data = _read_exact(stream, declared, path, f"{shape_text} {kind}")
            if gzipped and stream.read(1):
                raise DataError(f"{path.name}: longer than its header says ({shape_text}); "
                                f"the file is corrupt")
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise DataError(f"{path.name}: corrupt or truncated gzip/IDX file ({reason[:160]})") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _short_name(images: Path) -> str:
    return re.sub(r"[-.]idx3-ubyte(\.gz)?$", "", images.name, flags=re.IGNORECASE)


def load_idx(path: Path) -> Dataset:
    """An IDX images file, or a folder of them (see the module docstring for which files)."""
    skipped: list[str] = []
    if path.is_dir():
        images = sorted((p for p in path.iterdir() if p.is_file() and is_images_name(p.name)),
                        key=lambda p: p.name)
        if not images:
            others = sorted(p.name for p in path.iterdir() if is_idx_name(p.name))
            raise DataError(f"{path.name}: no IDX images file (*-images-idx3-ubyte[.gz]) in the folder"
                            + (f" (found only {', '.join(others)})" if others else ""))
        name = _short_name(images[0]) if len(images) == 1 else path.name
    else:
        if not is_images_name(path.name):
            raise DataError(f"{path.name}: not an IDX images file name (expected *-images-idx3-ubyte[.gz]); "
                            f"give an images file or the folder holding it")
        images = [path]
        name = _short_name(path)

    arrays, labels = [], []
    for img_path in images:
        a = read_idx(img_path, IMAGES_MAGIC)
        if arrays and a.shape[1:] != arrays[0].shape[1:]:
            raise DataError(f"{img_path.name}: images are {a.shape[1]}x{a.shape[2]} but {images[0].name} has "
                            f"{arrays[0].shape[1]}x{arrays[0].shape[2]}; load one file at a time")
        arrays.append(a)
        lab_path = labels_path_for(img_path)
        if lab_path is None:
            labels.append(None)
            continue
        lab = read_idx(lab_path, LABELS_MAGIC)
        if len(lab) != len(a):
            raise DataError(f"{lab_path.name}: {len(lab):,} labels for {len(a):,} images in {img_path.name}; "
                            f"the counts must match")
        labels.append(lab)

    ensure_memory(sum(a.size for a in arrays) * 4, f"{path.name}")
    x = np.concatenate(arrays).astype(np.float32)[:, None, :, :] / np.float32(255)
    y = label_names = None
    if all(lab is not None for lab in labels):
        y = np.concatenate(labels).astype(np.int64)
        label_names = [str(i) for i in range(int(y.max()) + 1)]
    elif any(lab is not None for lab in labels):
        missing = [p.name for p, lab in zip(images, labels) if lab is None]
        skipped.append(f"labels: not used, because {', '.join(missing)} has no labels file beside it")
    return Dataset(name=name, spec=str(path), x=np.ascontiguousarray(x), modality="image", y=y,
                   label_names=label_names, skipped=skipped)
