"""The one analysis API: every analysis the window's Analysis tabs show and the CLI's `evaluate` /
`export` write, keyed on (model, data, split).

A `Subject` names what is measured: a model, the data set it is measured on, and the training
split (`Split`, the val_fraction and seed the model was trained with), so PCA is fitted on the same
samples as the model and both are scored on the same held-out ones. Each analysis is a plain
function `analysis(subject, ..., should_stop=None, progress=None)`: no Qt, run on a worker thread
by the window and directly by the CLI and the tests. `should_stop()` is checked between chunks
(encoding blocks, fits, runs); when it returns True the function raises `Cancelled`, so pressing
Cancel in the window stops the work instead of only dropping its result.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# What the window's tabs show besides the analyses below comes from here too (one import surface
# for app/gui; tests/core/test_analysis_api.py checks app/gui imports no other analysis module).
from app.core.analysis.anomaly import (anomaly_mask, anomaly_scores, compare_detection, detection_metrics,  # noqa: F401
                                       isolation_forest_scores, parse_classes, score_histogram, seen_in_training,
                                       threshold_scores, top_k)
from app.core.analysis.compare_runs import COLUMNS as RUN_COLUMNS, compare_runs  # noqa: F401
from app.core.analysis.disentanglement import MAX_SAMPLES as MAX_FACTOR_SAMPLES, DisentanglementReport  # noqa: F401
from app.core.analysis.probes import MAX_TRAIN as MAX_PROBE_SAMPLES  # noqa: F401
from app.core.analysis.restoration import CORRUPTIONS, Restoration  # noqa: F401
from app.core.analysis.transfer import ANCHOR, METHOD_LABELS, TransferResult  # noqa: F401
from app.core.analysis.pca_baseline import (MAX_FIT_SAMPLES, ErrorCurve, compare_on_split, fit_pca, flatten,
                                            heldout_split, pca_errors, pca_reconstruct, pca_transform)
from app.core.config import DataConfig
from app.core.data.dataset import Dataset
from app.core.errors import DataError

StopCheck = Callable[[], bool] | None
Progress = Callable[[int, int], None] | None     # (done, total)

ENCODE_CHUNK = 1024           # samples per encoding block: the cancel check runs between blocks
MAX_CURVE_COMPONENTS = 1024   # the error curve stops here on very wide data (a full PCA would take minutes)
N_SHOWN = 8                   # samples in the side-by-side and restoration grids
N_RESTORATION_SCORED = 256    # held-out samples the restoration PSNR is averaged over


class Cancelled(Exception):
    """The caller's should_stop() asked to stop; nothing was computed to the end."""


def check_stop(should_stop: StopCheck) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled()


