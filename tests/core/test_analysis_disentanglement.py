"""MIG, DCI and SAP against known answers: codes equal to the factors vs pure noise."""

import numpy as np
import pytest

from app.core.analysis.disentanglement import (dci, disentanglement_report, factor_per_dimension,
                                               histogram_discretize, mig, sap)


@pytest.fixture(scope="module")
def factors():
    rng = np.random.default_rng(0)
    n = 4000
    return np.stack([rng.integers(0, 3, n), rng.integers(0, 6, n), rng.integers(0, 10, n)], axis=1).astype(np.float32)


def aligned_codes(factors, seed=1):
    """Each factor in its own dimension (scaled, shifted), plus two pure-noise dimensions."""
    rng = np.random.default_rng(seed)
    return np.concatenate([factors * np.array([0.5, 2.0, -1.0]) + 3.0, rng.standard_normal((len(factors), 2))], axis=1)


def test_histogram_discretize_follows_disentanglement_lib():
    values = np.random.default_rng(0).random((500, 2))
    out = histogram_discretize(values, 20)
    for j in range(2):
        expected = np.digitize(values[:, j], np.histogram(values[:, j], 20)[1][:-1])
        assert np.array_equal(out[:, j], expected)
    assert out.min() == 1 and out.max() == 20


def test_mig_near_one_for_factor_codes_and_near_zero_for_noise(factors):
    good = mig(aligned_codes(factors), factors)
    assert good.score > 0.95
    assert list(good.best_dim) == [0, 1, 2]
    noise = mig(np.random.default_rng(2).standard_normal((len(factors), 5)), factors)
    assert noise.score < 0.05


def test_mig_drops_when_a_factor_is_spread_over_two_dimensions(factors):
    codes = aligned_codes(factors)
    codes = np.concatenate([codes, codes[:, 2:3]], axis=1)      # factor 2 duplicated: no gap for it
    result = mig(codes, factors)
    assert result.per_factor[2] < 0.05 and result.per_factor[0] > 0.9


def test_dci_disentanglement_high_for_factor_codes_low_for_noise(factors):
    good = dci(aligned_codes(factors), factors)
    assert good.disentanglement > 0.9 and good.completeness > 0.9 and good.informativeness > 0.9
    noise = dci(np.random.default_rng(3).standard_normal((len(factors), 5)), factors)
    assert noise.disentanglement < 0.3 and noise.informativeness < 0.1
    lasso = dci(aligned_codes(factors), factors, method="lasso")
    assert lasso.disentanglement > 0.9


def test_sap_high_for_factor_codes_low_for_noise(factors):
    assert sap(aligned_codes(factors), factors).score > 0.9
    assert sap(np.random.default_rng(4).standard_normal((len(factors), 5)), factors).score < 0.05
    assert sap(aligned_codes(factors), factors, discrete=[True, False, False]).score > 0.5


def test_each_dimension_is_labelled_with_the_factor_it_explains(factors):
    result = mig(aligned_codes(factors), factors)
    labels = factor_per_dimension(result, ["shape", "scale", "x"])
    assert [name for name, _ in labels] == ["shape", "scale", "x", None, None]


def test_report_is_json_ready_and_subsamples(factors):
    import json

    big_factors = np.repeat(factors, 3, axis=0)                    # 12,000 rows > the 10,000 cap
    report = disentanglement_report(aligned_codes(big_factors), big_factors, ["shape", "scale", "x"], with_dci=False)
    summary = report.to_dict()
    json.dumps(summary)
    assert summary["mig"] > 0.95 and summary["factor_per_dim"][:3] == ["shape", "scale", "x"]
    assert [row["best_dim"] for row in report.table()] == [0, 1, 2]
