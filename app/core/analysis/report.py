"""The analysis fields `python main.py evaluate RUN_DIR --json` adds (called by evaluate_run).

Every value is a plain float, int, string, list or dict, so the report is JSON as it stands.
PCA is fitted on the run's own training split; every error is scored on the `--data` given, in
the same units as `reconstruction_error`.
"""

from __future__ import annotations

import inspect
import time

import numpy as np

from app.core.analysis.anomaly import anomaly_mask, compare_detection, parse_classes
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


def extend_report(run, data: Dataset, encoded, projections: bool = False, anomaly_classes: str = "") -> dict:
    report: dict = {}
    timings: dict = {}
    codes = np.asarray(encoded.codes)
    k = run.model.latent_dim

    # --- PCA with k components, fitted on the run's training split ---------------------------
    start = time.perf_counter()
    train_data = training_data_for_run(run, data)
    train_idx, _ = split_for_run(run, train_data)
    pca = fit_pca(train_data.x[train_idx], k, seed=run.data_cfg.split_seed)
    pca_err = pca_errors(pca, data.x)
    report["pca_components"] = int(pca.n_components_)
    report["pca_reconstruction_error"] = float(pca_err.mean())
    timings["pca"] = time.perf_counter() - start

    # --- Dimensions ------------------------------------------------------------------------------
    stats = dimension_stats(codes, encoded.logvar)
    report["active_units"] = int(stats.active.sum())
    report["code_variance"] = [float(v) for v in stats.variance]
    if stats.kl is not None:
        report["kl_per_dim"] = [float(v) for v in stats.kl]
        report["kl_total"] = float(stats.kl.sum())

    # --- Probes: train on the training part of the data given, score on its held-out part -----
    if data.y is not None and len(np.unique(data.y)) >= 2 and data.n >= 10:
        start = time.perf_counter()
        tr, te = heldout_split(data, run.data_cfg.val_fraction, run.data_cfg.split_seed)
        components = pca_transform(pca, data.x)
        probes = compare_probes(codes[tr], codes[te], components[tr], components[te], data.y[tr], data.y[te])
        report.update({key: _float(value) for key, value in probes.items()})
        timings["probes"] = time.perf_counter() - start

    # --- Disentanglement -------------------------------------------------------------------------
    if data.factors is not None and data.n >= 10:
        start = time.perf_counter()
        result = disentanglement_report(codes, data.factors, data.factor_names, encoded.logvar)
        report.update(result.to_dict())
        report["factor_table"] = result.table()
        timings["disentanglement"] = time.perf_counter() - start

    # --- Anomaly evaluation ----------------------------------------------------------------------
    if anomaly_classes and str(anomaly_classes).strip():
        classes = parse_classes(anomaly_classes, data)
        is_anomaly = anomaly_mask(data.y, classes)
        scores = {"reconstruction": encoded.errors}
        if encoded.neg_elbo is not None:
            scores["neg_elbo"] = encoded.neg_elbo
        report["anomaly_classes"] = [data.label_names[c] if data.label_names and c < len(data.label_names) else str(c)
                                     for c in classes]
        report["n_anomalies"] = int(is_anomaly.sum())
        report.update({key: _float(v) for key, v in compare_detection(scores, pca_err, is_anomaly).items()})

    # --- Trustworthiness of each 2-D view ----------------------------------------------------------
    if projections:
        start = time.perf_counter()
        report["trustworthiness"] = projection_trustworthiness(codes, seed=run.data_cfg.split_seed)
        timings["projections"] = time.perf_counter() - start

    report["analysis_seconds"] = {key: round(value, 3) for key, value in timings.items()}
    return report


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
