"""Training > Continue training: an opened run continues in the window to the same weights as an
unbroken run, keeps its earlier epochs, and saves a state that can be continued again."""

import torch

from app.core.checkpoint import load_run, save_run
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.session import data_info, prepare_training
from app.core.trainer import train_to_end
from app.core.training_state import has_training_state
from app.gui.continue_training import continue_run, resumable_run
from tests.gui.window_testing import make_window

CFGS = (DataConfig(spec="digits"), ModelConfig(kind="vae", latent_dim=4, hidden=(32,)))


def _train(out, epochs):
    train_cfg = TrainConfig(epochs=epochs, batch_size=64, device="cpu", kl_anneal="linear", kl_warmup_epochs=3)
    prepared = prepare_training(*CFGS, train_cfg)
    assert train_to_end(prepared.trainer).ok
    save_run(out, prepared.model, data_cfg=CFGS[0], train_cfg=train_cfg, modality="image",
             data_info=data_info(prepared.data), history=prepared.trainer.history,
             training_state=prepared.trainer.training_state())
    return prepared.model


def test_continue_training_in_the_window_matches_an_unbroken_run(qtbot, monkeypatch, tmp_path):
    whole = _train(tmp_path / "whole", 4)
    _train(tmp_path / "half", 2)
    window = make_window(qtbot, monkeypatch)
    assert not window.continue_action.isEnabled()      # digits loaded, no run opened
    with qtbot.waitSignal(window.runOpened, timeout=60_000):
        window.open_run(str(tmp_path / "half"))
    assert window.continue_action.isEnabled() and resumable_run(window) == tmp_path / "half"
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=120_000):
        assert continue_run(window, tmp_path / "half", 4)
    record = window.controller.record
    assert len(window.state.history) == 4 and len(record.history) == 4
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, record.model.state_dict()[name].cpu()), name
    record.save(tmp_path / "continued")
    assert has_training_state(tmp_path / "continued")
    assert [int(r["epoch"]) for r in load_run(tmp_path / "continued").history] == [1, 2, 3, 4]
    assert not window.errors
