"""Which samples `evaluate` scores: the held-out split by default, said in the JSON; PCA and the
table's standardisation fitted on the training split only; normal-only training and its warning."""

import json

import numpy as np
import pytest

from app.core.analysis.pca_baseline import fit_pca, pca_errors
from app.core.checkpoint import load_run, save_run
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.data import load_dataset
from app.core.evaluation import evaluate_run, scored_split
from app.core.session import data_info, load_data_for_run, prepare_training
from app.core.trainer import train_to_end


def train_and_save(out, data_cfg, model_cfg=None, **train):
    model_cfg = model_cfg or ModelConfig(kind="ae", latent_dim=3, hidden=(16,))
    train_cfg = TrainConfig(**{"epochs": 1, "batch_size": 64, "seed": 0, "device": "cpu", **train})
    prepared = prepare_training(data_cfg, model_cfg, train_cfg)
    assert train_to_end(prepared.trainer).ok
    save_run(out, prepared.model, data_cfg=data_cfg, train_cfg=prepared.trainer.cfg, modality=prepared.data.modality,
             data_info=data_info(prepared.data), history=prepared.trainer.history)
    return out, prepared


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    return train_and_save(tmp_path_factory.mktemp("r") / "ae", DataConfig(spec="digits"))[0]


def test_evaluate_scores_the_held_out_split_and_says_so(digits_run):
    report = evaluate_run(str(digits_run))
    json.dumps(report)
    assert report["split"] == "validation" and report["n"] == 359          # round(1797 * 0.2)
    assert report["model_selected_on"] == "last_epoch" and report["warnings"] == []
    everything = evaluate_run(str(digits_run), split="all")
    assert everything["split"] == "all" and everything["n"] == 1797
    # PCA fitted on the training split, scored on the validation split, as a user would compute it.
    data = load_dataset(DataConfig(spec="digits"))
    train_idx, val_idx = data.split(0.2, 0)
    expected = pca_errors(fit_pca(data.x[train_idx], 3), data.x[val_idx]).mean()
    assert report["pca_reconstruction_error"] == pytest.approx(expected, rel=1e-6)
    assert report["probes_fitted_on"] == "training split"


def test_other_data_is_external_and_limit_applies_after_the_split(digits_run, tmp_path):
    run = load_run(digits_run)
    limited = scored_split(run, limit=50)
    assert limited.split == "validation" and limited.n == 50
    own = load_dataset(DataConfig(spec="digits"))
    np.savez(tmp_path / "other.npz", x=own.x[:100], y=own.y[:100])
    external = evaluate_run(str(digits_run), spec=str(tmp_path / "other.npz"))
    assert external["split"] == "external" and external["n"] == 100


def test_active_units_only_for_vae_kinds(digits_run, tmp_path):
    assert "active_units" not in evaluate_run(str(digits_run))
    vae, _ = train_and_save(tmp_path / "vae", DataConfig(spec="digits"), ModelConfig(kind="vae", latent_dim=3, hidden=(16,)))
    assert 0 <= evaluate_run(str(vae))["active_units"] <= 3


def test_early_stopping_says_the_model_was_selected_on_the_validation_split(tmp_path):
    run, _ = train_and_save(tmp_path / "es", DataConfig(spec="digits"), epochs=2, patience=1)
    report = evaluate_run(str(run))
    assert report["model_selected_on"] == "validation"
    assert any("optimistic" in w for w in report["warnings"])


def _csv(path, rows, rng):
    x = rng.normal([5.0, -3.0, 100.0], [1.0, 2.0, 10.0], size=(rows, 3))
    lines = ["a,b,c,label"] + [f"{a},{b},{c},{i % 2}" for i, (a, b, c) in enumerate(x)]
    path.write_text("\n".join(lines) + "\n")
    return x


