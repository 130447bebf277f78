"""The main window: start-up, docks and menus, opening data (dialogs, drops, errors), closing
cleanly (also while training), and the help dialogs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QDockWidget, QMessageBox
from window_testing import make_window, small_model

from app.gui.main_window import MainWindow, is_typing_widget

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def window(qtbot, monkeypatch):
    return make_window(qtbot, monkeypatch)


def drop(window, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(window.rect().center(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(window.rect().center()), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, event)


# --- start-up ---------------------------------------------------------------------------------
def test_opens_with_digits_and_a_vae_ready(window):
    data = window.state.data
    assert data is not None and data.name == "digits" and data.n == 1797
    assert window.training_panel.model_form.values().kind == "vae"
    assert window.training_panel.train_button.isEnabled() and window.train_action.isEnabled()
    assert not window.training_panel.stop_button.isEnabled()
    summary = window.data_panel.summary.text()
    assert "1,797" in summary and "1×8×8" in summary and "10 classes" in summary
    assert window.device_label.text().startswith("Device: ")
    assert not window.save_run_action.isEnabled()           # nothing trained yet
    assert "Loaded digits" in window.statusBar().currentMessage()
    assert window.errors == []


def test_window_builds_quickly(qtbot, monkeypatch):
    """Imports are paid once per process; building and showing the window itself must be quick,
    and the digits arrive in the background."""
    started = time.perf_counter()
    window = MainWindow(warm_up_projections=False)
    window.confirm_close = False
    qtbot.addWidget(window)
    window.show()
    built = time.perf_counter() - started
    with qtbot.waitSignal(window.dataLoaded, timeout=60_000):
        pass
    assert built < 2.0, f"building the window took {built:.2f} s"


def test_startup_imports_no_projection_libraries(tmp_path):
    """A fresh process: window shown with digits, and none of the heavy projection libraries loaded
    (they live in the projection process). Also prints the time to a usable window."""
    script = textwrap.dedent("""
        import os, sys, time
        started = time.perf_counter()
        from PySide6.QtCore import QEventLoop, QTimer
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from app.gui.app import configure_pyqtgraph
        configure_pyqtgraph()
        from app.gui.main_window import MainWindow
        window = MainWindow(warm_up_projections=False)
        window.confirm_close = False
        window.show()
        shown = time.perf_counter() - started
        loop = QEventLoop()
        window.dataLoaded.connect(loop.quit)
        QTimer.singleShot(60_000, loop.quit)
        loop.exec()
        ready = time.perf_counter() - started
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("umap", "openTSNE", "numba")
                       or m.startswith("sklearn.manifold"))
        print(f"shown={shown:.2f} ready={ready:.2f} data={window.state.data is not None} heavy={heavy}")
        window.close()
    """)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_LOGGING_RULES="*.warning=false",
               XDG_CONFIG_HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("shown=")][-1]
    print(line)
    assert "data=True" in line and "heavy=[]" in line


def test_docks_can_be_toggled_from_the_view_menu(window):
    titles = {dock.windowTitle() for dock in window.findChildren(QDockWidget)}
    assert {"Data", "Training", "Loss curves", "Messages", "Latent projections", "Reconstructions",
            "Latent traversal"} <= titles
    toggles = {a.text(): a for a in window.view_menu.actions()}
    loss_dock = window.docks["loss"]
    assert loss_dock.isVisibleTo(window)
    toggles["Loss curves"].trigger()
    assert not loss_dock.isVisibleTo(window)
    toggles["Loss curves"].trigger()
    assert loss_dock.isVisibleTo(window)
    window.docks["data"].setFloating(True)
    toggles["Reset layout"].trigger()
    assert not window.docks["data"].isFloating()


def test_layout_is_saved_and_restored(qtbot, monkeypatch):
    first = make_window(qtbot, monkeypatch, load=None)
    first.docks["messages"].hide()
    first.close()
    assert QSettings().value("window/state") is not None
    second = make_window(qtbot, monkeypatch, load=None)
    assert not second.docks["messages"].isVisibleTo(second)
    assert second.docks["loss"].isVisibleTo(second)


def test_every_view_is_docked(window):
    from app.gui.projection_view import ProjectionView
    from app.gui.reconstruction_view import ReconstructionView
    from app.gui.traversal_view import TraversalView
    from app.gui.analysis import AnalysisView
    from app.gui.search_view import SearchView

    kinds = {type(view) for view in window.views}
    assert kinds == {ProjectionView, ReconstructionView, TraversalView, AnalysisView, SearchView}
    for view in window.views:
        assert isinstance(view.parent(), QDockWidget)


# --- opening data -----------------------------------------------------------------------------
def test_builtin_combo_loads_another_data_set(qtbot, window):
    combo = window.data_panel.builtin_combo
    combo.setCurrentIndex(combo.findData("sines"))
    with qtbot.waitSignal(window.dataLoaded, timeout=60_000):
        window.data_panel.load_builtin_button.click()
    assert window.state.data.name == "sines" and window.state.data.modality == "sequence"
    assert "sequence" in window.data_panel.summary.text()
    assert window.training_panel._data_shape == (64, 3)


def test_bad_file_shows_its_name_and_keeps_the_data(qtbot, window, tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"this is not a zip archive")
    data = window.state.data
    with qtbot.waitSignal(window.dataLoadFailed, timeout=30_000):
        window.open_data(str(bad))
    assert window.errors and "broken.npz" in window.errors[-1]
    assert "kept" in window.errors[-1]
    assert window.state.data is data
    assert "broken.npz" in window.statusBar().currentMessage()
    assert "broken.npz" in window.message_log.toPlainText()
    assert not window.data_panel.busy_bar.isVisibleTo(window.data_panel)


def test_dropping_a_bad_file_shows_an_error(qtbot, window, tmp_path):
    bad = tmp_path / "weird.xyz"
    bad.write_text("what is this")
    data = window.state.data
    with qtbot.waitSignal(window.dataLoadFailed, timeout=30_000):
        drop(window, bad)
    assert "weird.xyz" in window.errors[-1]
    assert window.state.data is data


def test_dropping_a_good_file_loads_it(qtbot, window, tmp_path):
    path = tmp_path / "rows.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(300, 6)).astype(np.float32), y=rng.integers(0, 3, 300))
    with qtbot.waitSignal(window.dataLoaded, timeout=30_000):
        drop(window, path)
    assert window.state.data.n == 300 and window.state.data.modality == "tabular"
    assert "3 classes" in window.data_panel.summary.text()


def test_data_panel_settings_are_used_to_open_a_csv(qtbot, window, tmp_path):
    """The Data panel's DataConfig form (label column, limit) is what opening data reads with."""
    path = tmp_path / "table.csv"
    rows = ["a,b,c,kind"] + [f"{i},{i * 0.5},{-i},{'cat' if i % 2 else 'dog'}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    form = window.data_panel.form
    assert set(form.widgets) >= {"image_size", "label_column", "limit", "image_shape", "normal_classes",
                                 "memory_map", "n_samples", "data_seed"}
    assert form.advanced is not None and not form.advanced.is_expanded()   # folded until asked for
    form.widgets["label_column"].setText("kind")
    form.widgets["limit"].setValue(25)
    with qtbot.waitSignal(window.dataLoaded, timeout=30_000):
        window.open_data(str(path))
    data = window.state.data
    assert data.n == 25 and data.sample_shape == (3,)
    assert data.y is not None and sorted(data.label_names) == ["cat", "dog"]
    assert window.state.data_cfg.label_column == "kind" and window.state.data_cfg.limit == 25
    assert "2 classes" in window.data_panel.summary.text()


def test_a_bad_data_setting_fails_the_open_and_keeps_the_data(qtbot, window):
    window.data_panel.form.widgets["image_shape"].setText("28x28")   # sines are sequences, not flat rows
    data = window.state.data
    with qtbot.waitSignal(window.dataLoadFailed, timeout=30_000):
        window.open_data("sines")
    assert window.state.data is data
    assert "image-shape" in window.errors[-1] and "kept" in window.errors[-1]


def test_data_of_another_shape_clears_the_model_but_keeps_it_savable(qtbot, window, tmp_path):
    small_model(window, epochs=1)
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=120_000):
        window.start_training()
    assert window.state.snapshot is not None
    with qtbot.waitSignal(window.dataLoaded, timeout=60_000):
        window.open_data("sines")
    assert window.state.snapshot is None
    assert "expects samples of 1x8x8" in window.statusBar().currentMessage()
    assert "train a new model" in window.message_log.toPlainText()
    assert window.save_run_action.isEnabled()
    with qtbot.waitSignal(window.runSaved, timeout=30_000):
        window.save_run_to(str(tmp_path / "kept"))


