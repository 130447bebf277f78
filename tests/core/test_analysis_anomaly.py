"""Anomaly scores: thresholds, top-k, AUC/AP against known answers, class parsing, normal-only split."""

from types import SimpleNamespace

import numpy as np
import pytest

from app.core.analysis.anomaly import (anomaly_mask, anomaly_scores, compare_detection, detection_metrics,
                                       normal_only_split, parse_classes, threshold_scores, top_k)
from app.core.data.dataset import Dataset
from app.core.errors import ConfigError, DataError


def test_perfect_score_has_auc_one_and_random_score_about_half():
    rng = np.random.default_rng(0)
    is_anomaly = rng.random(4000) < 0.1
    perfect = detection_metrics(is_anomaly.astype(float) + 0.01 * rng.random(4000), is_anomaly)
    assert perfect == {"auc": pytest.approx(1.0), "average_precision": pytest.approx(1.0)}
    random = detection_metrics(rng.random(4000), is_anomaly)
    assert abs(random["auc"] - 0.5) < 0.05
    assert abs(random["average_precision"] - is_anomaly.mean()) < 0.05
    assert detection_metrics(rng.random(10), np.zeros(10, bool)) == {"auc": None, "average_precision": None}


def test_percentile_threshold_flags_the_expected_count():
    scores = np.random.default_rng(1).permutation(1000).astype(float)
    for percentile, count in [(95, 50), (99, 10), (50, 500), (100, 0), (0, 1000)]:
        result = threshold_scores(scores, percentile=percentile)
        assert result.count == count, percentile
    by_value = threshold_scores(scores, value=989.5)
    assert by_value.count == 10 and by_value.percentile == pytest.approx(99.0)
    with pytest.raises(ConfigError):
        threshold_scores(scores)


def test_top_k_is_highest_first():
    scores = np.array([0.1, 5.0, 3.0, 9.0, 0.2])
    assert list(top_k(scores, 3)) == [3, 1, 2]
    assert len(top_k(scores, 99)) == 5


def test_scores_from_encoded_data():
    encoded = SimpleNamespace(errors=np.array([1.0, 2.0]), neg_elbo=None)
    assert list(anomaly_scores(encoded)) == [1.0, 2.0]
    with pytest.raises(ConfigError):
        anomaly_scores(encoded, "neg_elbo")


def labelled(n=100):
    y = np.arange(n) % 10
    return Dataset(name="t", spec="t", x=np.zeros((n, 3), np.float32), modality="tabular", y=y.astype(np.int64),
                   label_names=[f"c{i}" for i in range(10)])


def test_classes_parse_by_value_or_name():
    data = labelled()
    assert parse_classes("9", data) == [9]
    assert parse_classes("c8, 9", data) == [8, 9]
    with pytest.raises(ConfigError):
        parse_classes("banana", data)
    with pytest.raises(ConfigError):
        parse_classes("42", data)
    with pytest.raises(DataError):
        parse_classes("1", Dataset(name="u", spec="u", x=np.zeros((3, 2), np.float32), modality="tabular"))


def test_normal_only_split_removes_anomalies_from_training_only():
    data = labelled(200)
    train_idx, val_idx = normal_only_split(data, [9], 0.25, 0)
    assert not np.isin(data.y[train_idx], [9]).any()
    assert np.isin(data.y[val_idx], [9]).any()
    assert len(np.intersect1d(train_idx, val_idx)) == 0


def test_compare_detection_reports_model_and_pca_side_by_side():
    is_anomaly = np.arange(100) >= 90
    out = compare_detection({"reconstruction": is_anomaly * 1.0, "neg_elbo": -1.0 * is_anomaly},
                            np.zeros(100) + np.arange(100), anomaly_mask(np.arange(100), list(range(90, 100))))
    assert out["anomaly_auc"] == pytest.approx(1.0) and out["anomaly_auc_neg_elbo"] == pytest.approx(0.0)
    assert out["pca_anomaly_auc"] == pytest.approx(1.0)
    assert out["pca_anomaly_average_precision"] == pytest.approx(1.0)


