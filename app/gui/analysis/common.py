"""What every analysis tab shares: a Compute button, a busy indicator with Cancel, a line for notes
and errors, a placeholder saying what is missing, and one background Task (app/gui/workers.py) that
is cancelled (and so stops computing) when what its result depends on changes.

The numbers come from the core's analysis API (app/core/analysis/api.py), keyed on the tab's
`subject()`: the current model, the current data and the split the model was trained with."""

from __future__ import annotations

import traceback
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QProgressBar, QPushButton, QSplitter, QStackedWidget, QToolButton,
                               QVBoxLayout, QWidget)

from app.core.analysis.api import Split, Subject, fit_problem
from app.gui.export import ask_save_path, export_plot
from app.gui.state import ExplorerState
from app.gui.workers import Task, TaskState, readable

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


def fit_table_height(table) -> None:
    """Make a table exactly as tall as its header and every row, so a layout can never squeeze it
    to one visible row (the tab's scroll area takes the overflow instead)."""
    table.resizeRowsToContents()
    header = table.horizontalHeader()     # sizes, not isVisible(): the table may not be shown yet
    height = 0 if header.isHidden() else max(header.height(), header.sizeHint().height())
    height += sum(table.rowHeight(r) for r in range(table.rowCount())) + 2 * table.frameWidth()
    if table.horizontalScrollBar().isVisible():
        height += table.horizontalScrollBar().height()
    table.setFixedHeight(max(height, 24))


def side_by_side(left: QWidget, right: QWidget, stretch: tuple[int, int] = (1, 1)) -> QSplitter:
    """The tabs' body: two panes in a horizontal splitter the user can drag, sized by `stretch`."""
    splitter = QSplitter(Qt.Horizontal)
    splitter.addWidget(left)
    splitter.addWidget(right)
    splitter.setStretchFactor(0, stretch[0])
    splitter.setStretchFactor(1, stretch[1])
    return splitter


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
    problem = fit_problem(snapshot.model, data)
    if problem is None:
        return None
    return f"{problem[0].upper()}{problem[1:]}: train a model on this data or open data like the model's."


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
    `stale_on` and `compute`."""

    computed = Signal()      # new results are on screen
    failed = Signal(str)     # a readable message is on screen
    exported = Signal(str)   # a file was written
    jobEnded = Signal()      # a background job ended, however (result shown, dropped, failed, data replaced)

    compute_text = "Compute"
    compute_tip = "Run this analysis on the current model and data"

    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self._running = False
        self.has_results = False
        self.task = Task(self)
        self.task.runningChanged.connect(self._set_running)

        self.compute_button = QPushButton(self.compute_text)
        self.compute_button.setToolTip(self.compute_tip)
        self.compute_button.clicked.connect(self.compute)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)     # indeterminate: the engine's functions report no progress
        self.busy.setTextVisible(False)
        self.busy.setMaximumWidth(120)
        self.busy.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this computation (it stops at its next check, within a second or so)")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setVisible(False)
        self.controls = QHBoxLayout()
        self.controls.setContentsMargins(0, 0, 0, 0)
        self.controls.addStretch(1)
        self.controls.addWidget(self.busy)
        self.controls.addWidget(self.compute_button)
        self.controls.addWidget(self.cancel_button)

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
        state.snapshotChanged.connect(self._model_changed)
        state.encodedChanged.connect(self._encoding_changed)

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

    stale_on = ("model",)   # besides the data: "model" (a new snapshot) or "encoding" (new codes)

    def subject(self) -> Subject:
        """What this tab measures: the current model on the current data, with its training split."""
        return Subject(self.state.snapshot.model, self.state.data, Split.of(self.state.data_cfg))

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
        self.task.cancel()           # a job for the old data is of no use any more
        self.has_results = False
        self.clear_results()
        self.set_note("")
        self.refresh()

    def _model_changed(self) -> None:
        if "model" in self.stale_on:
            self._drop_stale()
        self._on_model_changed()

    def _encoding_changed(self) -> None:
        if "encoding" in self.stale_on:
            self._drop_stale()
        self.on_encoded()

    def _drop_stale(self) -> None:
        if self.task.cancel():
            self.set_note("The model or data changed while computing, so the result was dropped: press "
                          f"{self.button_name!r} again.")

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
        self.cancel_button.setVisible(running)
        if was_running and not running:
            self.jobEnded.emit()

    def run_in_background(self, work: Callable[[TaskState], Any], on_result: Callable[[Any], None],
                          what: str = "Computing…") -> None:
        """work(task_state) on the thread pool, superseding this tab's previous job; on_result(result)
        on the GUI thread unless cancelled meanwhile. work passes task_state.should_stop to the core."""
        self.set_note(what)
        self.task.start(work, on_done=lambda result: self._job_done(on_result, result), on_error=self.show_error,
                        on_cancelled=lambda: self.set_note("Cancelled."))

    def cancel(self) -> None:
        """Stop the running computation (cooperatively: the core checks between chunks)."""
        if self.task.cancel():
            self.set_note(f"Cancelled. Press {self.button_name!r} to compute again.")

    def _job_done(self, on_result: Callable[[Any], None], result: Any) -> None:
        try:
            on_result(result)
        except Exception as exc:  # noqa: BLE001 - a drawing failure must reach the user
            traceback.print_exc()
            self.show_error(f"Could not show the result: {readable(exc)}")

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