# ---------------------------------------------------------------------------------------------
# What is measured
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """The training split: seeded shuffle, a fraction held out (Dataset.split), and the normal
    classes training kept when it was told to (app/core/data/splits.py)."""
    val_fraction: float = 0.2
    seed: int = 0
    normal_classes: str = ""

    @classmethod
    def of(cls, cfg: DataConfig | None) -> "Split":
        """The split of a DataConfig; DataConfig's defaults (what a default training used) for None."""
        cfg = cfg or DataConfig()
        return cls(float(cfg.val_fraction), int(cfg.split_seed), str(cfg.normal_classes or ""))

    def indices(self, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """(train_idx, val_idx) as training split the data; a model trained on everything
        (fraction 0) is measured on the usual fifth, as compare_with_pca does."""
        from app.core.data.splits import training_split

        fraction = self.val_fraction
        if len(data.split(fraction, self.seed)[1]) == 0 or fraction == 0:
            heldout_split(data, 0.0, self.seed)     # says so when the data is too small to hold any out
            fraction = 0.2
        return training_split(data, fraction, self.seed, self.normal_classes)

    def describe(self, n_scored: int) -> str:
        """Which split was scored, for the results' captions and reports."""
        fraction = self.val_fraction if self.val_fraction > 0 else 0.2
        return f"held-out split ({n_scored:,} samples, {fraction:.0%} of the data, seed {self.seed})"


@dataclass(frozen=True)
class Subject:
    model: object              # an Autoencoder (a ModelSnapshot's frozen copy in the window)
    data: Dataset
    split: Split = field(default_factory=Split)

    @classmethod
    def of_run(cls, run, data: Dataset) -> "Subject":
        return cls(run.model, data, Split.of(run.data_cfg))

    def check_fits(self) -> None:
        check_fits(self.model, self.data)


def fit_problem(model, data: Dataset) -> str | None:
    """Why `model` cannot be measured on `data` (another sample shape), or None when it can."""
    if data.fits(model):   # Dataset.fits: the one shape check
        return None
    model_shape = tuple(model.input_shape)
    return (f"this model expects samples of shape {'x'.join(map(str, model_shape))}, but {data.name} has "
            f"{'x'.join(map(str, data.sample_shape))}")


def check_fits(model, data: Dataset) -> None:
    problem = fit_problem(model, data)
    if problem is not None:
        raise DataError(problem + ": train a model on this data or open data like the model's")


def encode(model, x: np.ndarray, should_stop: StopCheck = None, progress: Progress = None):
    """session.encode_all in blocks of ENCODE_CHUNK, checking should_stop between blocks."""
    import torch

    from app.core.session import EncodedData, encode_all

    parts = []
    for start in range(0, len(x), ENCODE_CHUNK):
        check_stop(should_stop)
        with torch.inference_mode():
            parts.append(encode_all(model, x[start:start + ENCODE_CHUNK]))
        if progress is not None:
            progress(min(start + ENCODE_CHUNK, len(x)), len(x))
    if len(parts) <= 1:
        return parts[0] if parts else encode_all(model, x)

    def joined(name):
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else np.concatenate(values)

    return EncodedData(codes=joined("codes"), logvar=joined("logvar"), errors=joined("errors"),
                       neg_elbo=joined("neg_elbo"))


# ---------------------------------------------------------------------------------------------
# Fitted PCAs are kept: measuring again after more training only re-encodes
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
class PCAReport:
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
    split: str = ""              # which split was scored (Split.describe)

    @property
    def matching_k(self) -> int | None:
        """Fewest components with which PCA is at least as good as the model (None: none on the curve)."""
        hits = np.nonzero(self.curve.errors <= self.model_error)[0]
        return int(hits[0]) if len(hits) else None


def pca_comparison(subject: Subject, n_shown: int = N_SHOWN, should_stop: StopCheck = None) -> PCAReport:
    """compare_on_split (PCA fitted on the training split, both scored on the held-out one), the
    probes when labels exist, and n_shown held-out samples reconstructed by both."""
    from app.core.session import reconstruct

    subject.check_fits()
    model, data, seed = subject.model, subject.data, subject.split.seed
    train_idx, val_idx = subject.split.indices(data)
    full_rank = min(len(train_idx), MAX_FIT_SAMPLES, flatten(data.x[:1]).shape[1])
    capped = full_rank > MAX_CURVE_COMPONENTS
    check_stop(should_stop)
    pca = fitted_pca(data, train_idx, max(model.latent_dim, MAX_CURVE_COMPONENTS) if capped else None, seed)
    encoded = encode(model, data.x[val_idx], should_stop)
    comparison = compare_on_split(model, data, train_idx, val_idx, pca=pca, heldout_errors=encoded.errors)
    k_pca = min(model.latent_dim, pca.n_components_)
    check_stop(should_stop)
    probes = _probes(subject, train_idx, val_idx, encoded.codes, pca, k_pca, should_stop)
    shown = val_idx[:n_shown]
    originals = data.x[shown]
    return PCAReport(
        k=model.latent_dim, k_pca=int(k_pca), n_train=len(train_idx), n_heldout=len(val_idx),
        model_error=comparison.model_error, pca_error=comparison.curve.at(k_pca), curve=comparison.curve,
        curve_capped=capped, probes=probes, shown_idx=shown, originals=originals,
        model_recons=reconstruct(model, originals), pca_recons=comparison.pca_reconstructions(originals),
        split=subject.split.describe(len(val_idx)))


def _probes(subject: Subject, train_idx, val_idx, heldout_codes, pca, k_pca, should_stop) -> dict | None:
    """Linear probe and k-NN on the codes vs PCA's components, trained on the training split."""
    from app.core.analysis.probes import MAX_TRAIN, compare_probes

    data, seed = subject.data, subject.split.seed
    if data.y is None or len(np.unique(data.y[train_idx])) < 2:
        return None
    probe_idx = train_idx
    if len(probe_idx) > MAX_TRAIN:    # the probes sub-sample to this anyway: encode no more
        probe_idx = np.sort(np.random.default_rng(seed).choice(train_idx, MAX_TRAIN, replace=False))
    codes_train = encode(subject.model, data.x[probe_idx], should_stop).codes
    check_stop(should_stop)
    return compare_probes(codes_train, heldout_codes, pca_transform(pca, data.x[probe_idx], k_pca),
                          pca_transform(pca, data.x[val_idx], k_pca), data.y[probe_idx], data.y[val_idx], seed=seed)


# ---------------------------------------------------------------------------------------------
# Anomalies
# ---------------------------------------------------------------------------------------------
def anomaly_detection(subject: Subject, sample_idx: np.ndarray, encoded, classes: list[int],
                      should_stop: StopCheck = None) -> dict:
    """compare_detection on data.x[sample_idx] (scored as given: the window passes its explored
    samples, as `evaluate --anomaly-classes` scores the data it is given): the model's scores
    (reconstruction error, and negative ELBO for VAE kinds) against the reconstruction error of a
    PCA with as many components as the latent size, fitted on the training split."""
    data = subject.data
    if data.y is None:
        raise DataError(f"{data.name}: has no labels, so no classes can be declared anomalous")
    train_idx, _ = subject.split.indices(data)
    check_stop(should_stop)
    pca = fitted_pca(data, train_idx, subject.model.latent_dim, subject.split.seed)
    check_stop(should_stop)
    pca_scores = pca_errors(pca, data.x[sample_idx])
    is_anomaly = anomaly_mask(data.y[sample_idx], classes)
    scores = {"reconstruction": np.asarray(encoded.errors, np.float64)}
    if encoded.neg_elbo is not None:
        scores["neg_elbo"] = np.asarray(encoded.neg_elbo, np.float64)
    out = compare_detection(scores, pca_scores, is_anomaly)
    out.update(n=int(len(sample_idx)), n_anomalies=int(is_anomaly.sum()), k_pca=int(pca.n_components_))
    check_stop(should_stop)
    # IsolationForest (Liu et al. 2008) on the raw inputs: the usual non-reconstruction baseline.
    forest = detection_metrics(isolation_forest_scores(data.x[train_idx], data.x[sample_idx], seed=subject.split.seed),
                               is_anomaly)
    out.update(iforest_anomaly_auc=forest["auc"], iforest_anomaly_average_precision=forest["average_precision"])
    # The anomaly classes the model trained on: detecting them then measures little.
    out["seen_in_training"] = seen_in_training(None, classes, train_data=data, train_idx=train_idx)
    return out



def scores_csv(scores: np.ndarray, labels: np.ndarray | None, threshold: float,
               index: np.ndarray | None = None) -> str:
    """index,score,label,flagged per sample; `index` names each row's sample in the data set
    (default 0..N-1; the window's explored samples may be a sub-sample)."""
    import csv
    import io

    index = np.arange(len(scores)) if index is None else np.asarray(index)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "score", "label", "flagged"])
    for i, score in enumerate(scores):
        writer.writerow([int(index[i]), f"{score:.7g}", "" if labels is None else int(labels[i]),
                         int(score > threshold)])
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Dimensions and factors, restoration, few labels
# ---------------------------------------------------------------------------------------------
def dimensions(encoded):
    """Per-dimension variance, activity and KL of an encoding (app.core.latent.dimension_stats)."""
    from app.core.latent import dimension_stats

    return dimension_stats(encoded.codes, encoded.logvar)


