"""Presets and recommended settings (app/core/presets.py): resolution, explicit settings winning,
clear errors, the differences the training form shows, and `main.py train --preset`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import MODEL_KINDS, DataConfig, ModelConfig, TrainConfig, validate
from app.core.errors import ConfigError
from app.core.presets import PRESETS, RECOMMENDED, apply_preset, differences, get_preset, recommended, summary

ROOT = Path(__file__).resolve().parents[2]


def test_disentangle_preset_sets_the_measured_setting():
    data, model, train = apply_preset("disentangle", DataConfig(), ModelConfig(), TrainConfig())
    assert data.spec == "shapes"
    assert (model.kind, model.latent_dim, model.hidden, model.beta) == ("vae", 10, (400,), 16.0)
    assert (train.epochs, train.batch_size, train.lr) == (100, 64, 1e-3)
    assert train.seed == TrainConfig().seed and data.val_fraction == DataConfig().val_fraction  # untouched


def test_settings_given_explicitly_win_over_the_preset():
    data, model, train = apply_preset("disentangle", DataConfig(), ModelConfig(beta=12.0), TrainConfig(epochs=3),
                                      explicit={"ModelConfig": {"beta"}, "TrainConfig": {"epochs"}})
    assert model.beta == 12.0 and train.epochs == 3
    assert model.kind == "vae" and train.batch_size == 64


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError, match="unknown preset 'disentangel'; choose one of disentangle"):
        get_preset("disentangel")


def test_every_preset_and_recommendation_is_a_valid_setting():
    for preset in [*PRESETS.values(), *RECOMMENDED.values()]:
        for cfg in apply_preset(preset, DataConfig(), ModelConfig(), TrainConfig()):
            validate(cfg)
    for (spec, kind) in RECOMMENDED:
        assert spec in ("digits", "shapes", "sines") and kind in MODEL_KINDS


def test_every_built_in_pair_that_fits_has_a_recommendation():
    image_kinds = [k for k in MODEL_KINDS if k != "rnn-ae"]
    for spec in ("digits", "shapes"):
        assert all(recommended(spec, kind) is not None for kind in image_kinds), spec
        assert recommended(spec, "rnn-ae") is None                   # an image set cannot feed rnn-ae
    assert recommended("sines", "rnn-ae") is not None
    assert recommended("/data/my.csv", "vae") is None


def test_differences_list_what_the_recommendation_would_change():
    diffs = differences(DataConfig(spec="digits"), ModelConfig(kind="vae"), TrainConfig())
    changed = {(d.section, d.name): (d.current, d.recommended) for d in diffs}
    assert changed[("TrainConfig", "epochs")] == (10, 40)
    assert changed[("TrainConfig", "lr")] == (1e-3, 3e-3)
    assert changed[("ModelConfig", "latent_dim")] == (10, 8)
    assert changed[("ModelConfig", "hidden")] == ((400,), (256,))
    assert "epochs 10 -> 40" in summary(diffs) and "hidden 400 -> 256" in summary(diffs)
    data, model, train = apply_preset(recommended("digits", "vae"), DataConfig(spec="digits"), ModelConfig(kind="vae"),
                                      TrainConfig())
    assert differences(data, model, train) == []
    assert differences(DataConfig(spec="/tmp/x.npz"), ModelConfig(), TrainConfig()) == []


def test_cli_train_with_the_preset_and_an_explicit_override(tmp_path):
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "main.py", "train", "--preset", "disentangle", "--n-samples", "300",
                          "--hidden", "16", "--epochs", "1", "--quiet", "--out", str(run)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "preset disentangle" in out.stderr
    meta = json.loads((run / "model.json").read_text())
    assert meta["data"]["spec"] == "shapes"
    assert meta["model"]["kind"] == "vae" and meta["model"]["beta"] == 16.0
    assert meta["model"]["hidden"] == [16] and meta["train"]["epochs"] == 1 and meta["train"]["batch_size"] == 64


def test_cli_refuses_an_unknown_preset():
    out = subprocess.run([sys.executable, "main.py", "train", "--preset", "nope", "--out", "x"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "disentangle" in out.stderr
