"""PCA as the baseline an autoencoder has to beat.

A linear autoencoder with k units and squared error learns the span of the first k principal
components (Baldi & Hornik 1989), so PCA with k = latent size is the natural yardstick: fitted on the
same training split, scored on the same held-out samples, in the same units as the model's
`reconstruction_error` (per-sample sum of squared errors over features, in the data's loader scale).

One full PCA fit gives the error for every k at once. With orthonormal components c_j and centred
data x - m, the squared residual after k components is

    ||x - m||^2 - sum_{j<k} <x - m, c_j>^2

so the whole curve is one projection, a cumulative sum and a mean (vectorised below).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.data.dataset import Dataset
from app.core.errors import DataError

CHUNK = 4096             # rows per block when projecting, so memory stays flat on large sets
MAX_FIT_SAMPLES = 20000  # PCA is fitted on at most this many training samples (seeded sub-sample)


def flatten(x: np.ndarray) -> np.ndarray:
    """(N, ...) -> (N, D) view without copying when possible."""
    x = np.asarray(x)
    return x.reshape(len(x), -1)


# ---------------------------------------------------------------------------------------------
# The run's own training data
# ---------------------------------------------------------------------------------------------
def training_data_for_run(run, data: Dataset | None = None) -> Dataset:
    """The data set the run was trained on, reusing `data` when it is that same set."""
    from app.core.session import load_data_for_run

    info = run.meta.get("data_info", {}) or {}
    if (data is not None and data.spec == run.data_cfg.spec and info.get("n") is not None
            and data.n == int(info["n"])):
        return data
    return load_data_for_run(run)


def split_for_run(run, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) exactly as training split the run's data (normal classes only in the
    training part when the run was trained on some)."""
    from app.core.data.splits import split_for_config

    return split_for_config(data, run.data_cfg)


