"""How useful are the codes as features? Linear-probe and k-NN accuracy, codes vs PCA components.

The probe is trained on the training split and scored on held-out samples. The linear probe
standardises its inputs (logistic regression's regularisation is not scale-free); k-NN works on the
raw features, since standardising would blow up near-constant directions (a VAE's collapsed units,
PCA's last components) into pure noise.
"""

from __future__ import annotations

import warnings

import numpy as np

MAX_TRAIN = 10000   # probes are fitted on at most this many training samples (seeded sub-sample)


def _usable(train_y: np.ndarray | None, test_y: np.ndarray | None) -> bool:
    return (train_y is not None and test_y is not None and len(test_y) > 0
            and len(np.unique(train_y)) >= 2)


def _subsample(x: np.ndarray, y: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if limit and len(x) > limit:
        idx = np.sort(np.random.default_rng(seed).choice(len(x), limit, replace=False))
        return x[idx], y[idx]
    return x, y


def linear_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                          max_iter: int = 1000, max_train: int = MAX_TRAIN, seed: int = 0) -> float | None:
    """Held-out accuracy of a standardised logistic regression; None when labels do not allow it."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not _usable(train_y, test_y):
        return None
    x, y = _subsample(np.asarray(train_x, np.float64), np.asarray(train_y), max_train, seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return float(model.score(np.asarray(test_x, np.float64), np.asarray(test_y)))


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 k: int = 5, max_train: int = MAX_TRAIN, seed: int = 0) -> float | None:
    """Held-out accuracy of k-nearest-neighbours (Euclidean, raw features)."""
    from sklearn.neighbors import KNeighborsClassifier

    if not _usable(train_y, test_y):
        return None
    x, y = _subsample(np.asarray(train_x, np.float32), np.asarray(train_y), max_train, seed)
    model = KNeighborsClassifier(n_neighbors=min(k, len(x)))
    model.fit(x, y)
    return float(model.score(np.asarray(test_x, np.float32), np.asarray(test_y)))


def compare_probes(codes_train: np.ndarray, codes_test: np.ndarray, pca_train: np.ndarray, pca_test: np.ndarray,
                   y_train: np.ndarray, y_test: np.ndarray, k: int = 5, seed: int = 0) -> dict:
    """Both probes on both feature sets: keys linear_probe_accuracy, pca_linear_probe_accuracy,
    knn_accuracy, pca_knn_accuracy (values None when labels do not allow a probe)."""
    return {
        "linear_probe_accuracy": linear_probe_accuracy(codes_train, y_train, codes_test, y_test, seed=seed),
        "pca_linear_probe_accuracy": linear_probe_accuracy(pca_train, y_train, pca_test, y_test, seed=seed),
        "knn_accuracy": knn_accuracy(codes_train, y_train, codes_test, y_test, k=k, seed=seed),
        "pca_knn_accuracy": knn_accuracy(pca_train, y_train, pca_test, y_test, k=k, seed=seed),
    }