def test_an_older_request_never_replaces_a_newer_one(qtbot, window):
    window.open_data("sines")
    with qtbot.waitSignal(window.dataLoaded, timeout=60_000):
        window.open_data("digits")
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.state.data.name == "digits"


def test_other_data_cannot_be_opened_while_training(qtbot, window):
    small_model(window, epochs=5000)
    assert window.start_training()
    assert not window.open_file_action.isEnabled() and not window.open_run_action.isEnabled()
    assert not window.data_panel.load_builtin_button.isEnabled()
    window.open_data("sines")
    assert "Stop training" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=30_000):
        window.controller.stop()
    assert window.open_file_action.isEnabled() and window.data_panel.load_builtin_button.isEnabled()


# --- closing ----------------------------------------------------------------------------------
def test_closing_mid_training_stops_cleanly(qtbot, window):
    small_model(window, epochs=5000)
    shut = []
    for view in window.views:
        if hasattr(view, "shutdown"):
            original = view.shutdown
            view.shutdown = lambda original=original: (shut.append(1), original())
    with qtbot.waitSignal(window.controller.epochEnded, timeout=30_000):
        assert window.start_training()
    worker = window.controller.worker
    started = time.perf_counter()
    assert window.close()
    assert time.perf_counter() - started < 10
    assert worker.isFinished()
    assert not window.isVisible()
    assert shut, "the views' shutdown() was not called"


