"""Corruptions and PSNR with known answers; restoration through a real (tiny) model."""

import numpy as np
import pytest

from app.core.analysis.restoration import corrupt, mean_psnr, psnr, restore


def test_psnr_of_identical_is_inf_and_constant_offset_is_known():
    x = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float32)
    assert np.all(np.isinf(psnr(x, x)))
    assert psnr(x, x + 0.1) == pytest.approx([20.0] * 3, abs=1e-4)       # 10 log10(1 / 0.01)
    assert psnr(x, x + 0.5, data_range=2.0) == pytest.approx([12.0412] * 3, abs=1e-3)
    assert mean_psnr(psnr(x, x)) == 100.0


def test_corruptions():
    x = np.full((20, 1, 10, 10), 0.5, np.float32)
    noisy, mask = corrupt(x, "gaussian", 0.2, seed=0)
    assert mask is None and noisy.min() >= 0 and noisy.max() <= 1 and abs(float((noisy - x).std()) - 0.2) < 0.02
    masked, mask = corrupt(x, "mask", 0.3, seed=0)
    assert abs(mask.mean() - 0.3) < 0.03 and np.all(masked[mask] == 0) and np.all(masked[~mask] == 0.5)
    blocked, mask = corrupt(x, "block", 0.4, seed=0)
    assert np.all(mask.reshape(20, -1).sum(1) == 16)                       # a 4x4 square in each image
    seq, mask = corrupt(np.ones((5, 10, 2), np.float32), "block", 0.5)
    assert np.all(mask.sum(axis=(1, 2)) == 10)


def test_restore_with_a_model_returns_side_by_side_arrays():
    from app.core.config import ModelConfig
    from app.core.data import load_dataset
    from app.core.config import DataConfig
    from app.core.session import make_model

    data = load_dataset(DataConfig(spec="digits"))
    model = make_model(ModelConfig(kind="denoising", latent_dim=4, hidden=(16,)), data, seed=0)
    result = restore(model, data.x[:8], "block", 0.5, seed=0)
    assert result.original.shape == result.corrupted.shape == result.restored.shape == result.inpainted.shape
    assert np.all(result.inpainted[~result.mask] == result.corrupted[~result.mask])
    summary = result.summary()
    assert set(summary) >= {"psnr_corrupted", "psnr_restored", "psnr_inpainted"} and summary["data_range"] == 1.0
