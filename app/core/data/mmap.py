"""Data larger than memory: `.npy` and raw (uncompressed) IDX images read memory-mapped.

`MappedImages` stands in for `Dataset.x` (float32, (N, C, H, W), values in [0, 1]) without reading
the file: indexing it with an int, a slice or an index array reads only those samples from disk
(np.load(mmap_mode="r") / np.memmap) and converts them to float32; `take_rows` makes a lazy view of
a subset (the training split of two million images stays on disk). The trainer streams batches from
it with a background prefetch (app/core/data/streaming.py) instead of moving the set to the device.

Pages a read touches stay mapped and count as the process's resident memory, so once the process's
resident file pages have grown by `RELEASE_BYTES` the mapping is told to drop them (madvise
MADV_DONTNEED; the kernel's page cache keeps the file warm). The growth is *measured*
(/proc/self/statm, after each batch-sized read), not estimated from the bytes asked for: how much a
fault maps depends on the kernel (fault-around, large page-cache folios). Estimating 2 pages per
784-byte sample was right on one kernel (331 MB above idle on a 1.5 GB file) and 10x short on
Linux 6.18, where the file's pages filled 1.4 GB of resident memory between two releases. Where
there is no /proc (macOS, Windows) the estimate is all there is. That is what keeps training on a
1.5 GB file far below 1 GB resident.

When: DataConfig.memory_map = "on" always for these files, "off" never, "auto" when the float32
data would take more than a quarter of the free memory. Labels: IDX labels files beside the images
(small, read into memory); for an `.npy`, `NAME.labels.npy` beside it, as `main.py convert` writes.
"""

from __future__ import annotations

import json
import mmap as _mmap
import threading
from pathlib import Path

import numpy as np
import psutil

from app.core.data.dataset import Dataset
from app.core.errors import DataError

RELEASE_BYTES = 128 * 1024 * 1024   # growth of resident file pages before ours are dropped again
CHECK_BYTES = 256 * 1024            # samples' bytes (estimated) read between two looks at statm
_PAGE = 4096
_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.bool_): 1.0}


class MappedImages:
    """A read-only float32 image array backed by one or more on-disk integer arrays.

    parts: memory-mapped arrays (N_i, H, W) or (N_i, C, H, W), all of one sample layout;
    rows: optional index map (a lazy subset); channels_last: parts are (N, H, W, C)."""

    dtype = np.dtype(np.float32)

    def __init__(self, parts: list[np.memmap], rows: np.ndarray | None = None, channels_last: bool = False,
                 sample_shape: tuple[int, ...] | None = None):
        self._parts = parts
        self._starts = np.cumsum([0] + [len(p) for p in parts])
        self._rows = rows
        self._channels_last = channels_last
        self._scale = np.float32(_SCALE[parts[0].dtype])
        first = parts[0].shape[1:]
        if sample_shape is None:
            sample_shape = (1, *first) if len(first) == 2 else ((first[2], first[0], first[1]) if channels_last else first)
        self._sample_shape = tuple(int(s) for s in sample_shape)
        self._read_bytes = 0
        self._lock = threading.Lock()
        # A sample lies on at most ceil(bytes / page) + 1 pages; that many stay mapped per read.
        self._pages_per_sample = (int(np.prod(parts[0].shape[1:])) * parts[0].dtype.itemsize) // _PAGE + 2
        advise_random(parts)
        RESIDENT_FILE_PAGES.start()

    # --- the ndarray surface the rest of the app uses --------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self._sample_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self._sample_shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * 4

    def __len__(self) -> int:
        return int(self._starts[-1]) if self._rows is None else len(self._rows)

    def min(self) -> float:
        return 0.0   # integer images scaled by their dtype's full range lie in [0, 1]

    def max(self) -> float:
        return 1.0

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._read(np.array([int(key) % len(self)]))[0]
        if isinstance(key, slice):
            return self._read(np.arange(*key.indices(len(self))))
        idx = np.asarray(key)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        return self._read(idx.astype(np.int64).reshape(-1))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        from app.core.data.arrays import ensure_memory

        ensure_memory(self.nbytes, "the memory-mapped data")
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def take_rows(self, idx: np.ndarray) -> "MappedImages":
        """A lazy subset: nothing is read until it is indexed."""
        idx = np.asarray(idx, dtype=np.int64)
        rows = idx if self._rows is None else self._rows[idx]
        return MappedImages(self._parts, rows, self._channels_last, self._sample_shape)

    # --- reading ------------------------------------------------------------------------------
    def read_raw(self, idx: np.ndarray) -> np.ndarray:
        """The samples at idx in their stored dtype, laid out (n, C, H, W); sorted reads are faster."""
        rows = idx if self._rows is None else self._rows[idx]
        if len(self._parts) == 1:
            raw = self._parts[0][rows]
        else:
            which = np.searchsorted(self._starts, rows, side="right") - 1
            raw = np.empty((len(rows), *self._parts[0].shape[1:]), self._parts[0].dtype)
            for p in np.unique(which):
                mask = which == p
                raw[mask] = self._parts[p][rows[mask] - self._starts[p]]
        if self._channels_last:
            raw = raw.transpose(0, 3, 1, 2)
        self._note_read(len(rows) * self._pages_per_sample * _PAGE)
        return raw.reshape(len(rows), *self._sample_shape)

    def to_float(self, raw: np.ndarray) -> np.ndarray:
        out = raw.astype(np.float32)
        out /= self._scale
        return out

    def _read(self, idx: np.ndarray) -> np.ndarray:
        return self.to_float(self.read_raw(idx))

    def _note_read(self, nbytes: int) -> None:
        with self._lock:
            self._read_bytes += nbytes
            if self._read_bytes < CHECK_BYTES:   # a single sample (the window's previews) skips the look
                return
            nbytes, self._read_bytes = self._read_bytes, 0
        if RESIDENT_FILE_PAGES.over_budget(nbytes):
            release_pages(self._parts)
            RESIDENT_FILE_PAGES.released()


