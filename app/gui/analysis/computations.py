"""The analysis engine (app.core.analysis) fed with what the window holds: the Dataset, the
ModelSnapshot and the encoding of the explored samples, instead of a run directory.

No Qt here: each function runs on a worker thread (app.gui.workers.run_job) and is tested directly.
The training split is the one the model was trained with (the state's `data_cfg` when the window
provides it, DataConfig's defaults otherwise), so PCA is fitted on the same samples as the model and
both are scored on the same held-out ones.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from app.core.analysis.anomaly import anomaly_mask, compare_detection
from app.core.analysis.pca_baseline import (MAX_FIT_SAMPLES, ErrorCurve, fit_pca, flatten, heldout_split,
                                            pca_error_curve, pca_errors, pca_reconstruct, pca_transform)
from app.core.analysis.probes import MAX_TRAIN, compare_probes
from app.core.analysis.restoration import Restoration, restore
from app.core.config import DataConfig
from app.core.data.dataset import Dataset
from app.core.errors import DataError
from app.core.evaluation import scores_csv

MAX_CURVE_COMPONENTS = 1024   # the error curve stops here on very wide data (a full PCA would take minutes)
N_SHOWN = 8                   # samples in the side-by-side and restoration grids
N_RESTORATION_SCORED = 256    # held-out samples the restoration PSNR is averaged over


# ---------------------------------------------------------------------------------------------
# The split
# ---------------------------------------------------------------------------------------------
def split_settings(state) -> tuple[float, int]:
    """(val_fraction, split_seed) of the model's training: the window's `state.data_cfg` when it
    sets one, otherwise DataConfig's defaults (what a model trained with the defaults used)."""
    cfg = getattr(state, "data_cfg", None) or DataConfig()
    return float(cfg.val_fraction), int(cfg.split_seed)


