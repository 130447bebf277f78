"""Anomaly detection by reconstruction: samples the model reconstructs badly are unusual.

Scores are per sample: the summed squared reconstruction error (every kind) or the negative ELBO
(VAE kinds; a proper Monte Carlo estimate with sampled z, Autoencoder.negative_elbo). A threshold, by value or by percentile, flags the high scores. With
labels, some classes can be declared anomalous and the score evaluated with ROC AUC and average
precision against the same score from PCA (the reconstruction error of a PCA with as many
components as the latent size) and from IsolationForest (Liu et al. 2008), the classic baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.data.dataset import Dataset
from app.core.errors import ConfigError, DataError

SCORE_KINDS = ("reconstruction", "neg_elbo")


def anomaly_scores(encoded, kind: str = "reconstruction") -> np.ndarray:
    """(N,) float64 scores from an `EncodedData`; higher means more anomalous."""
    if kind == "reconstruction":
        return np.asarray(encoded.errors, np.float64)
    if kind == "neg_elbo":
        if encoded.neg_elbo is None:
            raise ConfigError("the negative ELBO score needs a VAE kind; use the reconstruction error")
        return np.asarray(encoded.neg_elbo, np.float64)
    raise ConfigError(f"anomaly score {kind!r} is not one of {', '.join(SCORE_KINDS)}")


@dataclass
class Threshold:
    value: float            # scores strictly above this are flagged
    flagged: np.ndarray     # (N,) bool
    percentile: float       # the percentile of the scores the value sits at

    @property
    def count(self) -> int:
        return int(self.flagged.sum())


def threshold_scores(scores: np.ndarray, value: float | None = None, percentile: float | None = None) -> Threshold:
    """Flag scores above a value, or above the given percentile of the scores (exactly one of them).
    With percentile p and distinct scores, round(N * (100 - p) / 100) samples are flagged."""
    scores = np.asarray(scores, np.float64)
    if (value is None) == (percentile is None):
        raise ConfigError("give a threshold either as a value or as a percentile")
    if len(scores) == 0:
        raise DataError("there are no scores to threshold")
    if percentile is not None:
        if not 0.0 <= percentile <= 100.0:
            raise ConfigError(f"percentile {percentile} must be between 0 and 100")
        n_flag = int(round(len(scores) * (100.0 - percentile) / 100.0))
        ordered = np.sort(scores)
        # The largest score that stays unflagged; ties at the boundary stay unflagged together.
        value = float(ordered[len(scores) - n_flag - 1]) if n_flag < len(scores) else float(ordered[0]) - 1.0
    flagged = scores > value
    return Threshold(value=float(value), flagged=flagged, percentile=100.0 * float((scores <= value).mean()))


def top_k(scores: np.ndarray, k: int = 16) -> np.ndarray:
    """Indices of the k highest scores, highest first (for the gallery)."""
    scores = np.asarray(scores)
    k = max(0, min(int(k), len(scores)))
    if k == 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")].astype(np.int64)


def score_histogram(scores: np.ndarray, bins: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) for the histogram view."""
    return np.histogram(np.asarray(scores, np.float64), bins=bins)


# ---------------------------------------------------------------------------------------------
# Evaluation with labels
# ---------------------------------------------------------------------------------------------
def parse_classes(text: str | list, data: Dataset) -> list[int]:
    """'9' or '8,9' or '0-8' or 'heart' (label values, ranges or label names) -> sorted label values
    present in data."""
    from app.core.data.splits import parse_class_list

    return parse_class_list(text, data, "anomaly class")


def anomaly_mask(labels: np.ndarray, classes: list[int]) -> np.ndarray:
    return np.isin(np.asarray(labels), np.asarray(classes))


def detection_metrics(scores: np.ndarray, is_anomaly: np.ndarray) -> dict:
    """ROC AUC and average precision of a score at separating anomalies; None without both kinds."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    is_anomaly = np.asarray(is_anomaly, bool)
    if is_anomaly.all() or not is_anomaly.any():
        return {"auc": None, "average_precision": None}
    scores = np.asarray(scores, np.float64)
    return {"auc": float(roc_auc_score(is_anomaly, scores)),
            "average_precision": float(average_precision_score(is_anomaly, scores))}


def normal_only_split(data: Dataset, classes: list[int], val_fraction: float, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) of the usual seeded split, with the anomalous classes removed from
    training only; the held-out part keeps them so detection can be evaluated there. Train a model
    on data.x[train_idx] with the normal trainer."""
    if data.y is None:
        raise DataError(f"{data.name}: has no labels, so no classes can be left out of training")
    train_idx, val_idx = data.split(val_fraction, seed)
    train_idx = train_idx[~anomaly_mask(data.y[train_idx], classes)]
    if len(train_idx) == 0:
        raise DataError(f"{data.name}: every training sample belongs to an anomaly class")
    return train_idx, val_idx


