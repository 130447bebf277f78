"""What each latent dimension means: statistics, traversals, interpolation, prior samples.

Used by the window's traversal view and by `export --traversal`; returns numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from app.core.session import decode

ACTIVE_THRESHOLD = 0.01  # Burda et al. (2016): a unit is active if Cov_x(E_q[z_d]) > 0.01


@dataclass
class DimensionStats:
    order: np.ndarray          # dimension indices, most informative first
    kl: np.ndarray | None      # (K,) mean KL per dimension in nats (VAE kinds)
    variance: np.ndarray       # (K,) variance of the (mean) codes over samples
    active: np.ndarray         # (K,) bool, Burda et al.'s activity criterion
    mean: np.ndarray           # (K,) mean code
    std: np.ndarray            # (K,) std of the codes (at least a small floor)


_last_stats: tuple = (lambda: None, None, None)   # (weakref to codes, weakref to logvar or None, DimensionStats)


def dimension_stats(codes: np.ndarray, logvar: np.ndarray | None = None) -> DimensionStats:
    """Per-dimension statistics of an encoding. The last result is kept for the same arrays (by
    identity: an encoding's arrays are never modified): the window asks for them on every slider move
    and from several views, which at 1,000,000 codes cost about a second each time."""
    global _last_stats
    import weakref

    codes_ref, logvar_ref, cached = _last_stats
    same_logvar = logvar is None if logvar_ref is None else logvar_ref() is logvar
    if cached is not None and codes_ref() is codes and same_logvar:
        return cached
    stats = _dimension_stats(codes, logvar)
    try:
        _last_stats = (weakref.ref(codes), None if logvar is None else weakref.ref(logvar), stats)
    except TypeError:   # not an ndarray (a list): nothing to key the cache on
        pass
    return stats


def _dimension_stats(codes: np.ndarray, logvar: np.ndarray | None = None) -> DimensionStats:
    codes = np.asarray(codes, dtype=np.float64)
    variance = codes.var(axis=0) if len(codes) > 1 else np.zeros(codes.shape[1])
    kl = None
    if logvar is not None:
        logvar = np.asarray(logvar, dtype=np.float64)
        # KL(q(z_d|x) || N(0,1)) averaged over samples (Kingma & Welling 2014, appendix B).
        kl = (0.5 * (codes ** 2 + np.exp(logvar) - 1.0 - logvar)).mean(axis=0)
    key = kl if kl is not None else variance
    order = np.argsort(-key, kind="stable")
    return DimensionStats(order=order, kl=kl, variance=variance, active=variance > ACTIVE_THRESHOLD,
                          mean=codes.mean(axis=0), std=np.maximum(np.sqrt(variance), 1e-3))


@dataclass
class TraversalGrid:
    images: np.ndarray   # (D, S, *input_shape) decoded outputs, one row per traversed dimension
    dims: np.ndarray     # (D,) which dimension each row moves
    values: np.ndarray   # (D, S) the value that dimension takes in each column


def traversal_grid(model, base: np.ndarray, steps: int = 9, span: float = 3.0, codes: np.ndarray | None = None,
                   logvar: np.ndarray | None = None, dims: np.ndarray | None = None,
                   max_dims: int = 16) -> TraversalGrid:
    """Move one dimension at a time from `base`. VAE kinds move over +/- span prior standard
    deviations; deterministic kinds over +/- span standard deviations of the data's codes."""
    k = model.latent_dim
    base = np.asarray(base, dtype=np.float32).reshape(k)
    if codes is not None and len(codes) > 1:
        stats = dimension_stats(codes, logvar)
        order, std, centre = stats.order, stats.std, stats.mean
    else:
        order, std, centre = np.arange(k), np.ones(k), np.zeros(k)
    if model.variational:
        std, centre = np.ones(k), np.zeros(k)
    dims = np.asarray(order[:max_dims] if dims is None else dims)
    offsets = np.linspace(-span, span, steps)
    values = centre[dims][:, None] + offsets[None, :] * std[dims][:, None]     # (D, S)
    z = np.repeat(base[None, None, :], len(dims), axis=0).repeat(steps, axis=1)  # (D, S, K)
    for row, d in enumerate(dims):
        z[row, :, d] = values[row]
    images = decode(model, z.reshape(-1, k)).reshape(len(dims), steps, *model.input_shape)
    return TraversalGrid(images=images, dims=dims, values=values.astype(np.float32))


def interpolate(model, z_a: np.ndarray, z_b: np.ndarray, steps: int = 10) -> np.ndarray:
    """Decoded points on the straight line between two codes: (steps, *input_shape)."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    z = (1 - t) * np.asarray(z_a, np.float32)[None] + t * np.asarray(z_b, np.float32)[None]
    return decode(model, z)


def prior_samples(model, n: int = 64, seed: int = 0) -> np.ndarray:
    """Decoded draws from the prior N(0, I) (meaningful for VAE kinds and the AAE)."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=generator).numpy()
    return decode(model, z)


def code_scale(latent_dim: int, variational: bool,
               stats: DimensionStats | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(centre, scale) per dimension, each (K,): where a dimension's useful values lie.

    VAE kinds: the prior N(0, 1). Deterministic kinds have no prior, so the codes' own mean and
    standard deviation stand in (0 and 1 until the data have been encoded)."""
    if variational or stats is None or len(stats.mean) != latent_dim:
        return np.zeros(latent_dim, np.float32), np.ones(latent_dim, np.float32)
    return stats.mean.astype(np.float32), stats.std.astype(np.float32)


def random_code(centre: np.ndarray, scale: np.ndarray, seed: int) -> np.ndarray:
    """A reproducible draw from N(centre, diag(scale^2)): a prior sample for VAE kinds (centre 0,
    scale 1), a Gaussian fitted to the codes otherwise. Same seed, same code."""
    rng = np.random.default_rng(seed)
    return (np.asarray(centre, np.float32) + np.asarray(scale, np.float32)
            * rng.standard_normal(len(centre)).astype(np.float32)).astype(np.float32)


def dimension_label(dim: int, stats: DimensionStats | None) -> str:
    """'z3 · KL 2.31' for VAE kinds, 'z3 · var 0.84' otherwise, plain 'z3' before encoding."""
    if stats is None or dim >= len(stats.variance):
        return f"z{dim}"
    if stats.kl is not None:
        return f"z{dim} · KL {stats.kl[dim]:.2f}"
    return f"z{dim} · var {stats.variance[dim]:.2f}"