def training_split(data: Dataset, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) as training split the data; a model trained on everything (fraction 0)
    is measured on the usual fifth, as compare_with_pca does."""
    train_idx, val_idx = data.split(val_fraction, seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        train_idx, val_idx = heldout_split(data, 0.0, seed)
    return train_idx, val_idx


def check_model_fits(data: Dataset, snapshot) -> None:
    model_shape = tuple(snapshot.model.input_shape)
    if model_shape != tuple(data.sample_shape):
        raise DataError(f"this model expects samples of shape {'x'.join(map(str, model_shape))}, but {data.name} "
                        f"has {'x'.join(map(str, data.sample_shape))}")


# ---------------------------------------------------------------------------------------------
# Fitted PCAs are kept: pressing Compute again after more training only re-encodes
# ---------------------------------------------------------------------------------------------
_pca_cache: dict = {}
_pca_lock = threading.Lock()
_PCA_CACHE_SIZE = 4


def fitted_pca(data: Dataset, train_idx: np.ndarray, n_components: int | None, seed: int):
    """fit_pca on data.x[train_idx], remembered for the same data object, split and size."""
    key = (id(data), data.n, len(train_idx), int(train_idx[:64].sum()), int(train_idx.sum()), n_components, seed)
    with _pca_lock:
        hit = _pca_cache.get(key)
        if hit is not None and hit[0]() is data:     # the same live object, not a new one at a reused id
            return hit[1]
    pca = fit_pca(data.x[train_idx], n_components, seed=seed)
    with _pca_lock:
        while len(_pca_cache) >= _PCA_CACHE_SIZE:
            _pca_cache.pop(next(iter(_pca_cache)))
        _pca_cache[key] = (weakref.ref(data), pca)   # a weak reference: closing data frees its memory
    return pca


# ---------------------------------------------------------------------------------------------
# Autoencoder vs PCA
# ---------------------------------------------------------------------------------------------
@dataclass
class PCAComparisonView:
    k: int                       # latent size; PCA uses min(k, components fitted)
    k_pca: int
    n_train: int
    n_heldout: int
    model_error: float           # mean held-out summed squared error of the autoencoder
    pca_error: float             # the same for PCA with k_pca components
    curve: ErrorCurve            # PCA's held-out error for every k
    curve_capped: bool           # the curve stops before the input size (MAX_CURVE_COMPONENTS)
    probes: dict | None          # compare_probes' dict, None without usable labels
    shown_idx: np.ndarray        # data indices of the side-by-side samples
    originals: np.ndarray
    model_recons: np.ndarray
    pca_recons: np.ndarray

    @property
    def matching_k(self) -> int | None:
        """Fewest components with which PCA is at least as good as the model (None: none on the curve)."""
        hits = np.nonzero(self.curve.errors <= self.model_error)[0]
        return int(hits[0]) if len(hits) else None


def compare_pca(data: Dataset, snapshot, val_fraction: float, seed: int, n_shown: int = N_SHOWN) -> PCAComparisonView:
    """compare_with_pca and side_by_side for a snapshot, plus the probes when labels exist."""
    from app.core.session import encode

    check_model_fits(data, snapshot)
    train_idx, val_idx = training_split(data, val_fraction, seed)
    k = snapshot.latent_dim
    fit_rows = min(len(train_idx), MAX_FIT_SAMPLES)
    full_rank = min(fit_rows, flatten(data.x[:1]).shape[1])
    capped = full_rank > MAX_CURVE_COMPONENTS
    pca = fitted_pca(data, train_idx, max(k, MAX_CURVE_COMPONENTS) if capped else None, seed)
    k_pca = min(k, pca.n_components_)
    heldout = data.x[val_idx]
    encoded = snapshot.encode_all(heldout)
    curve = pca_error_curve(pca, heldout)

    probes = None
    if data.y is not None and len(np.unique(data.y[train_idx])) >= 2:
        probe_idx = train_idx
        if len(probe_idx) > MAX_TRAIN:    # the probes sub-sample to this anyway: encode no more
            probe_idx = np.sort(np.random.default_rng(seed).choice(train_idx, MAX_TRAIN, replace=False))
        codes_train = encode(snapshot.model, data.x[probe_idx])
        probes = compare_probes(codes_train, encoded.codes, pca_transform(pca, data.x[probe_idx], k_pca),
                                pca_transform(pca, heldout, k_pca), data.y[probe_idx], data.y[val_idx], seed=seed)

    shown = val_idx[:n_shown]
    originals = data.x[shown]
    return PCAComparisonView(
        k=k, k_pca=int(k_pca), n_train=len(train_idx), n_heldout=len(val_idx),
        model_error=float(encoded.errors.mean()), pca_error=curve.at(k_pca), curve=curve, curve_capped=capped,
        probes=probes, shown_idx=shown, originals=originals, model_recons=snapshot.reconstruct(originals),
        pca_recons=pca_reconstruct(pca, originals, k_pca, clip=snapshot.model.loss_kind == "bce"))


# ---------------------------------------------------------------------------------------------
# Anomalies
# ---------------------------------------------------------------------------------------------
def evaluate_detection(data: Dataset, view_idx: np.ndarray, encoded, classes: list[int], k: int,
                       val_fraction: float, seed: int) -> dict:
    """compare_detection on the explored samples: the model's scores (reconstruction error, and
    negative ELBO for VAE kinds) against the reconstruction error of a k-component PCA fitted on the
    training split, as `evaluate --anomaly-classes` does on the data it is given."""
    if data.y is None:
        raise DataError(f"{data.name}: has no labels, so no classes can be declared anomalous")
    train_idx, _ = training_split(data, val_fraction, seed)
    pca = fitted_pca(data, train_idx, k, seed)
    pca_scores = pca_errors(pca, data.x[view_idx])
    is_anomaly = anomaly_mask(data.y[view_idx], classes)
    scores = {"reconstruction": np.asarray(encoded.errors, np.float64)}
    if encoded.neg_elbo is not None:
        scores["neg_elbo"] = np.asarray(encoded.neg_elbo, np.float64)
    out = compare_detection(scores, pca_scores, is_anomaly)
    out.update(n=int(len(view_idx)), n_anomalies=int(is_anomaly.sum()), k_pca=int(pca.n_components_))
    return out


def view_scores_csv(view_idx: np.ndarray, scores: np.ndarray, labels: np.ndarray | None, threshold: float) -> str:
    """scores_csv (index,score,label,flagged) with each row's index being its index in the data set
    (the explored samples may be a sub-sample of it)."""
    text = scores_csv(scores, labels, threshold)
    view_idx = np.asarray(view_idx)
    if np.array_equal(view_idx, np.arange(len(view_idx))):
        return text
    lines = text.split("\n")
    for i in range(len(view_idx)):
        lines[i + 1] = f"{int(view_idx[i])}," + lines[i + 1].split(",", 1)[1]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Denoising and inpainting
# ---------------------------------------------------------------------------------------------
def restore_heldout(data: Dataset, snapshot, kind: str, level: float, val_fraction: float, seed: int,
                    n_scored: int = N_RESTORATION_SCORED) -> tuple[Restoration, np.ndarray]:
    """(restore() of the first n_scored held-out samples, their data indices)."""
    check_model_fits(data, snapshot)
    _, val_idx = training_split(data, val_fraction, seed)
    idx = val_idx[:n_scored]
    return restore(snapshot.model, data.x[idx], kind, level, seed=seed), idx
