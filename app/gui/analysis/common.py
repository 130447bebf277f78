"""What every analysis tab shares: a Compute button, a busy indicator, a line for notes and errors,
a placeholder saying what is missing, and background jobs whose results are dropped when the model
or the data changed meanwhile (or a newer request superseded them)."""

from __future__ import annotations

import traceback
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QProgressBar, QPushButton, QStackedWidget, QToolButton,
                               QVBoxLayout, QWidget)

from app.gui.export import ask_save_path, export_plot
from app.gui.state import ExplorerState
from app.gui.workers import readable, run_job

ERROR_STYLE = "color: #b00020;"
AUTO_UPDATE_VALUES = 5_000_000   # data no bigger than this (samples x features) re-measures itself per encoding
NOTE_STYLE = "color: #555;"


def fmt(value, digits: int = 4) -> str:
    """A number for a label or a table cell; '–' for missing or non-finite values."""
    if value is None:
        return "–"
    value = float(value)
    if not np.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def big_label(text: str = "", scale: float = 1.8) -> QLabel:
    """A headline number."""
    label = QLabel(text)
    font = QFont(label.font())
    font.setPointSizeF(font.pointSizeF() * scale)
    font.setBold(True)
    label.setFont(font)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    return label


def plain_numbers(*axes) -> None:
    """Tick labels as the values themselves: pyqtgraph otherwise rescales unitless axes whose range
    stays below 1 and writes "(x0.001)" beside the title, which reads like part of the unit."""
    for axis in axes:
        axis.setSIPrefixEnableRanges(())
        axis.updateAutoSIPrefix()


def model_mismatch(state: ExplorerState) -> str | None:
    """Why the current model cannot be measured on the current data, or None when it can."""
    data, snapshot = state.data, state.snapshot
    if data is None or snapshot is None:
        return None
    model_shape = tuple(snapshot.model.input_shape)
    if model_shape != tuple(data.sample_shape):
        return (f"This model expects samples of shape {'x'.join(map(str, model_shape))}, but {data.name} has "
                f"{'x'.join(map(str, data.sample_shape))}: train a model on this data or open data like the model's.")
    return None


def plot_export_buttons(owner: "AnalysisTab", plot_item, default_name: str) -> list[QToolButton]:
    """'PNG…' and 'SVG…' buttons exporting a pyqtgraph plot item."""
    buttons = []
    for suffix, filters in ((".png", "PNG image (*.png)"), (".svg", "SVG figure (*.svg)")):
        button = QToolButton(text=f"{suffix[1:].upper()}…")
        button.setToolTip(f"Export this plot as {suffix[1:].upper()}")

        def ask(_=False, suffix=suffix, filters=filters):
            path = ask_save_path(owner, f"Export {suffix[1:].upper()}", default_name + suffix, filters)
            if path:
                owner.write_file(lambda p: export_plot(plot_item, p), path)

        button.clicked.connect(ask)
        buttons.append(button)
    return buttons