def test_negative_elbo_score_is_a_sampled_elbo_not_the_value_at_the_mean():
    import torch

    from app.core.config import ModelConfig
    from app.core.models import build_model
    from app.core.models.base import ELBO_SAMPLES, gaussian_kl, reconstruction_loss
    from app.core.session import encode_all

    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="vae", latent_dim=3, hidden=(16,)), (1, 8, 8), "image", "bce").eval()
    x = torch.rand(40, 1, 8, 8)
    scores = encode_all(model, x.numpy()).neg_elbo
    assert np.array_equal(scores, encode_all(model, x.numpy()).neg_elbo)           # seeded: repeats exactly
    with torch.no_grad():
        mu, logvar = model._encode(x)
        noise = torch.randn((ELBO_SAMPLES, 3), generator=torch.Generator().manual_seed(0))
        rec = sum(reconstruction_loss(model.decode_logits(mu + torch.exp(0.5 * logvar) * eps), x, "bce")
                  for eps in noise) / ELBO_SAMPLES
        expected = (rec + gaussian_kl(mu, logvar).sum(1)).numpy()
        at_mean = (reconstruction_loss(model.decode_logits(mu), x, "bce") + gaussian_kl(mu, logvar).sum(1)).numpy()
    assert np.allclose(scores, expected, rtol=1e-5)
    assert not np.allclose(scores, at_mean, rtol=1e-3)
    halves = np.concatenate([encode_all(model, x[:17].numpy()).neg_elbo, encode_all(model, x[17:].numpy()).neg_elbo])
    assert np.allclose(halves, scores, rtol=1e-5)                                   # independent of batching


def test_isolation_forest_scores_outliers_higher_and_repeats():
    from app.core.analysis.anomaly import isolation_forest_scores

    rng = np.random.default_rng(0)
    train = rng.standard_normal((300, 4))
    x = np.concatenate([rng.standard_normal((50, 4)), rng.standard_normal((10, 4)) + 6.0])
    scores = isolation_forest_scores(train, x, seed=0)
    assert scores.shape == (60,) and np.array_equal(scores, isolation_forest_scores(train, x, seed=0))
    assert detection_metrics(scores, np.arange(60) >= 50)["auc"] > 0.99


def test_tabular_anomaly_tip_only_for_tables_with_other_settings():
    from app.core.analysis.anomaly import TABULAR_ANOMALY_MODEL, anomaly_recommendation
    from app.core.config import ModelConfig, TrainConfig

    def run(modality, **model):
        return SimpleNamespace(meta={"modality": modality}, model_cfg=ModelConfig(**model),
                               train_cfg=TrainConfig(batch_size=32))

    assert "--hidden 64,32 --dropout 0.2 --batch-size 32" in anomaly_recommendation(run("tabular", kind="vae"))
    assert anomaly_recommendation(run("tabular", **TABULAR_ANOMALY_MODEL)) is None
    assert anomaly_recommendation(run("image", kind="vae")) is None


def test_the_window_can_ask_whether_its_model_saw_the_anomaly_classes():
    from app.core.analysis.anomaly import classes_seen_in_training, seen_classes_warning
    from app.core.config import DataConfig
    from app.core.data import load_dataset

    data = load_dataset(DataConfig(spec="digits"))
    assert classes_seen_in_training(data, DataConfig(spec="digits"), [9]) == ["9"]
    normal = DataConfig(spec="digits", normal_classes="0-8")
    assert classes_seen_in_training(data, normal, [9]) == []
    record = SimpleNamespace(data_cfg=DataConfig(spec="digits"))
    assert "--normal-classes" in seen_classes_warning(record, ["9"]) and seen_classes_warning(record, []) is None


def test_the_tabular_anomaly_preset_holds_the_recommended_settings():
    from app.core.analysis.anomaly import TABULAR_ANOMALY_MODEL, TABULAR_ANOMALY_TRAIN
    from app.core.presets import get_preset

    preset = get_preset("tabular-anomaly")
    assert preset.model == TABULAR_ANOMALY_MODEL and preset.train == TABULAR_ANOMALY_TRAIN