def test_close_prompt_cancel_keeps_the_window_and_save_saves(qtbot, window, monkeypatch, tmp_path):
    import app.gui.export as export

    monkeypatch.delenv("LATENT_EXPLORER_NO_CLOSE_PROMPT", raising=False)
    small_model(window, epochs=5000)
    assert window.start_training()
    qtbot.waitUntil(lambda: len(window.state.history) >= 1, timeout=30_000)
    window.confirm_close = True
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: (asked.append(args[2]),
                                                                       QMessageBox.StandardButton.Cancel)[1])
    assert not window.close()
    assert asked and "Save the trained model before closing?" in asked[0]
    assert window.isVisible() and window.controller.record.unsaved
    # Issue 15 item 5: asked before anything stopped, and Cancel leaves training running.
    worker = window.controller.worker
    assert worker is not None and window.controller.running and not worker.isFinished()
    epochs = len(window.state.history)
    qtbot.waitUntil(lambda: len(window.state.history) > epochs, timeout=30_000)   # and it goes on

    record = window.controller.record
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: QMessageBox.StandardButton.Save)
    monkeypatch.setattr(export, "ask_save_path", lambda *args: str(tmp_path / "on-close"))
    assert window.close()                                   # Save: stops training, then saves
    assert record.path == tmp_path / "on-close" and (tmp_path / "on-close" / "model.json").is_file()
    assert worker.isFinished()


def test_close_prompt_skipped_by_environment(qtbot, window, monkeypatch):
    small_model(window, epochs=1)
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=120_000):
        window.start_training()
    window.confirm_close = True
    monkeypatch.setenv("LATENT_EXPLORER_NO_CLOSE_PROMPT", "1")
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail("asked although told not to"))
    assert window.close()


# --- help, shortcuts, messages ----------------------------------------------------------------
def test_help_dialogs_open_without_blocking(qtbot, window):
    about = window.show_about()
    assert "Latent Explorer" in about.text() and about.isVisible()
    shortcuts = window.show_shortcuts()
    assert "Ctrl+T" in shortcuts.text() and "Space" in shortcuts.text()
    about.close()
    shortcuts.close()


def test_shortcuts_are_bound(window):
    assert window.train_action.shortcut().toString() == "Ctrl+T"
    assert window.pause_action.shortcut().toString() == "Space"
    assert [s.toString() for s in window.stop_action.shortcuts()] == ["Ctrl+.", "Esc"]
    assert window.open_run_action.shortcut().toString() == "Ctrl+O"
    assert window.save_run_action.shortcut().toString() == "Ctrl+S"
    for button in (window.training_panel.train_button, window.training_panel.pause_button,
                   window.training_panel.resume_button, window.training_panel.stop_button):
        assert button.toolTip()