class AnalysisTab(QWidget):
    """Base of the analysis tabs. Subclasses put their controls in `self.controls` (before the
    Compute button), their results in `self.body_layout`, and override `requirement`,
    `dependencies` and `compute`."""

    computed = Signal()      # new results are on screen
    failed = Signal(str)     # a readable message is on screen
    exported = Signal(str)   # a file was written
    jobEnded = Signal()      # a background job ended, however (result shown, dropped, failed, data replaced)

    compute_text = "Compute"
    compute_tip = "Run this analysis on the current model and data"

    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self._request = 0            # bumps with every job started; older jobs' results are dropped
        self._running = False
        self.has_results = False

        self.compute_button = QPushButton(self.compute_text)
        self.compute_button.setToolTip(self.compute_tip)
        self.compute_button.clicked.connect(self.compute)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)     # indeterminate: the engine's functions report no progress
        self.busy.setTextVisible(False)
        self.busy.setMaximumWidth(120)
        self.busy.setVisible(False)
        self.controls = QHBoxLayout()
        self.controls.setContentsMargins(0, 0, 0, 0)
        self.controls.addStretch(1)
        self.controls.addWidget(self.busy)
        self.controls.addWidget(self.compute_button)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.status.setVisible(False)

        self.placeholder = QLabel()
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setMargin(16)
        self.body = QWidget()
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(0, 0, 0, 0)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.body)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self.controls)
        layout.addWidget(self.status)
        layout.addWidget(self.stack, 1)

        state.dataChanged.connect(self._on_data_changed)
        state.snapshotChanged.connect(self._on_model_changed)
        state.encodedChanged.connect(self.on_encoded)

    # --- to override --------------------------------------------------------------------------
    no_model_text = "Train or load a model first."   # what the tab says before there is a model
    needs_encoding = False                            # True: wait for state.encoded as well

    def requirement(self) -> str | None:
        """What is missing before this tab can compute (shown in the placeholder), or None."""
        if self.state.data is None:
            return "Open a data set first."
        if self.state.snapshot is None:
            return self.no_model_text
        mismatch = model_mismatch(self.state)
        if mismatch is None and self.needs_encoding and self.state.encoded is None:
            return "Waiting for the samples to be encoded…"
        return mismatch

    def dependencies(self) -> tuple:
        """What a result depends on: a result is dropped when any of these changed meanwhile."""
        return (self.state.generation, self.state.data, self.state.snapshot)

    def compute(self) -> None:
        """Start this tab's computation; every tab defines it (the base class has nothing to compute)."""
        raise NotImplementedError(f"{type(self).__name__} must define compute()")

    def clear_results(self) -> None:
        """Forget what is shown (the data changed)."""

    def on_encoded(self) -> None:
        """The explored samples were (re-)encoded, i.e. a new model has settled: results already
        asked for are re-measured when that is cheap, otherwise they stay marked as outdated."""
        self.refresh()
        if self.has_results and self.cheap() and self.requirement() is None:
            self.compute()

    def cheap(self) -> bool:
        """Whether computing again takes about a second at most (small data)."""
        data = self.state.data
        return data is not None and data.x.size <= AUTO_UPDATE_VALUES

    @property
    def button_name(self) -> str:
        return self.compute_button.text().replace("&&", "&")

    # --- state --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Enable Compute and show the placeholder according to `requirement`."""
        missing = self.requirement()
        self.compute_button.setEnabled(missing is None)
        if missing is not None and self.has_results and model_mismatch(self.state):
            self.has_results = False          # results for another kind of data would only mislead
        if missing is not None and not self.has_results:
            self.show_placeholder(missing)
        elif missing is None and not self.has_results:
            self.show_placeholder(f"Press {self.button_name!r} to run this analysis.")

    def show_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.stack.setCurrentWidget(self.placeholder)

    def show_body(self) -> None:
        self.stack.setCurrentWidget(self.body)

    def _on_data_changed(self) -> None:
        self._request += 1           # a job for the old data is of no use any more
        self._set_running(False)
        self.has_results = False
        self.clear_results()
        self.set_note("")
        self.refresh()

    def _on_model_changed(self) -> None:
        if self.has_results:
            self.set_note("These results are for an earlier model: press "
                          f"{self.button_name!r} to measure the current one.")
        self.refresh()

    def set_note(self, text: str) -> None:
        self.status.setStyleSheet(NOTE_STYLE)
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def show_error(self, text: str) -> None:
        self.status.setStyleSheet(ERROR_STYLE)
        self.status.setText(text)
        self.status.setVisible(True)
        self.failed.emit(text)

    def finished(self, note: str = "") -> None:
        """Subclasses call this after drawing new results."""
        self.has_results = True
        self.show_body()
        self.set_note(note)
        self.computed.emit()

    # --- background jobs ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    def _set_running(self, running: bool) -> None:
        was_running, self._running = self._running, running
        self.busy.setVisible(running)
        if was_running and not running:
            self.jobEnded.emit()

    def run_in_background(self, fn: Callable[..., Any], *args: Any, on_result: Callable[[Any], None],
                          what: str = "Computing…") -> None:
        """fn(*args) on the thread pool; on_result(result) on the GUI thread if still wanted."""
        self._request += 1
        token = (self._request, self.dependencies())
        self._set_running(True)
        self.set_note(what)
        run_job(fn, *args, on_done=lambda result: self._job_done(token, on_result, result),
                on_error=lambda message: self._job_failed(token, message))

    def _current(self, token) -> bool | None:
        """True: deliver; False: the model or data changed; None: a newer request superseded it."""
        if token[0] != self._request:
            return None
        return all((a == b) if isinstance(a, (int, str)) else (a is b) for a, b in zip(token[1], self.dependencies()))

    def _job_done(self, token, on_result: Callable[[Any], None], result: Any) -> None:
        current = self._current(token)
        if current is None:
            return
        self._set_running(False)
        if not current:
            self.set_note("The model or data changed while computing, so the result was dropped: press "
                          f"{self.button_name!r} again.")
            return
        try:
            on_result(result)
        except Exception as exc:  # noqa: BLE001 - a drawing failure must reach the user
            traceback.print_exc()
            self.show_error(f"Could not show the result: {readable(exc)}")

    def _job_failed(self, token, message: str) -> None:
        if self._current(token) is None:
            return
        self._set_running(False)
        self.show_error(message)

    # --- files --------------------------------------------------------------------------------
    def write_file(self, write: Callable[[str], None], path: str) -> bool:
        """Write an export; a failure becomes a readable message, never an exception."""
        try:
            write(path)
        except (OSError, ValueError) as exc:
            self.show_error(f"Could not export {path}: {exc}")
            self.state.error(f"Could not export {path}: {exc}")
            return False
        self.state.info(f"Saved {path}")
        self.exported.emit(path)
        return True
