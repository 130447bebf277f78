"""PCA baseline: errors equal scikit-learn's for the same k; the curve is right for every k."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from app.core.analysis.pca_baseline import (fit_pca, flatten, pca_error_curve, pca_errors, pca_reconstruct,
                                            pca_transform)


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((6, 20))
    def sample(n):
        return (rng.standard_normal((n, 6)) * np.arange(6, 0, -1)) @ basis + 0.3 * rng.standard_normal((n, 20))
    return sample(300).astype(np.float32), sample(120).astype(np.float32)


def sklearn_error(train, test, k):
    pca = PCA(n_components=k, svd_solver="full").fit(train)
    return float(((test - pca.inverse_transform(pca.transform(test))) ** 2).sum(axis=1).mean())


@pytest.mark.parametrize("k", [1, 3, 6, 13])
def test_error_for_k_equals_sklearn_inverse_transform(split, k):
    train, test = split
    expected = sklearn_error(train, test, k)
    full = fit_pca(train)
    assert pca_error_curve(full, test).at(k) == pytest.approx(expected, rel=1e-4)
    assert pca_errors(full, test, k).mean() == pytest.approx(expected, rel=1e-4)
    assert pca_errors(fit_pca(train, k), test).mean() == pytest.approx(expected, rel=1e-4)


def test_curve_starts_at_total_variance_decreases_and_reaches_zero_at_full_rank(split):
    train, test = split
    curve = pca_error_curve(fit_pca(train), test)
    assert list(curve.ks) == list(range(21))
    centred = test.astype(np.float64) - train.mean(0)
    assert curve.errors[0] == pytest.approx((centred ** 2).sum(1).mean(), rel=1e-6)
    assert np.all(np.diff(curve.errors) <= 1e-9)
    assert curve.errors[-1] < 1e-7 * curve.errors[0]        # zero up to float32 rounding


def test_curve_stops_at_the_number_of_training_samples():
    rng = np.random.default_rng(1)
    pca = fit_pca(rng.random((8, 30)).astype(np.float32))
    curve = pca_error_curve(pca, rng.random((5, 30)).astype(np.float32))
    assert len(curve.ks) == 9 and curve.errors[-1] > 0     # held-out data is not in an 8-sample span


def test_reconstruction_keeps_the_shape_and_clips_for_images():
    rng = np.random.default_rng(2)
    images = rng.random((50, 1, 4, 4)).astype(np.float32)
    pca = fit_pca(images, 3)
    recon = pca_reconstruct(pca, images, clip=True)
    assert recon.shape == images.shape and recon.min() >= 0.0 and recon.max() <= 1.0
    unclipped = pca_reconstruct(pca, images)
    expected = PCA(3, svd_solver="full").fit(flatten(images))
    np.testing.assert_allclose(flatten(unclipped), expected.inverse_transform(expected.transform(flatten(images))),
                               atol=1e-4)
    assert pca_transform(pca, images).shape == (50, 3)
    # Clipping to the data's own range can only bring a reconstruction closer.
    assert pca_errors(pca, images, clip=True).sum() <= pca_errors(pca, images).sum() + 1e-9
