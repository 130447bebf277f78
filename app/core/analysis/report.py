"""The analysis fields `python main.py evaluate RUN_DIR --json` adds (called by evaluate_run).

Every value is a plain float, int, string, list or dict, so the report is JSON as it stands.
PCA (and IsolationForest) are fitted on the run's own training split and scored on the samples
`evaluate` scores (by default the run's held-out split, see evaluation.scored_split), in the same
units as `reconstruction_error`.
"""

from __future__ import annotations

import inspect
import time

import numpy as np

from app.core.analysis.anomaly import (anomaly_mask, compare_detection, detection_metrics,
                                       isolation_forest_scores, parse_classes, seen_classes_warning,
                                       seen_in_training)
from app.core.analysis.disentanglement import MAX_SAMPLES, disentanglement_report, subsample
from app.core.analysis.pca_baseline import (fit_pca, heldout_split, pca_errors, pca_transform, split_for_run,
                                            training_data_for_run)
from app.core.analysis.probes import compare_probes
from app.core.data.dataset import Dataset
from app.core.latent import dimension_stats

PROJECTION_METHODS = ("pca", "umap", "tsne")
MAX_PROJECTION_SAMPLES = 2000   # trustworthiness needs all pairwise distances: O(N^2) memory


def _float(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def extend_report(run, data: Dataset, encoded, projections: bool = False, anomaly_classes: str = "",
                  scored=None) -> dict:
    """The analysis fields for the samples `data` (those `encoded` encodes). `scored` (an
    evaluation.ScoredSplit) says which split they are; without it they count as external data."""
    report: dict = {"warnings": []}
    timings: dict = {}
    codes = np.asarray(encoded.codes)
    k = run.model.latent_dim
    split = getattr(scored, "split", "external")

    # --- PCA with k components, fitted on the run's training split, scored on `data` --------------
    start = time.perf_counter()
    train_data, train_idx = _training_part(run, scored)
    pca = fit_pca(train_data.x[train_idx], k, seed=run.data_cfg.split_seed)
    pca_err = pca_errors(pca, data.x)
    report["pca_components"] = int(pca.n_components_)
    report["pca_reconstruction_error"] = float(pca_err.mean())
    timings["pca"] = time.perf_counter() - start

    # --- Dimensions: active units only where they mean something (a VAE's posterior) -------------
    stats = dimension_stats(codes, encoded.logvar)
    if encoded.logvar is not None:
        report["active_units"] = int(stats.active.sum())
    report["code_variance"] = [float(v) for v in stats.variance]
    if stats.kl is not None:
        report["kl_per_dim"] = [float(v) for v in stats.kl]
        report["kl_total"] = float(stats.kl.sum())

    if data.y is not None and len(np.unique(data.y)) >= 2 and data.n >= 10:
        start = time.perf_counter()
        report.update(_probes(run, data, codes, pca, split, train_data, train_idx))
        timings["probes"] = time.perf_counter() - start

    if data.factors is not None and data.n >= 10:
        start = time.perf_counter()
        result = disentanglement_report(codes, data.factors, data.factor_names, encoded.logvar)
        report.update(result.to_dict())
        report["factor_table"] = result.table()
        timings["disentanglement"] = time.perf_counter() - start

    if anomaly_classes and str(anomaly_classes).strip():
        start = time.perf_counter()
        report.update(_anomaly(run, data, encoded, pca_err, anomaly_classes, train_data, train_idx))
        timings["anomaly"] = time.perf_counter() - start

    if projections:
        start = time.perf_counter()
        report["trustworthiness"] = projection_trustworthiness(codes, seed=run.data_cfg.split_seed)
        timings["projections"] = time.perf_counter() - start

    report["analysis_seconds"] = {key: round(value, 3) for key, value in timings.items()}
    return report


def _training_part(run, scored) -> tuple[Dataset, np.ndarray]:
    """(the run's data, its training-split indices), reusing what `scored` already loaded."""
    if scored is not None and getattr(scored, "run_data", None) is not None:
        return scored.run_data, scored.train_idx
    train_data = training_data_for_run(run)
    train_idx, _ = split_for_run(run, train_data)
    return train_data, train_idx


def _probes(run, data, codes, pca, split, train_data, train_idx) -> dict:
    """Linear and 5-NN probes on the codes and on PCA's components. On the validation split they are
    fitted on the training split (the model's own) and scored on the validation one; on other
    samples, fitted and scored on a seeded split of those samples."""
    if split == "validation" and train_data.y is not None:
        from app.core.session import encode

        tr_codes, tr_y = encode(run.model, train_data.x[train_idx]), train_data.y[train_idx]
        probes = compare_probes(tr_codes, codes, pca_transform(pca, train_data.x[train_idx]),
                                pca_transform(pca, data.x), tr_y, data.y)
        out = {key: _float(value) for key, value in probes.items()}
        out["probes_fitted_on"] = "training split"
        return out
    tr, te = heldout_split(data, run.data_cfg.val_fraction, run.data_cfg.split_seed)
    components = pca_transform(pca, data.x)
    probes = compare_probes(codes[tr], codes[te], components[tr], components[te], data.y[tr], data.y[te])
    out = {key: _float(value) for key, value in probes.items()}
    out["probes_fitted_on"] = f"a seeded split of the {split} samples"
    return out


def _anomaly(run, data, encoded, pca_err, anomaly_classes, train_data, train_idx) -> dict:
    """ROC AUC / average precision of the model's scores, PCA's error and IsolationForest's score."""
    classes = parse_classes(anomaly_classes, data)
    is_anomaly = anomaly_mask(data.y, classes)
    scores = {"reconstruction": encoded.errors}
    if encoded.neg_elbo is not None:
        scores["neg_elbo"] = encoded.neg_elbo
    out: dict = {"anomaly_classes": [data.label_names[c] if data.label_names and c < len(data.label_names)
                                     else str(c) for c in classes],
                 "n_anomalies": int(is_anomaly.sum())}
    out.update({key: _float(v) for key, v in compare_detection(scores, pca_err, is_anomaly).items()})
    forest = isolation_forest_scores(train_data.x[train_idx], data.x, seed=run.train_cfg.seed)
    metrics = detection_metrics(forest, is_anomaly)
    out["isolation_forest_anomaly_auc"] = _float(metrics["auc"])
    out["isolation_forest_anomaly_average_precision"] = _float(metrics["average_precision"])
    seen = seen_in_training(run, classes, train_data, train_idx)
    out["anomaly_classes_seen_in_training"] = seen
    warning = seen_classes_warning(run, seen)
    out["warnings"] = [warning] if warning else []
    return out


def projection_trustworthiness(codes: np.ndarray, methods=PROJECTION_METHODS, max_samples: int = MAX_PROJECTION_SAMPLES,
                               n_neighbors: int = 5, seed: int = 0) -> dict:
    """{method: trustworthiness of its 2-D embedding of (a sub-sample of) the codes}."""
    codes = np.asarray(codes, np.float32)[subsample(len(codes), max_samples, seed)]
    out: dict = {}
    for method in methods:
        embedding = _project(codes, method)
        out[method] = _float(_trustworthiness(codes, embedding, n_neighbors))
    return out


def _project(codes: np.ndarray, method: str) -> np.ndarray:
    try:
        from app.core.projections import project
    except ImportError:     # the projections module is optional for this layer; use sklearn directly
        return _fallback_project(codes, method)
    params = inspect.signature(project).parameters
    third = list(params.values())[2] if len(params) >= 3 else None
    result = project(codes, method) if third is None or third.default is not inspect.Parameter.empty \
        else project(codes, method, {})
    return np.asarray(getattr(result, "embedding", result), np.float64)


def _trustworthiness(codes: np.ndarray, embedding: np.ndarray, n_neighbors: int) -> float:
    try:
        from app.core.projections import trustworthiness
        return float(trustworthiness(codes, embedding))
    except ImportError:
        from sklearn.manifold import trustworthiness
        return float(trustworthiness(codes, embedding, n_neighbors=min(n_neighbors, len(codes) // 2 - 1)))


def _fallback_project(codes: np.ndarray, method: str) -> np.ndarray:
    if method == "pca":
        from sklearn.decomposition import PCA
        return PCA(n_components=2).fit_transform(codes)
    if method == "tsne":
        from sklearn.manifold import TSNE
        return TSNE(n_components=2, perplexity=min(30.0, (len(codes) - 1) / 3), random_state=0).fit_transform(codes)
    if method == "umap":
        import umap
        return umap.UMAP(n_components=2, random_state=0).fit_transform(codes)
    raise ValueError(f"unknown projection {method!r}")


__all__ = ["extend_report", "projection_trustworthiness", "MAX_SAMPLES"]