class _ResidentFilePages:
    """The process's resident file-backed pages (statm's third field: file and shared memory), and
    whether they have grown by RELEASE_BYTES since the last release. One per process: every lazy
    subset of every mapped file shares it, as they share the resident set."""

    def __init__(self):
        self._lock = threading.Lock()
        self._baseline: int | None = None
        self._estimated = 0          # bytes read since the last release, for systems without statm

    @staticmethod
    def current() -> int | None:
        try:
            with open("/proc/self/statm", "rb") as handle:
                return int(handle.read().split()[2]) * _mmap.PAGESIZE
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> None:
        with self._lock:
            if self._baseline is None:
                self._baseline = self.current()

    def over_budget(self, nbytes: int) -> bool:
        with self._lock:
            self._estimated += nbytes
            now = self.current()
            if now is None or self._baseline is None:
                return self._estimated >= RELEASE_BYTES
            return now - self._baseline >= RELEASE_BYTES

    def released(self) -> None:
        with self._lock:
            self._estimated = 0
            self._baseline = self.current()


RESIDENT_FILE_PAGES = _ResidentFilePages()


def advise_random(parts: list[np.memmap]) -> None:
    """Batches read scattered samples: no read-ahead, and no mapping of the neighbouring cached pages
    on each fault (which would count a whole 64 KiB per 784-byte sample as resident)."""
    for part in parts:
        handle = getattr(part, "_mmap", None)
        if handle is not None and hasattr(_mmap, "MADV_RANDOM"):
            try:
                handle.madvise(_mmap.MADV_RANDOM)
            except (OSError, ValueError):
                pass   # advice only: without it reading works the same, with more resident pages


def release_pages(parts: list[np.memmap]) -> None:
    """Drop this process's mapped pages of the files (they stay in the kernel's page cache)."""
    for part in parts:
        handle = getattr(part, "_mmap", None)
        if handle is not None and hasattr(_mmap, "MADV_DONTNEED"):
            try:
                handle.madvise(_mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                pass   # an old kernel without madvise: pages stay, nothing breaks


def is_mapped(x) -> bool:
    return isinstance(x, MappedImages)


def take_rows(x, idx: np.ndarray):
    """x[idx] for arrays; a lazy view for memory-mapped data (nothing is read)."""
    return x.take_rows(idx) if is_mapped(x) else x[idx]


def should_map(path: Path, float_bytes: int, mode: str) -> bool:
    if mode == "on":
        return True
    if mode == "off":
        return False
    return float_bytes > psutil.virtual_memory().available // 4


# ----------------------------------------------------------------------------- opening files

def open_npy(path: Path, image_shape: tuple[int, ...] | None = None) -> Dataset:
    """A memory-mapped .npy of integer images: (N, H, W), (N, C, H, W), (N, H, W, C), or (N, D) with
    image_shape; labels from NAME.labels.npy and names from NAME.json when they are beside it."""
    from app.core.data.arrays import _header_of

    where = path.name
    with open(path, "rb") as fp:
        shape, fortran, dtype, offset = _header_of(fp, where)
    if fortran:
        raise DataError(f"{where}: stored in Fortran order, which cannot be streamed by sample; "
                        f"save it C-ordered (numpy's default) or load it into memory (--memory-map off)")
    if dtype not in _SCALE:
        raise DataError(f"{where}: memory-mapped reading takes uint8, uint16 or bool images, not {dtype}; "
                        f"run `main.py convert {where} --out data.npy` or use --memory-map off")
    count = int(np.prod(shape, dtype=object))
    if count * dtype.itemsize > path.stat().st_size - offset:
        raise DataError(f"{where}: header declares shape {shape} but the file is shorter; it is truncated")
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    channels_last = False
    if len(shape) == 2:
        if image_shape is None or int(np.prod(image_shape)) != shape[1]:
            raise DataError(f"{where}: flat rows of {shape[1]} values; give --image-shape (e.g. 28x28) to stream "
                            f"them as images, or load the table into memory (--memory-map off)")
        sample = tuple(image_shape) if len(image_shape) == 3 else (1, *image_shape)
        x = MappedImages([mapped], sample_shape=sample)
    elif len(shape) in (3, 4):
        channels_last = len(shape) == 4 and shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4)
        x = MappedImages([mapped], channels_last=channels_last)
    else:
        raise DataError(f"{where}: shape {shape} is not an image array (N, H, W) or (N, C, H, W)")
    y, label_names = _sidecar_labels(path, len(x))
    return Dataset(name=path.name, spec=str(path), x=x, modality="image", y=y, label_names=label_names)