def test_typing_widgets_keep_their_space(window):
    assert is_typing_widget(window.training_panel.model_form.widgets["hidden"])
    assert is_typing_widget(window.training_panel.model_form.widgets["latent_dim"])
    assert not is_typing_widget(window.training_panel.train_button)
    assert not is_typing_widget(window.training_panel.model_form.widgets["kind"])


def test_messages_reach_status_bar_log_and_dialog(window):
    window.state.warn("something to know")
    assert window.statusBar().currentMessage() == "something to know"
    window.state.error("something went wrong")
    assert window.errors[-1] == "something went wrong"
    log = window.message_log.toPlainText()
    assert "warning: something to know" in log and "error: something went wrong" in log


def test_real_error_dialog_is_non_modal(qtbot, window):
    MainWindow.show_error(window, "a readable problem")   # the real method, not the test's collector
    boxes = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and boxes[-1].text() == "a readable problem"
    assert not boxes[-1].isModal() or boxes[-1].windowModality() != Qt.WindowModality.ApplicationModal
    boxes[-1].close()


def test_run_window_opens_a_run_directory_given_on_the_command_line(qtbot, qapp, monkeypatch, tmp_path):
    """`python main.py RUN_DIR`: the window opens the run (not the digits) and exits with exec()'s code."""
    from app.core.checkpoint import save_run
    from app.core.config import DataConfig, ModelConfig, TrainConfig
    from app.core.session import data_info, prepare_training
    from app.core.trainer import train_to_end
    from app.gui.app import run_window

    prepared = prepare_training(DataConfig(), ModelConfig(kind="ae", hidden=(32,), latent_dim=2),
                                TrainConfig(epochs=1, device="cpu"))
    train_to_end(prepared.trainer)
    run_dir = save_run(tmp_path / "cli-run", prepared.model, data_cfg=DataConfig(), train_cfg=TrainConfig(epochs=1),
                       modality="image", data_info=data_info(prepared.data), history=prepared.trainer.history)
    monkeypatch.setenv("LATENT_EXPLORER_NO_CLOSE_PROMPT", "1")
    seen = {}

    def fake_exec():
        window = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()][-1]
        monkeypatch.setattr(window, "show_error", lambda text: seen.setdefault("errors", []).append(text))
        qtbot.waitUntil(lambda: window.state.snapshot is not None and window.state.data is not None, timeout=60_000)
        seen["kind"] = window.training_panel.model_form.values().kind
        seen["history"] = len(window.state.history)
        window.close()
        window.deleteLater()
        return 0

    monkeypatch.setattr(qapp, "exec", fake_exec)
    assert run_window([str(run_dir)]) == 0
    assert seen == {"kind": "ae", "history": 1}


def test_dropping_an_image_folder_lists_skipped_files(qtbot, window, tmp_path):
    from PIL import Image

    folder = tmp_path / "pictures"
    rng = np.random.default_rng(1)
    for label in ("cats", "dogs"):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(folder / label / f"{i}.png")
    (folder / "cats" / "broken.png").write_bytes(b"not a png")
    with qtbot.waitSignal(window.dataLoaded, timeout=30_000):
        drop(window, folder)
    data = window.state.data
    assert data.n == 12 and data.sample_shape == (1, 12, 12)
    assert "2 classes: cats, dogs" in window.data_panel.summary.text()
    assert not window.data_panel.skipped.isHidden() and "broken.png" in window.data_panel.skipped.toPlainText()
    assert "skipped" in window.message_log.toPlainText()


def test_menu_and_panel_buttons_go_through_the_dialogs(qtbot, window, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    import app.gui.export as export

    path = tmp_path / "codes.npy"
    np.save(path, np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args: (str(path), ""))
    with qtbot.waitSignal(window.dataLoaded, timeout=30_000):
        window.data_panel.open_file_button.click()
    assert window.state.data.n == 50

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: "")   # cancelled: nothing happens
    window.data_panel.open_folder_button.click()
    window.open_folder_action.trigger()
    window.open_run_action.trigger()
    assert not window.busy and window.state.data.n == 50

    with qtbot.waitSignal(window.dataLoaded, timeout=30_000):
        window.builtin_actions[0].trigger()                                       # File > Open built-in > digits
    assert window.state.data.name == "digits"
    small_model(window, epochs=1)
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=120_000):
        window.train_action.trigger()
    monkeypatch.setattr(export, "ask_save_path", lambda *args: str(tmp_path / "menu-run"))
    with qtbot.waitSignal(window.runSaved, timeout=30_000):
        window.save_run_action.trigger()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(tmp_path / "menu-run"))
    with qtbot.waitSignal(window.runOpened, timeout=30_000):
        window.open_run_action.trigger()
    assert window.errors == []


