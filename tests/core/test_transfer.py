"""The few-label transfer curve: every point and its error bar, for every method, held-out scoring."""

import json

import numpy as np
import pytest

from app.core.analysis.transfer import METHODS, draw_labelled, label_efficiency, transfer_for_run
from app.core.checkpoint import load_run, save_run
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.errors import DataError
from app.core.session import data_info, prepare_training
from app.core.trainer import train_to_end


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer") / "run"
    data_cfg = DataConfig(spec="digits")
    train_cfg = TrainConfig(epochs=3, batch_size=64, device="cpu")
    prepared = prepare_training(data_cfg, ModelConfig(kind="ae", latent_dim=8, hidden=(32,)), train_cfg)
    assert train_to_end(prepared.trainer).ok
    save_run(out, prepared.model, data_cfg=data_cfg, train_cfg=train_cfg, modality=prepared.data.modality,
             data_info=data_info(prepared.data), history=prepared.trainer.history)
    return out


def test_curve_has_every_point_and_its_error_bar(digits_run):
    calls = []
    result = transfer_for_run(digits_run, labels_per_class=(3, 10, 5000), draws=3,
                              progress=lambda done, total: calls.append((done, total)))
    assert result.used_per_class[:2] == [3, 10] and 100 < result.used_per_class[2] < 5000   # capped
    assert any("capped" in n for n in result.notes)
    assert list(result.accuracies) == list(METHODS)
    for m in METHODS:
        assert len(result.accuracies[m]) == 3 and all(len(draws) == 3 for draws in result.accuracies[m])
        means, stds = result.mean(m), result.std(m)
        assert all(0.0 <= v <= 1.0 for v in means) and all(np.isfinite(s) and s >= 0 for s in stds)
        assert means[-1] > means[0], (m, means)   # more labels help
    assert stds != [0.0, 0.0, 0.0]
    assert result.mean("raw")[-1] > 0.85   # digits are easy from raw pixels with all labels
    assert calls[-1] == (3 * 3 * 4, 3 * 3 * 4)
    assert "held-out validation split" in result.split and result.n_test == 359
    rows = result.to_csv().splitlines()
    assert rows[0].startswith("method,labels_per_class") and len(rows) == 1 + 4 * 3
    blob = result.to_json()
    assert "3.33%" in blob["anchor"] and blob["draws"] == 3 and set(blob["methods"]) == set(METHODS)


def test_draws_take_n_per_class_without_repeats():
    y = np.repeat(np.arange(4), 20)
    pick = draw_labelled(y, 5, np.random.default_rng(0))
    assert len(set(pick)) == 20 and np.bincount(y[pick]).tolist() == [5, 5, 5, 5]


def test_unlabelled_data_is_refused(digits_run):
    run = load_run(digits_run)
    from app.core.session import load_data_for_run
    data = load_data_for_run(run)
    data.y = None
    with pytest.raises(DataError, match="has no labels"):
        label_efficiency(run.model, data, (5,), draws=1)


def test_cli_transfer_json(digits_run, capsys, tmp_path):
    from app.cli import main

    assert main(["transfer", str(digits_run), "--labels-per-class", "5,10", "--draws", "2", "--no-fine-tune",
                 "--json", "--csv", str(tmp_path / "curve.csv")]) == 0
    blob = json.loads(capsys.readouterr().out)
    assert blob["used_per_class"] == [5, 10] and set(blob["methods"]) == {"codes", "pca", "raw"}
    assert (tmp_path / "curve.csv").read_text().count("\n") == 1 + 3 * 2