def disentanglement(subject: Subject, sample_idx: np.ndarray, encoded, with_dci: bool = True,
                    should_stop: StopCheck = None):
    """MIG, SAP and (optionally) DCI of the codes of data.x[sample_idx] against its factors."""
    from app.core.analysis.disentanglement import disentanglement_report

    data = subject.data
    if data.factors is None:
        raise DataError(f"{data.name}: has no ground-truth factors; MIG, DCI and SAP need them "
                        "(the built-in shapes data, or an .npz with a `factors` array)")
    check_stop(should_stop)
    return disentanglement_report(encoded.codes, data.factors[sample_idx], data.factor_names, encoded.logvar,
                                  with_dci, True)


def restoration(subject: Subject, kind: str, level: float, n_scored: int = N_RESTORATION_SCORED,
                should_stop: StopCheck = None):
    """(restore() of the first n_scored held-out samples, their data indices)."""
    from app.core.analysis.restoration import restore

    subject.check_fits()
    _, val_idx = subject.split.indices(subject.data)
    idx = val_idx[:n_scored]
    check_stop(should_stop)
    return restore(subject.model, subject.data.x[idx], kind, level, seed=subject.split.seed), idx


def few_labels(subject: Subject, sizes, draws: int, fine_tune: bool, should_stop: StopCheck = None,
               progress: Progress = None):
    """The label-efficiency curve (app.core.analysis.transfer) on the subject's split; should_stop
    is checked after each fitted classifier."""
    from app.core.analysis.transfer import label_efficiency

    def report(done: int, total: int) -> None:
        check_stop(should_stop)
        if progress is not None:
            progress(done, total)

    return label_efficiency(subject.model, subject.data, sizes, draws=draws, fine_tune=fine_tune,
                            val_fraction=subject.split.val_fraction, split_seed=subject.split.seed,
                            progress=report)