def test_table_standardisation_is_fitted_on_the_training_split_and_reused(tmp_path):
    raw = _csv(tmp_path / "t.csv", 200, np.random.default_rng(0))
    cfg = DataConfig(spec=str(tmp_path / "t.csv"), label_column="label")
    run_dir, prepared = train_and_save(tmp_path / "tab", cfg, batch_size=32)
    train_idx, val_idx = prepared.train_idx, prepared.val_idx
    norm = json.loads((run_dir / "model.json").read_text())["data_info"]["normalisation"]
    assert norm["mean"] == pytest.approx(raw[train_idx].mean(0).tolist(), rel=1e-6)
    assert norm["std"] == pytest.approx(raw[train_idx].std(0).tolist(), rel=1e-6)
    assert norm["mean"] != pytest.approx(raw.mean(0).tolist(), rel=1e-4)         # not all rows
    assert np.abs(prepared.data.x[train_idx].mean(0)).max() < 1e-5
    reloaded = load_data_for_run(load_run(run_dir))
    assert np.allclose(reloaded.x, prepared.data.x, atol=1e-5)                   # the training scale, again


def test_normal_classes_train_without_them_and_evaluate_warns_otherwise(tmp_path):
    normal_run, prepared = train_and_save(tmp_path / "normal", DataConfig(spec="digits", normal_classes="0-8"))
    y = prepared.data.y
    assert 9 not in set(y[prepared.train_idx]) and 9 in set(y[prepared.val_idx])
    assert len(prepared.val_idx) == 359                                   # validation keeps every class
    assert load_run(normal_run).data_cfg.normal_classes == "0-8"         # recorded in model.json
    clean = evaluate_run(str(normal_run), anomaly_classes="9")
    assert clean["anomaly_classes_seen_in_training"] == [] and clean["warnings"] == []
    assert clean["isolation_forest_anomaly_auc"] is not None and clean["pca_anomaly_auc"] is not None
    everything, _ = train_and_save(tmp_path / "all", DataConfig(spec="digits"))
    seen = evaluate_run(str(everything), anomaly_classes="9")
    assert seen["anomaly_classes_seen_in_training"] == ["9"]
    assert any("--normal-classes" in w for w in seen["warnings"])


def test_normal_classes_parse_ranges_names_and_refuse_bad_input(tmp_path):
    from app.core.data.splits import parse_class_list
    from app.core.errors import ConfigError, DataError

    data = load_dataset(DataConfig(spec="digits"))
    assert parse_class_list("0-8", data) == list(range(9))
    assert parse_class_list("0,1, 2", data) == [0, 1, 2]
    for bad in ("8-0", "banana", "42"):
        with pytest.raises(ConfigError):
            parse_class_list(bad, data)
    np.savez(tmp_path / "unlabelled.npz", x=np.random.default_rng(0).random((40, 3)))
    with pytest.raises(DataError, match="no labels"):
        prepare_training(DataConfig(spec=str(tmp_path / "unlabelled.npz"), normal_classes="0"), ModelConfig(kind="ae"),
                         TrainConfig(epochs=1, batch_size=8))


def test_export_says_which_split_it_wrote_and_tips_tabular_anomaly_defaults(tmp_path):
    from app.core.evaluation import export_run

    _csv(tmp_path / "t.csv", 120, np.random.default_rng(1))
    run_dir, _ = train_and_save(tmp_path / "tab", DataConfig(spec=str(tmp_path / "t.csv"), label_column="label"),
                                batch_size=32)
    notes: list = []
    export_run(str(run_dir), scores=str(tmp_path / "s.csv"), notes=notes)
    assert notes[0] == "scored 120 samples (all split of t.csv)"
    assert "--hidden 64,32 --dropout 0.2 --batch-size 32" in notes[1]
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 121
    held_out: list = []
    export_run(str(run_dir), scores=str(tmp_path / "v.csv"), split="validation", notes=held_out)
    assert held_out[0] == "scored 24 samples (validation split of t.csv)"
