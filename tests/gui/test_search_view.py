"""The Search dock: starts a search as a separate process, follows its journal live, sorts the
table numerically, plots the objective against a setting, opens a trial, and stops cleanly."""

from pathlib import Path

import pytest

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.data import load_dataset
from app.core.search import read_search, run_search, spec_from_settings
from app.gui.search_view import SearchView
from app.gui.state import ExplorerState

TINY = (DataConfig(spec="digits"), ModelConfig(kind="vae", latent_dim=4, hidden=(16,)),
        TrainConfig(epochs=2, batch_size=64, device="cpu"))


@pytest.fixture
def view(qtbot):
    state = ExplorerState()
    state.set_data(load_dataset(DataConfig(spec="digits")))
    opened = []
    view = SearchView(state, configs=lambda: TINY, open_run=opened.append)
    view.opened = opened
    qtbot.addWidget(view)
    yield view
    view.shutdown()


def test_start_runs_the_search_and_fills_the_table(qtbot, view, tmp_path):
    view.space_edit.setPlainText("lr = [1e-3, 3e-3, 1e-2]\n")
    assert "grid has 3 points" in view.status.text()
    view.method_box.setCurrentText("grid")
    view.pruner_box.setCurrentText("none")
    view.trials_box.setValue(3)
    view.folder_edit.setText(str(tmp_path / "s"))
    assert view.start()
    assert not view.start_button.isEnabled() and view.stop_button.isEnabled()
    qtbot.waitUntil(lambda: view.process is None, timeout=400_000)
    assert len(view.rows) == 3 and all(r["state"] == "complete" for r in view.rows)
    assert view.table.rowCount() == 3 and view.table.horizontalHeaderItem(2).text() == "val_loss"
    view.table.sortItems(2)   # numeric sort of the objective column
    values = [view.table.item(r, 2).value for r in range(3)]
    assert values == sorted(values)
    assert view.x_box.currentText() == "lr"
    assert len(view.scatter.data) == 3 and len(view.best_marker.data) == 1
    assert view.open_trial(0)
    assert Path(view.opened[-1], "model.json").exists()
    assert "trials 3/3" in view.status.text()


def test_follows_a_search_started_elsewhere(qtbot, view, tmp_path):
    spec = spec_from_settings(*TINY, 'latent_dim = [2, 4]\nmodel = ["vae", "ae"]\n', method="grid", trials=4,
                              pruner="none")
    run_search(tmp_path / "cli", spec)
    assert view.follow(tmp_path / "cli")
    assert view.method_box.currentText() == "grid" and "latent_dim" in view.space_edit.toPlainText()
    assert view.table.rowCount() == 4 and set(view.settings_columns()) == {"latent_dim", "kind"}
    view.x_box.setCurrentText("kind")   # categorical setting: one tick per choice
    ticks = view.plot.getPlotItem().getAxis("bottom")._tickLevels
    assert [t[1] for t in ticks[0]] == ["ae", "vae"]
    assert read_search(tmp_path / "cli")[1] == view.rows


def test_stop_keeps_finished_trials_and_start_resumes(qtbot, view, tmp_path):
    view.space_edit.setPlainText("lr = { low = 1e-3, high = 1e-2, log = true }\n")
    view._configs = lambda: (TINY[0], TINY[1], TrainConfig(epochs=60, batch_size=64, device="cpu"))
    view.method_box.setCurrentText("random")
    view.pruner_box.setCurrentText("none")
    view.trials_box.setValue(30)
    view.folder_edit.setText(str(tmp_path / "s"))
    assert view.start()
    qtbot.waitUntil(lambda: any(r["state"] == "complete" for r in view.rows), timeout=400_000)
    view.stop()
    qtbot.waitUntil(lambda: view.process is None, timeout=400_000)
    states = [r["state"] for r in view.rows]
    assert "complete" in states and len(states) < 30 and set(states) <= {"complete", "cancelled", "waiting"}
    kept = [r["value"] for r in view.rows if r["state"] == "complete"]
    view.trials_box.setValue(len(kept) + 1)   # resume, asking for one more trial
    assert view.start()
    qtbot.waitUntil(lambda: view.process is None, timeout=400_000)
    assert [r["value"] for r in view.rows if r["state"] == "complete"][:len(kept)] == kept
    assert sum(r["state"] == "complete" for r in view.rows) == len(kept) + 1


def test_a_bad_space_is_refused_with_its_message(view, tmp_path):
    view.space_edit.setPlainText("learning_rate = [1]\n")
    view.folder_edit.setText(str(tmp_path / "s"))
    assert not view.start()
    assert "'learning_rate' is not a setting" in view.status.text()
    assert not (tmp_path / "s").exists()
