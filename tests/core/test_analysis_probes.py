"""Probes: separable clusters are classified perfectly; random labels are not."""

import numpy as np

from app.core.analysis.probes import compare_probes, knn_accuracy, linear_probe_accuracy


def clusters(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], float)
    return centres[y] + rng.standard_normal((n, 3)), y


def test_separable_clusters_give_accuracy_one():
    x_train, y_train = clusters(400, 0)
    x_test, y_test = clusters(200, 1)
    assert linear_probe_accuracy(x_train, y_train, x_test, y_test) >= 0.99
    assert knn_accuracy(x_train, y_train, x_test, y_test) >= 0.99


def test_random_labels_give_chance_accuracy():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1000, 5))
    y = rng.integers(0, 2, 1000)
    assert abs(linear_probe_accuracy(x[:800], y[:800], x[800:], y[800:]) - 0.5) < 0.1
    assert abs(knn_accuracy(x[:800], y[:800], x[800:], y[800:]) - 0.5) < 0.1


def test_probes_need_two_classes_and_report_all_four_fields():
    x_train, y_train = clusters(100, 0)
    assert linear_probe_accuracy(x_train, np.zeros(100, int), x_train, y_train) is None
    out = compare_probes(x_train, x_train, x_train[:, :2], x_train[:, :2], y_train, y_train)
    assert set(out) == {"linear_probe_accuracy", "pca_linear_probe_accuracy", "knn_accuracy", "pca_knn_accuracy"}
    assert all(0.0 <= v <= 1.0 for v in out.values())
