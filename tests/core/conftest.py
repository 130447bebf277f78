"""Fixtures that write small data files (IDX, images) for the data-loading tests."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import numpy as np
import pytest

MNIST_DIR = Path("/work/shared/data/mnist")


def idx_bytes(array: np.ndarray, magic: int | None = None, dims: tuple[int, ...] | None = None) -> bytes:
    """Raw IDX bytes of a uint8 array; magic and dims can be overridden to write a lying header."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    dims = array.shape if dims is None else dims
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + array.tobytes()


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray | None = None,
              gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    pack = gzip.compress if gz else (lambda b: b)
    path = folder / f"{prefix}-images-idx3-ubyte{suffix}"
    path.write_bytes(pack(idx_bytes(images)))
    if labels is not None:
        (folder / f"{prefix}-labels-idx1-ubyte{suffix}").write_bytes(pack(idx_bytes(labels)))
    return path


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST test set not found in {MNIST_DIR}")
    return MNIST_DIR


@pytest.fixture
def small_idx(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A folder with 12 random 5x4 images and their labels, gzip-compressed."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, 12, dtype=np.uint8)
    folder = tmp_path / "idx"
    write_idx(folder, "train", images, labels, gz=True)
    return folder, images, labels


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def datafiles():
    """The helpers above, for tests (test modules do not import conftest directly)."""
    import types

    return types.SimpleNamespace(idx_bytes=idx_bytes, write_idx=write_idx, png_bytes=png_bytes)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models train much faster on one intra-op thread than on two on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