def test_keyboard_shortcuts_drive_training(qtbot, window):
    """Real key presses through the window (offscreen there is no focused window, so keys go to the
    window handle, which is where the platform would deliver them)."""
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QLineEdit

    handle = window.windowHandle()
    small_model(window, epochs=5000)
    with qtbot.waitSignal(window.controller.runStateChanged, timeout=30_000):
        QTest.keyClick(handle, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(handle, Qt.Key.Key_Space)
    assert window.controller.run_state == "paused"

    field = QLineEdit()                       # any text field in the window keeps its spaces
    window.statusBar().addWidget(field)
    field.show()
    field.setFocus()
    assert window.focusWidget() is field
    QTest.keyClick(handle, Qt.Key.Key_Space)
    assert window.controller.run_state == "paused" and field.text() == " "
    field.clearFocus()
    window.setFocus()

    QTest.keyClick(handle, Qt.Key.Key_Space)
    assert window.controller.run_state == "running"
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=30_000) as stopped:
        QTest.keyClick(handle, Qt.Key.Key_Escape)
    assert stopped.args[0].reason == "cancelled"


# --- issue 15: no lost work, no stale state ---------------------------------------------------
def test_ctrl_t_asks_before_replacing_an_unsaved_model(qtbot, window, monkeypatch):
    small_model(window, epochs=1)
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=120_000):
        assert window.start_training()
    first = window.controller.record
    assert first.unsaved
    window.confirm_close = True
    monkeypatch.delenv("LATENT_EXPLORER_NO_CLOSE_PROMPT", raising=False)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: (asked.append(args[2]),
                                                                       QMessageBox.StandardButton.Cancel)[1])
    window.train_action.trigger()
    assert asked and "Save the trained model before training a new one?" in asked[0]
    assert not window.controller.running and window.controller.record is first      # Cancel: nothing lost
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: QMessageBox.StandardButton.Discard)
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=120_000):
        window.train_action.trigger()
    assert window.controller.record is not first


def test_a_data_change_clears_stale_state(qtbot, window):
    small_model(window, epochs=1)
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=120_000):
        assert window.start_training()
    assert window.device_label.text().startswith("Device: ")          # no longer "Training on:"
    qtbot.waitUntil(lambda: window.state.encoded is not None, timeout=60_000)
    window.state.set_selection([3, 5])
    cleared = []
    window.state.selectionChanged.connect(lambda: cleared.append(len(window.state.selection)))
    assert window.state.history
    with qtbot.waitSignal(window.dataLoaded, timeout=60_000):
        window.open_data("sines")
    assert cleared == [0] and len(window.state.selection) == 0 and window.state.hover == -1
    assert window.state.history == []                                   # the old model's curves went with it
    assert window.data_panel.builtin_combo.currentData() == "sines"     # the combo names the loaded data
    assert window.state.data_cfg.spec == "sines"                        # one DataConfig, the current data's


def test_messages_log_follows_new_lines(window):
    log = window.message_log
    for i in range(300):
        window.state.info(f"line {i}")
    bar = log.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    bar.setValue(0)                                   # the user scrolls up to read: the log stays there
    window.state.info("one more")
    assert bar.value() == 0


def test_actions_build_the_menus_and_the_shortcuts_dialog(window):
    from app.gui.actions import ACTIONS, shortcut_rows

    in_menus = {a for menu in window.menuBar().findChildren(type(window.view_menu)) for a in menu.actions()}
    assert all(getattr(window, spec.name) in in_menus for spec in ACTIONS if spec.name)
    texts = {a.text() for a in in_menus}
    assert {spec.text for spec in ACTIONS if spec.name != "pause_action"} <= texts   # Pause reads Pause/Resume
    rows = dict(shortcut_rows())
    assert rows["Ctrl+T"] == window.train_action.toolTip()
    box = window.show_shortcuts()
    assert all(keys in box.text() for keys in rows)
    box.close()
