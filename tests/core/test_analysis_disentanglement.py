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


def test_dci_uses_a_classifier_and_accuracy_for_discrete_factors(factors):
    good = dci(aligned_codes(factors), factors)
    assert good.factor_kinds == ["discrete"] * 3
    assert good.models == ["gradient-boosted classifier (accuracy)"] * 3
    assert good.disentanglement > 0.9 and good.completeness > 0.9
    assert good.informativeness == pytest.approx(1.0)              # held-out accuracy, every factor exact
    assert list(np.argmax(good.importance, axis=0)) == [0, 1, 2]


def test_dci_is_nan_on_noise_where_informativeness_is_at_chance(factors):
    noise = np.random.default_rng(3).standard_normal((len(factors), 5))
    for method in ("gbt", "lasso"):         # lasso gave D = 0.78 on noise before (all-zero importances)
        result = dci(noise, factors, method=method)
        assert np.isnan(result.disentanglement) and np.isnan(result.completeness), method
        assert result.above_chance < 0.05
    lasso = dci(aligned_codes(factors), factors, method="lasso")
    assert lasso.disentanglement > 0.9 and lasso.models == ["lasso regressor (R^2)"] * 3


def test_dci_regresses_only_continuous_factors():
    rng = np.random.default_rng(5)
    factors = np.stack([rng.integers(0, 3, 1500), rng.random(1500)], axis=1)     # categorical, continuous
    codes = np.concatenate([factors, rng.standard_normal((1500, 1))], axis=1)
    result = dci(codes, factors)
    assert result.factor_kinds == ["discrete", "continuous"]
    assert result.models == ["gradient-boosted classifier (accuracy)", "gradient-boosted regressor (R^2)"]
    assert result.per_factor_informativeness[0] == pytest.approx(1.0) and result.per_factor_informativeness[1] > 0.95


def test_sap_high_for_factor_codes_low_for_noise(factors):
    assert sap(aligned_codes(factors), factors, discrete=False).score > 0.9
    assert sap(np.random.default_rng(4).standard_normal((len(factors), 5)), factors).score < 0.05
    assert sap(aligned_codes(factors), factors, discrete=[True, False, False]).score > 0.5


def test_sap_picks_the_discrete_version_for_categorical_factors():
    rng = np.random.default_rng(6)
    n = 2000
    factors = np.stack([rng.integers(0, 2, n), rng.random(n)], axis=1)            # binary, continuous
    codes = np.concatenate([factors, rng.standard_normal((n, 2))], axis=1)
    result = sap(codes, factors)
    assert result.factor_kinds == ["discrete", "continuous"]
    assert result.versions == ["discrete (LinearSVC accuracy)", "continuous (R^2)"]
    # Binary factor: its own dimension predicts it exactly, the best other one at about chance (0.5).
    assert result.matrix[0, 0] == pytest.approx(1.0)
    assert result.per_factor[0] == pytest.approx(0.5, abs=0.06)
    assert result.per_factor[1] > 0.95
    as_numbers = sap(codes, factors, discrete=False)              # the continuous version, for comparison
    assert as_numbers.factor_kinds == ["continuous", "continuous"]


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
    assert summary["sap_versions"] == {name: "discrete (LinearSVC accuracy)" for name in ("shape", "scale", "x")}