def compare_detection(model_scores: dict[str, np.ndarray], pca_scores: np.ndarray, is_anomaly: np.ndarray) -> dict:
    """Flat dict: anomaly_auc / anomaly_average_precision for the first model score, the same with a
    `_<kind>` suffix for every other score kind, and pca_anomaly_auc / pca_anomaly_average_precision."""
    out: dict = {}
    for i, (kind, scores) in enumerate(model_scores.items()):
        metrics = detection_metrics(scores, is_anomaly)
        suffix = "" if i == 0 else f"_{kind}"
        out[f"anomaly_auc{suffix}"] = metrics["auc"]
        out[f"anomaly_average_precision{suffix}"] = metrics["average_precision"]
    metrics = detection_metrics(pca_scores, is_anomaly)
    out["pca_anomaly_auc"] = metrics["auc"]
    out["pca_anomaly_average_precision"] = metrics["average_precision"]
    return out


# ---------------------------------------------------------------------------------------------
# The classic baseline, the training-data check, and defaults for tables
# ---------------------------------------------------------------------------------------------
def isolation_forest_scores(train_x: np.ndarray, x: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N,) IsolationForest anomaly scores of x (Liu et al. 2008; scikit-learn, its defaults: 100
    trees of 256 samples), fitted on train_x; higher means more anomalous (-score_samples)."""
    from sklearn.ensemble import IsolationForest

    train = np.asarray(train_x, np.float32).reshape(len(train_x), -1)
    if len(train) < 2:
        raise DataError("IsolationForest needs at least 2 training samples")
    forest = IsolationForest(random_state=seed).fit(train)
    return -forest.score_samples(np.asarray(x, np.float32).reshape(len(x), -1)).astype(np.float64)


def seen_in_training(run, classes: list[int], train_data: Dataset | None = None,
                     train_idx: np.ndarray | None = None) -> list[str]:
    """Names of the anomaly `classes` that occur in the run's training split (the model learned to
    reconstruct them, so detecting them measures little). Loads the run's data when not given."""
    if train_data is None or train_idx is None:
        from app.core.analysis.pca_baseline import split_for_run, training_data_for_run

        train_data = training_data_for_run(run)
        train_idx, _ = split_for_run(run, train_data)
    return _present(train_data, train_idx, classes)


def classes_seen_in_training(data: Dataset, data_cfg, classes: list[int]) -> list[str]:
    """The same for a model trained in the window on `data` with `data_cfg` (its split and normal
    classes): names of the anomaly classes its training split held."""
    from app.core.data.splits import split_for_config

    train_idx, _ = split_for_config(data, data_cfg)
    return _present(data, train_idx, classes)


def _present(data: Dataset, idx: np.ndarray, classes: list[int]) -> list[str]:
    if data.y is None:
        return []
    present = set(int(v) for v in np.unique(data.y[idx]))
    names = data.label_names or []
    return [names[c] if c < len(names) else str(c) for c in classes if c in present]


def seen_classes_warning(run, seen: list[str]) -> str | None:
    """The line the CLI prints and the Anomalies tab shows when the model saw the anomalous classes
    (`run`: anything with a data_cfg, e.g. a loaded run or the window's model record)."""
    if not seen:
        return None
    normal = getattr(run.data_cfg, "normal_classes", "")
    trained_on = f"normal classes {normal!r}" if normal else "every class"
    return (f"the model was trained on {trained_on}, including the anomaly class{'es' if len(seen) > 1 else ''} "
            f"{', '.join(seen)}; retrain with --normal-classes set to the other classes for a fair evaluation")


# PyOD's AutoEncoder defaults (hidden 64-32, dropout 0.2, batch 32), the practitioner's start for
# tabular anomaly detection; the 'tabular-anomaly' preset (app/core/presets.py) uses these values.
TABULAR_ANOMALY_MODEL = {"kind": "ae", "hidden": (64, 32), "dropout": 0.2}
TABULAR_ANOMALY_TRAIN = {"batch_size": 32}


def anomaly_recommendation(run) -> str | None:
    """A one-line tip when a tabular run scores anomalies with settings far from the tabular defaults."""
    if run.meta.get("modality") != "tabular":
        return None
    model, train = run.model_cfg, run.train_cfg
    same = (model.kind == TABULAR_ANOMALY_MODEL["kind"] and tuple(model.hidden) == TABULAR_ANOMALY_MODEL["hidden"]
            and model.dropout == TABULAR_ANOMALY_MODEL["dropout"]
            and train.batch_size <= TABULAR_ANOMALY_TRAIN["batch_size"])
    if same:
        return None
    return ("tip: for anomaly scores on a table, train with the tabular anomaly defaults (PyOD's AutoEncoder): "
            "--preset tabular-anomaly (--model ae --hidden 64,32 --dropout 0.2 --batch-size 32)")
