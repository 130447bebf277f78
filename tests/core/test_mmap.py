"""Memory-mapped data (app/core/data/mmap.py), streamed batches and the converter (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.convert import convert
from app.core.data import load_dataset
from app.core.data.mmap import MappedImages
from app.core.data.streaming import batch_source
from app.core.errors import DataError
from app.core.session import prepare_training
from app.core.trainer import train_to_end
from tests.core.conftest import write_idx


def _images(n=300, seed=0):
    return (np.random.default_rng(seed).random((n, 12, 10)) * 255).astype(np.uint8)


def test_npy_memory_mapped_matches_in_memory(tmp_path):
    a = _images()
    np.save(tmp_path / "d.npy", a)
    np.save(tmp_path / "d.labels.npy", np.arange(len(a)) % 7)
    mapped = load_dataset(DataConfig(spec=str(tmp_path / "d.npy"), memory_map="on"))
    memory = load_dataset(DataConfig(spec=str(tmp_path / "d.npy"), memory_map="off"))
    assert isinstance(mapped.x, MappedImages) and not isinstance(memory.x, MappedImages)
    assert mapped.x.shape == memory.x.shape == (300, 1, 12, 10)
    assert np.array_equal(mapped.x[:], memory.x)
    assert np.array_equal(mapped.x[np.array([7, 2, 299])], memory.x[[7, 2, 299]])
    assert list(mapped.y[:8]) == [0, 1, 2, 3, 4, 5, 6, 0]
    view = mapped.subset(np.arange(50, 60))
    assert isinstance(view.x, MappedImages) and np.array_equal(view.x[:], memory.x[50:60])


def test_raw_idx_memory_mapped_and_gzip_refused(tmp_path):
    a = _images(40)
    write_idx(tmp_path / "raw", "train", a, np.arange(40, dtype=np.uint8) % 10)
    ds = load_dataset(DataConfig(spec=str(tmp_path / "raw"), memory_map="on"))
    assert isinstance(ds.x, MappedImages)
    assert np.array_equal(ds.x[:], a[:, None].astype(np.float32) / 255) and ds.y[3] == 3
    write_idx(tmp_path / "gz", "train", a, gz=True)
    with pytest.raises(DataError, match="gzip-compressed IDX cannot be memory-mapped"):
        load_dataset(DataConfig(spec=str(tmp_path / "gz"), memory_map="on"))
    assert not isinstance(load_dataset(DataConfig(spec=str(tmp_path / "gz"))).x, MappedImages)  # auto: in memory


def test_float_npy_refused_with_the_fix(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((5, 4, 4), np.float32))
    with pytest.raises(DataError, match="main.py convert"):
        load_dataset(DataConfig(spec=str(tmp_path / "f.npy"), memory_map="on"))


def test_streamed_batches_cover_every_sample_once(tmp_path):
    a = _images(103)
    np.save(tmp_path / "d.npy", a)
    x = load_dataset(DataConfig(spec=str(tmp_path / "d.npy"), memory_map="on")).x
    source = batch_source(x, torch.device("cpu"), 10)
    order = torch.randperm(103, generator=torch.Generator().manual_seed(0))
    batches = list(source.epoch(order))
    assert len(batches) == source.steps_per_epoch == 11
    memory = torch.as_tensor(a[:, None].astype(np.float32) / 255)
    for i, batch in enumerate(batches):   # each batch holds the permutation's samples (sorted for reading)
        expected = memory[torch.sort(order[i * 10:(i + 1) * 10]).values]
        assert torch.equal(batch, expected)


def test_training_on_mapped_data_equals_in_memory(tmp_path):
    np.save(tmp_path / "d.npy", _images(200))
    results = []
    for mode in ("off", "on"):
        prepared = prepare_training(DataConfig(spec=str(tmp_path / "d.npy"), memory_map=mode),
                                    ModelConfig(kind="ae", latent_dim=3, hidden=(16,)),
                                    TrainConfig(epochs=2, batch_size=200, seed=1))
        assert train_to_end(prepared.trainer).reason == "completed"
        results.append([h.train_loss for h in prepared.trainer.history])
    # one batch per epoch: the same samples in another order within the batch, the same mean loss
    assert np.allclose(results[0], results[1], rtol=1e-5)


def test_convert_mnist_round_trip(tmp_path, mnist_dir):
    written = convert(DataConfig(spec=str(mnist_dir)), tmp_path / "mnist.npy")
    assert written["dtype"] == "uint8" and written["shape"] == [10000, 1, 28, 28]
    original = load_dataset(DataConfig(spec=str(mnist_dir)))
    mapped = load_dataset(DataConfig(spec=str(tmp_path / "mnist.npy"), memory_map="on"))
    assert np.array_equal(mapped.x[:500], original.x[:500]) and np.array_equal(mapped.y, original.y)
    assert not list(tmp_path.glob(".*partial"))


def test_convert_keeps_float_data(tmp_path):
    written = convert(DataConfig(spec="sines", n_samples=20), tmp_path / "s.npy")
    assert written["dtype"] == "float32" and np.load(tmp_path / "s.npy").shape == (20, 64, 3)
    with pytest.raises(DataError, match="must be an .npy"):
        convert(DataConfig(spec="digits"), tmp_path / "x.csv")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="measures /proc/self/statm (Linux)")
def test_mapped_pages_are_released_as_measured(tmp_path, monkeypatch):
    """Reading every sample of a 48 MB file in shuffled batches keeps the process's resident file
    pages within the release budget (4 MB here) plus a batch: the growth is measured, so it holds
    whatever the kernel maps per fault (an estimate per sample was 10x short on Linux 6.18)."""
    from app.core.data import mmap as mapped_module

    n = 60_000
    path = tmp_path / "big.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 28, 28))
    out[:] = 7
    out.flush()
    del out
    monkeypatch.setattr(mapped_module, "RELEASE_BYTES", 4 * 2**20)
    images = load_dataset(DataConfig(spec=str(path), memory_map="on")).x
    assert isinstance(images, MappedImages)
    pages = mapped_module.RESIDENT_FILE_PAGES
    images[:10]
    pages.released()                      # the baseline: the libraries' pages, none of the file's
    baseline = pages.current()
    worst = 0
    order = np.random.default_rng(0).permutation(n)
    for start in range(0, n, 256):
        batch = images[np.sort(order[start:start + 256])]
        assert batch.shape == (len(batch), 1, 28, 28) and float(batch[0, 0, 0, 0]) == pytest.approx(7 / 255)
        worst = max(worst, pages.current() - baseline)
    assert worst < 4 * 2**20 + 8 * 2**20, f"resident file pages grew by {worst / 2**20:.0f} MB"
