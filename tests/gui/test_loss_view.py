"""The loss view: curves from EpochResults and from metrics.csv rows, the live running loss with
throttled redraws, the best epoch, the log scale and PNG/SVG export."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from app.core.checkpoint import epoch_row
from app.core.trainer import EpochResult, TrainProgress
from app.gui import loss_view as loss_view_module
from app.gui.app import configure_pyqtgraph
from app.gui.loss_view import LossView, best_epoch, history_columns
from app.gui.state import ExplorerState


def epoch(n: int, train: float, val: float | None, kl: float = 1.0) -> dict:
    """One epoch's metrics row, as the window's history holds them."""
    return epoch_row(EpochResult(epoch=n, train={"total": train, "reconstruction": train - kl, "kl": kl},
                       val=None if val is None else {"total": val, "reconstruction": val - kl, "kl": kl},
                       seconds=0.1, samples_per_second=1000.0, beta=1.0, lr=1e-3, skipped_steps=0, best_epoch=None))


def progress(epoch_no: int, step_in_epoch: int, loss: float, steps_per_epoch: int = 10) -> TrainProgress:
    step = (epoch_no - 1) * steps_per_epoch + step_in_epoch
    return TrainProgress(epoch=epoch_no, epochs=3, step=step, step_in_epoch=step_in_epoch,
                         steps_per_epoch=steps_per_epoch, parts={"total": loss}, samples_per_second=100.0,
                         elapsed_s=1.0, eta_s=2.0, beta=1.0, lr=1e-3, skipped_steps=0)


@pytest.fixture
def view(qtbot):
    configure_pyqtgraph()
    state = ExplorerState()
    widget = LossView(state)
    widget.resize(640, 400)
    qtbot.addWidget(widget)
    widget.show()
    widget.test_state = state   # keep the state alive as long as the view
    return widget


def test_empty_view_says_what_to_do(view):
    assert "Train or load a model" in view.info_label.text()
    assert view.curve_points() == 0


def test_epoch_results_become_curves_with_parts_and_best_epoch(qtbot, view):
    state = view.test_state
    for row in (epoch(1, 50.0, 52.0), epoch(2, 40.0, 41.0), epoch(3, 35.0, 43.0)):
        state.append_history(row)
    qtbot.waitUntil(lambda: view.curve_points("train_loss") == 3, timeout=2_000)
    assert view.curve_points("val_loss") == 3
    for key in ("train_reconstruction", "train_kl", "val_reconstruction", "val_kl"):
        assert view.curve_points(key) == 3
    assert view.best_line.isVisible() and view.best_line.value() == 2     # lowest validation loss
    assert "best validation loss 41 at epoch 2" in view.info_label.text()
    names = [label.text for _, label in view.legend.items]
    assert "train" in names and "validation" in names and "train kl" in names

    view.parts_checkbox.setChecked(False)
    assert not view.curves["train_kl"].isVisible() and view.curves["train_loss"].isVisible()


def test_metrics_rows_from_a_loaded_run_are_read_too(qtbot, view):
    rows = [{"epoch": 1.0, "train_loss": 9.0, "val_loss": None, "train_reconstruction": 9.0, "seconds": 0.2},
            {"epoch": 2.0, "train_loss": 7.0, "val_loss": None, "train_reconstruction": 7.0, "seconds": 0.2}]
    view.test_state.set_history(rows)
    qtbot.waitUntil(lambda: view.curve_points("train_loss") == 2, timeout=2_000)
    assert "val_loss" not in view.curves                  # no validation split: no empty curve
    assert view.best_line.value() == 2                    # best by training loss then
    assert "best training loss" in view.info_label.text()


def test_history_columns_and_best_epoch():
    columns = history_columns([epoch(1, 5.0, None), {"epoch": 2, "train_loss": "4.5", "val_loss": ""}])
    np.testing.assert_array_equal(columns["epoch"], [1, 2])
    assert columns["train_loss"][1] == 4.5 and math.isnan(columns["val_loss"][1])
    assert best_epoch(columns) == (2.0, 4.5)
    assert best_epoch({}) is None


def test_live_progress_is_throttled(qtbot, view, monkeypatch):
    redraws = []
    original = view.redraw
    monkeypatch.setattr(view, "redraw", lambda: (redraws.append(1), original()))
    view._timer.timeout.disconnect()
    view._timer.timeout.connect(view.redraw)
    for i in range(1, 11):
        view.add_progress(progress(1, i, 10.0 - i * 0.1))
    assert view.live_points() == 10
    qtbot.waitUntil(lambda: len(redraws) >= 1, timeout=2_000)
    qtbot.wait(3 * loss_view_module.REDRAW_INTERVAL_MS)
    assert len(redraws) == 1, "ten points in a burst should give one redraw"
    x, y = view.live_curve.getData()
    assert len(x) == 10 and x[-1] == pytest.approx(1.0) and x[0] == pytest.approx(0.1)
    # A new run (its step counter starts again) clears the old live curve.
    view.add_progress(progress(1, 1, 3.0))
    assert view.live_points() == 1


def test_log_scale_toggle(qtbot, view):
    state = view.test_state
    state.set_history([epoch(1, 50.0, 52.0, kl=0.0), epoch(2, 40.0, 41.0, kl=2.0)])
    qtbot.waitUntil(lambda: view.curve_points() == 2, timeout=2_000)
    view.log_checkbox.setChecked(True)
    assert view.plot_item.ctrl.logYCheck.isChecked()
    assert "log scale" in view.plot_item.getAxis("left").labelText
    _, kl = view.curves["train_kl"].getData()
    assert np.isnan(kl[0]) or not np.isfinite(kl[0])        # a zero part is not drawn at -inf
    view.set_log_scale(False)
    assert not view.log_checkbox.isChecked() and not view.plot_item.ctrl.logYCheck.isChecked()
    _, kl = view.curves["train_kl"].getData()
    assert kl[0] == 0.0


def test_export_png_and_svg(qtbot, view, tmp_path, monkeypatch):
    state = view.test_state
    state.set_history([epoch(1, 50.0, 52.0), epoch(2, 40.0, 41.0)])
    view.add_progress(progress(1, 5, 51.0))
    png, svg = tmp_path / "losses.png", tmp_path / "losses.svg"
    assert view.export_to(str(png))
    assert png.read_bytes().startswith(b"\x89PNG")
    # The buttons ask for a path first; answer for the dialog.
    monkeypatch.setattr(loss_view_module, "ask_save_path", lambda *args: str(svg))
    view.export_svg_button.click()
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert "<svg" in svg.read_text()


def test_export_failure_is_reported(qtbot, view, tmp_path):
    messages = []
    view.test_state.messageRaised.connect(lambda level, text: messages.append((level, text)))
    assert not view.export_to(str(tmp_path / "missing-folder" / "losses.png"))
    assert messages and messages[-1][0] == "error" and "losses.png" in messages[-1][1]