def _sidecar_labels(path: Path, n: int) -> tuple[np.ndarray | None, list[str] | None]:
    labels = path.with_name(path.name[:-4] + ".labels.npy")
    if not labels.is_file():
        return None, None
    from app.core.data.arrays import labels_from_values, read_npy

    values = read_npy(labels)
    if values.ndim != 1 or len(values) != n:
        raise DataError(f"{labels.name}: {values.shape} labels for {n:,} samples; give one label per sample")
    names = None
    meta = path.with_name(path.name[:-4] + ".json")
    if meta.is_file() and meta.stat().st_size < 1_000_000:
        try:
            names = json.loads(meta.read_text(encoding="utf-8")).get("label_names")
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise DataError(f"{meta.name}: not valid JSON; delete it or write it again with main.py convert") from None
    return labels_from_values(values, labels.name, names)


def open_idx(images: list[Path], name: str, spec: str) -> Dataset:
    """Raw IDX images files memory-mapped (labels read into memory); gzip files cannot be mapped."""
    from app.core.data.idx import IMAGES_MAGIC, LABELS_MAGIC, labels_path_for, read_idx

    parts, labels = [], []
    for path in images:
        with open(path, "rb") as fp:
            head = fp.read(16)
        if head[:2] == b"\x1f\x8b":
            raise DataError(f"{path.name}: gzip-compressed IDX cannot be memory-mapped; unpack it (gunzip) or run "
                            f"`main.py convert {path.parent} --out data.npy`, or use --memory-map off")
        if len(head) < 16 or int.from_bytes(head[:4], "big") != IMAGES_MAGIC:
            raise DataError(f"{path.name}: not an IDX images file (wrong magic number)")
        dims = tuple(int.from_bytes(head[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
        if path.stat().st_size - 16 != int(np.prod(dims)):
            raise DataError(f"{path.name}: header declares {'x'.join(map(str, dims))} images but the file size "
                            f"differs; it is truncated or corrupt")
        if parts and dims[1:] != parts[0].shape[1:]:
            raise DataError(f"{path.name}: images are {dims[1]}x{dims[2]} but {images[0].name} has "
                            f"{parts[0].shape[1]}x{parts[0].shape[2]}; load one file at a time")
        parts.append(np.memmap(path, dtype=np.uint8, mode="r", offset=16, shape=dims))
        lab = labels_path_for(path)
        labels.append(None if lab is None else read_idx(lab, LABELS_MAGIC))
    y = label_names = None
    if all(lab is not None for lab in labels):
        y = np.concatenate(labels).astype(np.int64)
        if len(y) != sum(len(p) for p in parts):
            raise DataError(f"{name}: the labels files hold {len(y):,} labels for {sum(len(p) for p in parts):,} images")
        label_names = [str(i) for i in range(int(y.max()) + 1)]
    return Dataset(name=name, spec=spec, x=MappedImages(parts), modality="image", y=y, label_names=label_names)


def maybe_mapped_npy(path: Path, cfg, image_shape) -> Dataset | None:
    """The memory-mapped Dataset when cfg.memory_map asks for it (auto: when it is large), else None."""
    mode = getattr(cfg, "memory_map", "auto")
    if mode == "off":
        return None
    if mode == "auto" and not should_map(path, path.stat().st_size * 4, mode):
        return None
    return open_npy(path, image_shape)


def maybe_mapped_idx(path: Path, cfg) -> Dataset | None:
    """Raw IDX images (a file or a folder of them) memory-mapped when cfg.memory_map asks for it."""
    from app.core.data.idx import _short_name, is_images_name

    mode = getattr(cfg, "memory_map", "auto")
    if mode == "off":
        return None
    if path.is_dir():
        images = sorted((p for p in path.iterdir() if p.is_file() and is_images_name(p.name)), key=lambda p: p.name)
        name = _short_name(images[0]) if len(images) == 1 else path.name
    else:
        images, name = [path], _short_name(path)
    gzipped = any(p.name.lower().endswith(".gz") for p in images)
    if mode == "auto" and (gzipped or not should_map(path, sum(p.stat().st_size for p in images) * 4, mode)):
        return None
    return open_idx(images, name, str(path))
