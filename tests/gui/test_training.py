"""Training from the window: the loss curve grows, pause/resume/stop, divergence, save and reopen,
and the training form generated from the config dataclasses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from window_testing import make_window, small_model

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.gui.config_form import ConfigForm, NumberSpinBox
from app.gui.training_panel import TrainingPanel


@pytest.fixture
def window(qtbot, monkeypatch):
    return make_window(qtbot, monkeypatch)


def train_and_wait(qtbot, window, timeout=120_000):
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=timeout) as stopped:
        assert window.start_training()
    return stopped.args[0]


# --- training ---------------------------------------------------------------------------------
def test_training_two_epochs_grows_the_loss_curve(qtbot, window):
    small_model(window, epochs=2)
    assert window.loss_view.curve_points() == 0
    with qtbot.waitSignal(window.controller.runStateChanged, timeout=10_000) as started:
        assert window.start_training()
    assert started.args == ["running"]
    assert not window.training_panel.train_button.isEnabled()
    assert window.training_panel.stop_button.isEnabled()
    assert not window.save_run_action.isEnabled()   # never save weights half-way through a run
    assert window.device_label.text().startswith("Training on: CPU")
    worker = window.controller.worker
    with qtbot.waitSignal(worker.trainingFinished, timeout=120_000) as finished:
        pass
    assert finished.args[0].reason == "completed"
    qtbot.waitUntil(lambda: window.loss_view.curve_points("train_loss") == 2, timeout=5_000)
    assert window.loss_view.curve_points("val_loss") == 2
    assert window.loss_view.curve_points("train_kl") == 2        # each loss part has its own curve
    assert len(window.state.history) == 2
    qtbot.waitUntil(lambda: window.controller.worker is None, timeout=10_000)   # the thread ended
    assert window.training_panel.train_button.isEnabled()
    assert window.save_run_action.isEnabled()
    assert window.state.snapshot is not None and window.state.snapshot.epoch == 2
    assert window.state.preview_recon is not None
    assert window.state.preview_recon.shape == window.state.data.x[window.state.preview_idx].shape
    qtbot.waitUntil(lambda: window.state.encoded is not None, timeout=30_000)
    assert window.state.encoded.codes.shape == (len(window.state.view_idx), 4)
    assert "completed" in window.training_panel.progress_label.text().lower()
    assert window.training_panel.progress.value() == 1000
    assert window.errors == []


def test_pause_holds_training_and_resume_finishes_it(qtbot, window):
    small_model(window, epochs=40)
    progress = []
    window.controller.progressed.connect(progress.append)
    window.controller.epochEnded.connect(lambda result, epochs: progress.append(result))
    with qtbot.waitSignal(window.controller.epochEnded, timeout=30_000):
        assert window.start_training()
    window.training_panel.pause_button.click()
    assert window.controller.run_state == "paused"
    assert window.training_panel.resume_button.isEnabled() and not window.training_panel.pause_button.isEnabled()
    assert window.pause_action.text() == "Resume"
    qtbot.wait(300)   # let a report already on its way arrive
    seen, epochs = len(progress), len(window.state.history)
    qtbot.wait(700)
    assert len(progress) == seen and len(window.state.history) == epochs, "training went on while paused"
    assert window.controller.running and not window.controller.worker.isFinished()
    assert "Paused" in window.training_panel.progress_label.text()
    assert "ETA" in window.training_panel.progress_label.text()
    assert 0 < window.training_panel.progress.value() < 1000

    with qtbot.waitSignal(window.controller.trainingStopped, timeout=120_000) as stopped:
        window.training_panel.resume_button.click()
    assert stopped.args[0].reason == "completed"
    assert len(window.state.history) == 40


def test_stop_cancels_and_keeps_the_model(qtbot, window):
    small_model(window, epochs=5000)
    assert window.start_training()
    qtbot.waitUntil(lambda: len(window.state.history) >= 1, timeout=30_000)
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=30_000) as stopped:
        window.stop_action.trigger()
    finished = stopped.args[0]
    assert finished.reason == "cancelled"
    assert finished.epochs_run >= 1
    assert window.state.snapshot is not None
    assert window.save_run_action.isEnabled()
    assert window.errors == []


def test_diverging_training_reports_and_keeps_the_model(qtbot, window):
    small_model(window, epochs=3, kind="ae", loss="mse", lr=10.0, optimizer="sgd")
    finished = train_and_wait(qtbot, window)
    assert finished.reason == "diverged"
    assert any("diverged" in e and "NaN" in e for e in window.errors)
    assert window.state.snapshot is not None           # the last good weights stay explorable
    assert window.training_panel.train_button.isEnabled()


def test_impossible_setting_is_reported_not_trained(qtbot, window):
    small_model(window, epochs=1, kind="rnn-ae")          # digits are images, not sequences
    assert not window.start_training()
    assert any("rnn-ae needs sequence data" in e for e in window.errors)
    assert window.controller.worker is None


def test_saved_run_reopens_with_same_history_and_decoder(qtbot, monkeypatch, window, tmp_path):
    small_model(window, epochs=2)
    train_and_wait(qtbot, window)
    run_dir = tmp_path / "digits-vae"
    with qtbot.waitSignal(window.runSaved, timeout=30_000):
        window.save_run_to(str(run_dir))
    assert (run_dir / "model.json").is_file() and (run_dir / "metrics.csv").is_file()
    assert not window.controller.record.unsaved

    fresh = make_window(qtbot, monkeypatch, load=None)
    with qtbot.waitSignal(fresh.runOpened, timeout=60_000):
        fresh.open_path(str(run_dir))   # a run directory is recognised as a run, not as data
    assert len(fresh.state.history) == len(window.state.history) == 2
    z = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(fresh.state.snapshot.decode(z), window.state.snapshot.decode(z))
    assert fresh.state.data is not None and fresh.state.data.name == "digits"
    qtbot.waitUntil(lambda: fresh.state.encoded is not None, timeout=30_000)
    qtbot.waitUntil(lambda: fresh.loss_view.curve_points() == 2, timeout=5_000)
    # The form shows the run's settings, so Train repeats it.
    _, model_cfg, train_cfg = fresh.training_panel.configs()
    assert model_cfg.hidden == (64,) and model_cfg.latent_dim == 4 and train_cfg.epochs == 2
    assert fresh.save_run_action.isEnabled()
    assert fresh.errors == []


def test_save_failure_is_shown_and_model_kept(qtbot, window, tmp_path):
    small_model(window, epochs=1)
    train_and_wait(qtbot, window)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    window.save_run_to(str(blocker / "run"))
    qtbot.waitUntil(lambda: bool(window.errors), timeout=30_000)
    assert "Could not save the run" in window.errors[-1]
    assert window.controller.record.unsaved


def test_run_with_missing_data_still_opens(qtbot, monkeypatch, window, tmp_path):
    import json

    small_model(window, epochs=1)
    train_and_wait(qtbot, window)
    run_dir = tmp_path / "run"
    with qtbot.waitSignal(window.runSaved, timeout=30_000):
        window.save_run_to(str(run_dir))
    meta = json.loads((run_dir / "model.json").read_text())
    meta["data"]["spec"] = str(tmp_path / "gone.npz")
    (run_dir / "model.json").write_text(json.dumps(meta))

    fresh = make_window(qtbot, monkeypatch, load=None)
    with qtbot.waitSignal(fresh.runOpened, timeout=60_000):
        fresh.open_run(str(run_dir))
    assert fresh.state.snapshot is not None and len(fresh.state.history) == 1
    assert any("gone.npz" in e and "could not be loaded" in e for e in fresh.errors)


def test_opening_a_broken_run_keeps_everything(qtbot, window, tmp_path):
    (tmp_path / "model.json").write_text("{not json")
    data = window.state.data
    with qtbot.waitSignal(window.runOpenFailed, timeout=30_000):
        window.open_path(str(tmp_path))
    assert "not valid JSON" in window.errors[-1]
    assert window.state.data is data


# --- the training form ------------------------------------------------------------------------
def test_invalid_hidden_disables_train_with_the_reason(qtbot):
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.set_data_shape((1, 8, 8))
    assert panel.train_button.isEnabled()
    panel.model_form.widgets["hidden"].setText("40,x")
    assert not panel.train_button.isEnabled()
    assert "hidden layers" in panel.error_label.text() and "40,x" in panel.error_label.text()
    assert not panel.error_label.isHidden()
    panel.model_form.widgets["hidden"].setText("40,20")
    assert panel.train_button.isEnabled() and panel.error_label.isHidden()
    panel.model_form.widgets["hidden"].setText("40,0")     # parses, but validate() refuses it
    assert not panel.train_button.isEnabled() and "hidden" in panel.error_label.text()
    # A bad value in a field that the chosen kind hides must not block Train unseen.
    kind = panel.model_form.widgets["kind"]
    kind.setCurrentIndex(kind.findData("conv-vae"))
    assert not panel.model_form.is_field_visible("hidden")
    assert panel.train_button.isEnabled() and panel.model_form.widgets["hidden"].text() == "400"


def test_train_needs_data(qtbot):
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    assert not panel.train_button.isEnabled()
    assert "Load data" in panel.train_button.toolTip()


def test_config_form_round_trip(qtbot):
    form = ConfigForm(ModelConfig)
    qtbot.addWidget(form)
    assert form.values() == ModelConfig()
    cfg = ModelConfig(kind="sparse", latent_dim=7, hidden=(300, 100, 50), beta=4.0, sparsity="kl",
                      sparsity_weight=2.5e-4, sparsity_target=0.02, channels=(16,), rnn_cell="lstm", dropout=0.25)
    form.set_values(cfg)
    assert form.values() == cfg
    assert form.widgets["hidden"].text() == "300,100,50"
    assert form.widgets["sparsity_weight"].text() == "0.00025"   # not "0.000250000000"

    train = ConfigForm(TrainConfig)
    qtbot.addWidget(train)
    tcfg = TrainConfig(epochs=3, batch_size=64, lr=3e-4, optimizer="adamw", device="cpu", kl_anneal="cyclical")
    train.set_values(tcfg)
    assert train.values() == tcfg

    split = ConfigForm(DataConfig, ("val_fraction", "split_seed"))
    qtbot.addWidget(split)
    split.set_values(DataConfig(spec="shapes", val_fraction=0.1, split_seed=5))
    assert list(split.widgets) == ["val_fraction", "split_seed"]
    assert split.values() == DataConfig(spec="shapes", val_fraction=0.1, split_seed=5)   # unshown fields kept


def test_config_form_widgets_follow_the_metadata(qtbot):
    form = ConfigForm(ModelConfig)
    qtbot.addWidget(form)
    kinds = [form.widgets["kind"].itemData(i) for i in range(form.widgets["kind"].count())]
    assert tuple(kinds) == dataclasses.fields(ModelConfig)[0].metadata["choices"]
    assert form.widgets["latent_dim"].minimum() == 1 and form.widgets["latent_dim"].maximum() == 4096
    assert isinstance(form.widgets["beta"], NumberSpinBox) and form.widgets["beta"].maximum() == 1000.0
    assert form.widgets["latent_dim"].toolTip() == "Size of the latent code"
    assert form.advanced is not None and not form.advanced.is_expanded()
    assert form.widgets["activation"].parent() is form.advanced.content   # advanced fields are tucked away
    form.advanced.set_expanded(True)
    assert form.advanced.is_expanded()


def test_number_spin_box_accepts_scientific_notation(qtbot):
    from PySide6.QtGui import QValidator

    box = NumberSpinBox()
    qtbot.addWidget(box)
    box.setRange(1e-8, 10.0)
    assert box.validate("1e-4", 0)[0] == QValidator.State.Acceptable
    assert box.validate("1e-", 0)[0] == QValidator.State.Intermediate
    assert box.validate("abc", 0)[0] == QValidator.State.Invalid
    assert box.valueFromText("2.5e-3") == pytest.approx(2.5e-3)
    box.setValue(1e-3)
    box.stepBy(1)
    assert box.value() == pytest.approx(1.1e-3)      # one step is one decimal digit of the value


def test_panel_shows_only_fields_of_the_chosen_kind(qtbot):
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    model = panel.model_form

    def choose(kind):
        model.widgets["kind"].setCurrentIndex(model.widgets["kind"].findData(kind))

    choose("vae")
    assert model.is_field_visible("beta") and not model.is_field_visible("noise_level")
    assert panel.train_form.is_field_visible("kl_anneal")
    assert not panel.train_form.is_field_visible("kl_warmup_epochs")     # only with annealing on
    choose("denoising")
    assert model.is_field_visible("noise") and model.is_field_visible("noise_level")
    assert not model.is_field_visible("beta") and not panel.train_form.is_field_visible("kl_anneal")
    choose("sparse")
    assert model.is_field_visible("sparsity_weight") and not model.is_field_visible("sparsity_target")
    model.widgets["sparsity"].setCurrentIndex(model.widgets["sparsity"].findData("kl"))
    assert model.is_field_visible("sparsity_target")
    choose("contractive")
    assert model.is_field_visible("contractive_weight") and not model.is_field_visible("sparsity_weight")
    choose("conv-vae")
    assert model.is_field_visible("channels") and model.is_field_visible("beta")
    assert not model.is_field_visible("hidden")
    choose("rnn-ae")
    assert model.is_field_visible("rnn_cell") and model.is_field_visible("rnn_hidden")
    assert not model.is_field_visible("channels") and not model.is_field_visible("hidden")
    assert "GRU/LSTM" in panel.kind_help.text()
    # Hidden fields still hold their values, so values() is a complete config.
    assert panel.model_form.values().beta == 1.0


def test_panel_warns_about_settings_that_build_but_mislead(qtbot):
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.set_data_shape((1, 8, 8))
    model = panel.model_form.widgets
    model["kind"].setCurrentIndex(model["kind"].findData("ae"))
    model["latent_dim"].setValue(100)
    assert "overcomplete" in panel.warning_label.text()
    assert not panel.warning_label.isHidden()
    assert panel.train_button.isEnabled()           # a warning does not block training