def heldout_split(data: Dataset, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A split with a non-empty held-out part even when the run trained on everything (fraction 0)."""
    fraction = val_fraction if val_fraction > 0 else 0.2
    train_idx, val_idx = data.split(fraction, seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise DataError(f"{data.name}: {data.n} samples are too few to hold some out for evaluation")
    return train_idx, val_idx


# ---------------------------------------------------------------------------------------------
# Fitting and scoring
# ---------------------------------------------------------------------------------------------
def fit_pca(x_train: np.ndarray, n_components: int | None = None, max_samples: int | None = MAX_FIT_SAMPLES,
            seed: int = 0):
    """sklearn PCA on flattened training samples. n_components=None keeps every component
    (min(n, D)), which the error curve needs; a larger request is capped the same way."""
    from sklearn.decomposition import PCA

    x = flatten(x_train)
    if max_samples and len(x) > max_samples:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), max_samples, replace=False))]
    if len(x) < 2:
        raise DataError("PCA needs at least 2 training samples")
    limit = min(x.shape)
    k = limit if n_components is None else max(1, min(int(n_components), limit))
    return PCA(n_components=k, random_state=seed).fit(x)


def _components(pca, k: int | None) -> np.ndarray:
    n = pca.components_.shape[0]
    if k is not None and not 0 <= k <= n:
        raise ValueError(f"k = {k} but the PCA holds {n} components")
    return pca.components_[: n if k is None else k].astype(np.float64)


def pca_transform(pca, x: np.ndarray, k: int | None = None) -> np.ndarray:
    """Coordinates on the first k components: (N, k) float32."""
    comps = _components(pca, k)
    mean = pca.mean_.astype(np.float64)
    flat = flatten(x)
    out = [((flat[i:i + CHUNK].astype(np.float64) - mean) @ comps.T) for i in range(0, len(flat), CHUNK)]
    return (np.concatenate(out) if out else np.zeros((0, comps.shape[0]))).astype(np.float32)


def pca_reconstruct(pca, x: np.ndarray, k: int | None = None, clip: bool = False) -> np.ndarray:
    """PCA reconstructions shaped like x (for the side-by-side view). clip=True clips to [0, 1],
    as a BCE model's outputs are, so the images display alike."""
    comps = _components(pca, k)
    mean = pca.mean_.astype(np.float64)
    flat = flatten(x)
    out = np.empty(flat.shape, np.float32)
    for i in range(0, len(flat), CHUNK):
        centred = flat[i:i + CHUNK].astype(np.float64) - mean
        out[i:i + CHUNK] = (centred @ comps.T) @ comps + mean
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out.reshape(np.shape(x))


def pca_errors(pca, x: np.ndarray, k: int | None = None, clip: bool = False) -> np.ndarray:
    """Per-sample summed squared reconstruction error with k components: (N,) float64."""
    comps = _components(pca, k)
    mean = pca.mean_.astype(np.float64)
    flat = flatten(x)
    errors = np.empty(len(flat), np.float64)
    for i in range(0, len(flat), CHUNK):
        block = flat[i:i + CHUNK].astype(np.float64)
        recon = ((block - mean) @ comps.T) @ comps + mean
        if clip:
            np.clip(recon, 0.0, 1.0, out=recon)
        errors[i:i + CHUNK] = ((block - recon) ** 2).sum(axis=1)
    return errors


@dataclass
class ErrorCurve:
    ks: np.ndarray       # (R+1,) 0..R components
    errors: np.ndarray   # (R+1,) mean per-sample summed squared error with k components

    def at(self, k: int) -> float:
        return float(self.errors[min(max(int(k), 0), len(self.errors) - 1)])


def pca_error_curve(pca, x: np.ndarray) -> ErrorCurve:
    """Held-out error for every k from 0 to the number of fitted components, from one projection."""
    comps = _components(pca, None)
    mean = pca.mean_.astype(np.float64)
    flat = flatten(x)
    if len(flat) == 0:
        raise DataError("the error curve needs at least one held-out sample")
    total = 0.0                                   # sum over samples of ||x - m||^2
    captured = np.zeros(comps.shape[0])           # sum over samples of <x - m, c_j>^2, per j
    for i in range(0, len(flat), CHUNK):
        centred = flat[i:i + CHUNK].astype(np.float64) - mean
        total += float((centred ** 2).sum())
        captured += ((centred @ comps.T) ** 2).sum(axis=0)
    errors = (total - np.concatenate([[0.0], np.cumsum(captured)])) / len(flat)
    errors = np.maximum(errors, 0.0)              # rounding can dip a hair below zero at full rank
    return ErrorCurve(ks=np.arange(len(errors)), errors=errors)


# ---------------------------------------------------------------------------------------------
# A run against its PCA
# ---------------------------------------------------------------------------------------------
@dataclass
class PCAComparison:
    k: int                         # latent size = PCA components
    n_train: int
    n_heldout: int
    model_error: float             # mean held-out summed squared error of the autoencoder
    pca_error: float               # same for PCA with k components
    curve: ErrorCurve | None       # PCA error for every k, the model's point is (k, model_error)
    heldout_idx: np.ndarray        # indices into the run's data of the held-out samples
    pca: object = None             # the fitted sklearn PCA (all components when curve=True)
    clip: bool = False             # clip PCA reconstructions to [0, 1] for display (BCE models)

    def pca_reconstructions(self, x: np.ndarray) -> np.ndarray:
        """PCA (k components) reconstructions of x, for the side-by-side view."""
        return pca_reconstruct(self.pca, x, min(self.k, self.pca.n_components_), clip=self.clip)

    @property
    def model_point(self) -> tuple[int, float]:
        return self.k, self.model_error

    @property
    def pca_components_matching_model(self) -> int | None:
        """Smallest k at which PCA is at least as good as the model (None: never, within the curve)."""
        if self.curve is None:
            return None
        hits = np.nonzero(self.curve.errors <= self.model_error)[0]
        return int(hits[0]) if len(hits) else None

    def to_dict(self) -> dict:
        return {"k": self.k, "n_train": self.n_train, "n_heldout": self.n_heldout,
                "reconstruction_error": self.model_error, "pca_reconstruction_error": self.pca_error,
                "pca_components_matching_model": self.pca_components_matching_model}


def compare_with_pca(run, data: Dataset | None = None, curve: bool = True,
                     max_samples: int | None = MAX_FIT_SAMPLES) -> PCAComparison:
    """Fit PCA on the run's training split and score PCA and the model on its held-out split."""
    data = training_data_for_run(run, data)
    train_idx, val_idx = split_for_run(run, data)
    if len(val_idx) == 0:
        train_idx, val_idx = heldout_split(data, 0.0, run.data_cfg.split_seed)
    return compare_on_split(run.model, data, train_idx, val_idx, curve=curve, max_samples=max_samples,
                            seed=run.data_cfg.split_seed)


def compare_on_split(model, data: Dataset, train_idx: np.ndarray, val_idx: np.ndarray, curve: bool = True,
                     max_samples: int | None = MAX_FIT_SAMPLES, seed: int = 0, pca=None,
                     heldout_errors: np.ndarray | None = None) -> PCAComparison:
    """The comparison on a given split (compare_with_pca and app.core.analysis.api share it); `pca`
    and `heldout_errors` let a caller reuse a fitted PCA and an encoding it already has."""
    from app.core.session import encode_all

    k = model.latent_dim
    if pca is None:
        pca = fit_pca(data.x[train_idx], None if curve else k, max_samples=max_samples, seed=seed)
    heldout = data.x[val_idx]
    if heldout_errors is None:
        heldout_errors = encode_all(model, heldout).errors
    model_error = float(np.mean(heldout_errors))
    error_curve = pca_error_curve(pca, heldout) if curve else None
    pca_error = error_curve.at(k) if error_curve is not None else float(pca_errors(pca, heldout).mean())
    return PCAComparison(k=k, n_train=len(train_idx), n_heldout=len(val_idx), model_error=model_error,
                         pca_error=pca_error, curve=error_curve, heldout_idx=val_idx, pca=pca,
                         clip=model.loss_kind == "bce")


def side_by_side(run, pca, x: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(originals, model reconstructions, PCA reconstructions) of the same samples, all shaped like x."""
    from app.core.session import reconstruct

    k = run.model.latent_dim if k is None else k
    clip = run.model.loss_kind == "bce"
    return np.asarray(x), reconstruct(run.model, x), pca_reconstruct(pca, x, min(k, pca.n_components_), clip=clip)
