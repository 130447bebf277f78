"""Denoising and inpainting: corrupt held-out samples, pass them through the model, measure PSNR.

Any model can be asked; a denoising autoencoder was trained for exactly this. Three corruptions:
- "gaussian": add N(0, level^2) noise (clipped back to [0, 1] for data in that range);
- "mask": zero a random fraction `level` of the values (the denoising AE's masking noise);
- "block": zero one square block per image whose side is `level` times the image side (for
  sequences a window of `level` of the time steps, for tabular rows a run of `level` of the columns).

PSNR = 10 log10(data_range^2 / MSE) per sample, data_range 1 for data in [0, 1]; identical samples
give +inf. For masked corruptions `inpainted` keeps the known values and takes only the missing ones
from the model, which is how inpainting is usually judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.errors import ConfigError, DataError

CORRUPTIONS = ("gaussian", "mask", "block")
PSNR_CAP = 100.0    # dB used in means when a sample is restored exactly (its own PSNR is +inf)


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Per-sample PSNR in dB: (N,) float64, +inf where the sample is identical."""
    reference = np.asarray(reference, np.float64).reshape(len(reference), -1)
    test = np.asarray(test, np.float64).reshape(len(test), -1)
    if reference.shape != test.shape:
        raise ValueError(f"PSNR of arrays of different shapes {reference.shape} and {test.shape}")
    mse = ((reference - test) ** 2).mean(axis=1)
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10.0 * np.log10(data_range ** 2 / np.where(mse > 0, mse, 1.0)), np.inf)


def mean_psnr(values: np.ndarray, cap: float = PSNR_CAP) -> float:
    return float(np.minimum(np.asarray(values, np.float64), cap).mean())


def corrupt(x: np.ndarray, kind: str = "gaussian", level: float = 0.3, seed: int = 0,
            clip: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(corrupted copy of x, mask of the values removed or None for additive noise)."""
    if kind not in CORRUPTIONS:
        raise ConfigError(f"corruption {kind!r} is not one of {', '.join(CORRUPTIONS)}")
    if not 0.0 <= level <= (10.0 if kind == "gaussian" else 1.0):
        raise ConfigError(f"corruption level {level} is out of range for {kind}")
    x = np.asarray(x, np.float32)
    rng = np.random.default_rng(seed)
    if clip is None:
        clip = bool(x.size and x.min() >= 0.0 and x.max() <= 1.0)
    if kind == "gaussian":
        out = x + np.float32(level) * rng.standard_normal(x.shape).astype(np.float32)
        return (np.clip(out, 0.0, 1.0) if clip else out), None
    if kind == "mask":
        mask = rng.random(x.shape) < level
    else:
        mask = _block_mask(x.shape, level, rng)
    out = x.copy()
    out[mask] = 0.0
    return out, mask


def _block_mask(shape: tuple, level: float, rng) -> np.ndarray:
    mask = np.zeros(shape, bool)
    n = shape[0]
    if len(shape) == 4:                                    # (N, C, H, W): a square
        h, w = shape[2], shape[3]
        side = int(round(level * min(h, w)))
        if side == 0:
            return mask
        top = rng.integers(0, h - side + 1, n)
        left = rng.integers(0, w - side + 1, n)
        for i in range(n):
            mask[i, :, top[i]:top[i] + side, left[i]:left[i] + side] = True
        return mask
    length = shape[1]                                      # (N, T, C) time window, or (N, D) column run
    span = int(round(level * length))
    if span == 0:
        return mask
    start = rng.integers(0, length - span + 1, n)
    for i in range(n):
        mask[i, start[i]:start[i] + span] = True
    return mask


@dataclass
class Restoration:
    original: np.ndarray        # (n, *shape)
    corrupted: np.ndarray
    restored: np.ndarray        # the model's reconstruction of the corrupted input
    inpainted: np.ndarray | None  # known values kept, missing ones from `restored` (mask/block only)
    mask: np.ndarray | None
    psnr_corrupted: np.ndarray  # (n,) vs original
    psnr_restored: np.ndarray
    psnr_inpainted: np.ndarray | None
    data_range: float

    def summary(self) -> dict:
        out = {"psnr_corrupted": mean_psnr(self.psnr_corrupted), "psnr_restored": mean_psnr(self.psnr_restored),
               "n": int(len(self.original)), "data_range": self.data_range}
        if self.psnr_inpainted is not None:
            out["psnr_inpainted"] = mean_psnr(self.psnr_inpainted)
        return out


def restore(model, x: np.ndarray, kind: str = "gaussian", level: float = 0.3, seed: int = 0,
            data_range: float | None = None) -> Restoration:
    """Corrupt x, reconstruct it with the model, and score both against the original."""
    from app.core.session import reconstruct

    x = np.asarray(x, np.float32)
    if len(x) == 0:
        raise DataError("no samples to corrupt")
    if data_range is None:
        unit = bool(x.min() >= 0.0 and x.max() <= 1.0)
        data_range = 1.0 if unit else float(x.max() - x.min()) or 1.0
    corrupted, mask = corrupt(x, kind, level, seed)
    restored = reconstruct(model, corrupted)
    inpainted = None if mask is None else np.where(mask, restored, corrupted).astype(np.float32)
    return Restoration(
        original=x, corrupted=corrupted, restored=restored, inpainted=inpainted, mask=mask,
        psnr_corrupted=psnr(x, corrupted, data_range), psnr_restored=psnr(x, restored, data_range),
        psnr_inpainted=None if inpainted is None else psnr(x, inpainted, data_range), data_range=data_range)
