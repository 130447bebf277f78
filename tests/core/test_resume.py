"""Resume equals uninterrupted training; warm-start reports what it took; hostile states are refused."""

import json

import pytest
import torch

from app.core.checkpoint import load_run, save_run
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.errors import CheckpointError, ConfigError
from app.core.resume import prepare_resume, warm_start
from app.core.session import data_info, prepare_training
from app.core.trainer import train_to_end
from app.core.training_state import STATE_META, STATE_TENSORS


def _train_and_save(out, kind="vae", epochs=2, **train):
    data = DataConfig(spec="digits")
    model = ModelConfig(kind=kind, latent_dim=4, hidden=(32,))
    train_cfg = TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, device="cpu", **train)
    prepared = prepare_training(data, model, train_cfg)
    finished = train_to_end(prepared.trainer)
    assert finished.reason == "completed", finished.message
    save_run(out, prepared.model, data_cfg=data, train_cfg=train_cfg, modality=prepared.data.modality,
             data_info=data_info(prepared.data), history=prepared.trainer.history,
             training_state=prepared.trainer.training_state())
    return prepared


def _resume_and_save(run_dir, epochs):
    plan = prepare_resume(run_dir, epochs=epochs)
    finished = train_to_end(plan.prepared.trainer)
    assert finished.reason == "completed", finished.message
    save_run(run_dir, plan.prepared.model, data_cfg=plan.data_cfg, train_cfg=plan.train_cfg,
             modality=plan.prepared.data.modality, data_info=data_info(plan.prepared.data),
             history=plan.full_history(), training_state=plan.prepared.trainer.training_state())
    return plan


@pytest.mark.parametrize("kind,extra", [("vae", {"kl_anneal": "linear", "kl_warmup_epochs": 3}),
                                        ("denoising", {}), ("aae", {"optimizer": "sgd"})])
def test_resume_gives_the_weights_of_an_unbroken_run(tmp_path, kind, extra):
    whole = _train_and_save(tmp_path / "whole", kind, epochs=4, **extra)
    _train_and_save(tmp_path / "split", kind, epochs=2, **extra)
    plan = _resume_and_save(tmp_path / "split", epochs=4)
    assert plan.epochs_done == 2
    resumed = plan.prepared.model.state_dict()
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, resumed[name]), name
    # The annealing position and losses continue too: epochs 3 and 4 match row by row.
    again = load_run(tmp_path / "split")
    assert [int(r["epoch"]) for r in again.history] == [1, 2, 3, 4]
    for a, b in zip(whole.trainer.history[2:], plan.prepared.trainer.history):
        assert a.epoch == b.epoch and a.beta == b.beta and a.train_loss == b.train_loss and a.val_loss == b.val_loss
    # The saved state moved on with the run: resuming once more continues from epoch 4.
    assert json.loads((tmp_path / "split" / STATE_META).read_text())["epochs_done"] == 4


def test_resume_refuses_a_total_not_above_the_epochs_done(tmp_path):
    _train_and_save(tmp_path / "run", epochs=2)
    with pytest.raises(ConfigError, match="already trained 2 epochs"):
        prepare_resume(tmp_path / "run", epochs=2)


def test_resume_without_state_says_to_warm_start(tmp_path):
    prepared = _train_and_save(tmp_path / "run", epochs=1)
    (tmp_path / "run" / STATE_META).unlink()
    with pytest.raises(CheckpointError, match="--init-from"):
        prepare_resume(tmp_path / "run", epochs=3)
    assert prepared is not None


@pytest.mark.parametrize("damage", ["truncate", "garbage_json", "foreign_weights", "huge_epoch", "bad_shape"])
def test_hostile_training_states_are_refused_with_a_message(tmp_path, damage):
    _train_and_save(tmp_path / "run", epochs=1)
    meta_path, tensors_path = tmp_path / "run" / STATE_META, tmp_path / "run" / STATE_TENSORS
    meta = json.loads(meta_path.read_text())
    if damage == "truncate":
        tensors_path.write_bytes(tensors_path.read_bytes()[:100])
    elif damage == "garbage_json":
        meta_path.write_bytes(b"\xff{[[[")
    elif damage == "foreign_weights":
        meta["weights_sha256"] = "0" * 64
        meta_path.write_text(json.dumps(meta))
    elif damage == "huge_epoch":
        meta["epochs_done"] = -5
        meta_path.write_text(json.dumps(meta))
    elif damage == "bad_shape":
        from safetensors.torch import load, save
        import hashlib
        tensors = load(tensors_path.read_bytes())
        name = next(k for k in tensors if k.endswith("exp_avg"))
        tensors[name] = torch.zeros(3, 3)
        blob = save(tensors)
        tensors_path.write_bytes(blob)
        meta["tensors_sha256"] = hashlib.sha256(blob).hexdigest()
        meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as info:
        prepare_resume(tmp_path / "run", epochs=3)
    assert "training_state" in str(info.value)


def test_warm_start_reports_the_tensors_taken(tmp_path):
    _train_and_save(tmp_path / "source", "vae", epochs=1)
    source = load_run(tmp_path / "source")
    # A larger latent size: the trunk fits, the code heads and the decoder's first weight do not.
    data = DataConfig(spec="digits")
    target = prepare_training(data, ModelConfig(kind="vae", latent_dim=6, hidden=(32,)), TrainConfig(epochs=1))
    report = warm_start(target.model, tmp_path / "source")
    assert set(report.encoder_taken) == {"trunk.0.weight", "trunk.0.bias"}
    assert "decoder.2.weight" in report.decoder_taken and "decoder.2.bias" in report.decoder_taken
    assert dict(report.skipped)["to_mu.weight"].startswith("shape [4, 32] there")
    assert torch.equal(target.model.state_dict()["trunk.0.weight"], source.model.state_dict()["trunk.0.weight"])
    assert "decoder.0.bias" in report.decoder_taken  # a bias fits whatever the latent size
    assert "took 2 encoder and 3 decoder tensor(s)" in report.summary()


def test_warm_start_from_an_unrelated_model_is_refused(tmp_path):
    _train_and_save(tmp_path / "source", "vae", epochs=1)
    target = prepare_training(DataConfig(spec="digits"), ModelConfig(kind="ae", latent_dim=4, hidden=(16,)),
                              TrainConfig(epochs=1))
    with pytest.raises(ConfigError, match="none of its encoder tensors fits"):
        warm_start(target.model, tmp_path / "source")


def test_cli_resume_and_init_from(tmp_path, capsys):
    from app.cli import main

    common = ["--data", "digits", "--model", "vae", "--hidden", "32", "--latent-dim", "4", "--device", "cpu", "--quiet"]
    assert main(["train", *common, "--epochs", "2", "--out", str(tmp_path / "a")]) == 0
    assert main(["train", "--resume", str(tmp_path / "a"), "--epochs", "3", "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().err
    assert [int(r["epoch"]) for r in load_run(tmp_path / "a").history] == [1, 2, 3]
    assert main(["train", "--resume", str(tmp_path / "a"), "--epochs", "5", "--lr", "0.1"]) == 1
    assert "drop --lr" in capsys.readouterr().err
    assert main(["train", *common[:6], "--latent-dim", "8", "--epochs", "1", "--quiet",
                 "--init-from", str(tmp_path / "a"), "--out", str(tmp_path / "b")]) == 0
    assert "taken   trunk.0.weight" in capsys.readouterr().err
