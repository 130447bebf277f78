"""Inputs above their reconstructions (images), or inputs against reconstructions as lines
(sequences and table rows), for the preview samples while training or for the selected samples.

During training the worker sends fresh preview reconstructions at every snapshot; redraws are
throttled to at most five a second so a fast model does not keep the GUI thread busy drawing.
"""

from __future__ import annotations

import math
import time

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QStackedWidget, QVBoxLayout, QWidget

from app.gui.image_grid import ImageGrid
from app.gui.signal_plot import Curve, PlotSpec, SignalPlot
from app.gui.state import ExplorerState

REDRAW_INTERVAL_MS = 200     # at most ~5 redraws a second
MAX_SELECTED = 64            # reconstructed on the GUI thread: cheap at this size
MAX_LINE_PLOTS = 8           # small multiples for sequences / table rows
MODES = ("preview", "selected")


class Throttle(QObject):
    """Calls `fn` at once if it has not run for `interval_ms`, otherwise once when the interval
    is over; requests in between collapse into that one call."""

    def __init__(self, interval_ms: int, fn, parent: QObject | None = None):
        super().__init__(parent)
        self._interval = interval_ms / 1000.0
        self._fn = fn
        self._last = -math.inf
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self._fire)

    def request(self) -> None:
        if self._timer.isActive():
            return
        wait = self._interval - (time.perf_counter() - self._last)
        if wait <= 0:
            self._fire()
        else:
            self._timer.start(int(wait * 1000) + 1)

    def _fire(self) -> None:
        self._last = time.perf_counter()
        self._fn()


def sample_name(state: ExplorerState, data_index: int) -> str:
    """'#123 (7)': the sample's index in the data set and its label when there is one."""
    data = state.data
    if data is None or data.y is None:
        return f"#{data_index}"
    y = int(data.y[data_index])
    label = data.label_names[y] if data.label_names and 0 <= y < len(data.label_names) else str(y)
    return f"#{data_index} ({label})"


def pair_rows(inputs: np.ndarray, recons: np.ndarray, columns: int, blank: float = 0.5) -> np.ndarray:
    """(N, C, H, W) inputs and reconstructions -> (2 * blocks, columns, C, H, W): each block is a row
    of inputs above the row of their reconstructions; empty cells at the end are `blank` (the grid's
    grey, so they read as empty rather than as a white image)."""
    n = len(inputs)
    blocks = math.ceil(n / columns)
    grid = np.full((2 * blocks, columns, *inputs.shape[1:]), blank, dtype=np.float32)
    for i in range(n):
        block, col = divmod(i, columns)
        grid[2 * block, col] = inputs[i]
        grid[2 * block + 1, col] = recons[i]
    return grid


class ReconstructionView(QWidget):
    redrawn = Signal()   # after each redraw (for tests and the tour)

    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.mode = "preview"
        self.shown_indices = np.zeros(0, dtype=np.int64)   # data indices drawn now
        self.shown_errors = np.zeros(0, dtype=np.float32)
        # The worker's preview reconstructions follow the snapshot they were made with; remember that
        # snapshot, so a run opened later (same data, no preview) is not paired with an old preview.
        self._preview_snapshot = None

        self.mode_box = QComboBox()
        self.mode_box.addItems(["preview samples", "selected samples"])
        self.mode_box.setToolTip("Preview samples: a fixed set refreshed while training.\n"
                                 f"Selected samples: the first {MAX_SELECTED} selected in a projection.")
        self.mode_box.currentIndexChanged.connect(lambda i: self.set_mode(MODES[i]))
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show:"))
        bar.addWidget(self.mode_box)
        bar.addStretch(1)

        self.grid = ImageGrid(export_name="reconstructions.png")
        self.lines = SignalPlot(export_name="reconstructions.png", columns=4)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.grid)
        self.stack.addWidget(self.lines)
        for w in (self.grid, self.lines):
            w.exported.connect(lambda path: state.info(f"Saved {path}"))
            w.exportFailed.connect(state.error)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.stack, 1)

        self._throttle = Throttle(REDRAW_INTERVAL_MS, self.redraw, self)
        state.dataChanged.connect(self.redraw)
        state.snapshotChanged.connect(self._throttle.request)
        state.reconstructionPreviewChanged.connect(self._on_preview)
        state.selectionChanged.connect(self._on_selection)
        self._on_selection()
        self.redraw()

    # --- reactions ----------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        if self.mode_box.currentIndex() != MODES.index(mode):
            self.mode_box.setCurrentIndex(MODES.index(mode))   # re-enters set_mode once, harmlessly
        self.redraw()

    def _on_preview(self) -> None:
        self._preview_snapshot = self.state.snapshot
        self._throttle.request()

    def _on_selection(self) -> None:
        count = len(self.state.selection)
        self.mode_box.setItemText(1, f"selected samples ({count})" if count else "selected samples")
        if self.mode == "selected":
            self._throttle.request()

    @property
    def showing_images(self) -> bool:
        return self.stack.currentWidget() is self.grid

    # --- drawing ------------------------------------------------------------------------------
    def _message(self, text: str) -> None:
        self.shown_indices = np.zeros(0, dtype=np.int64)
        widget = self.grid if self.state.data is None or self.state.data.modality == "image" else self.lines
        self.stack.setCurrentWidget(widget)
        widget.set_caption("")
        widget.show_message(text)
        self.redrawn.emit()

    def redraw(self) -> None:
        state = self.state
        data, snapshot = state.data, state.snapshot
        if data is None:
            return self._message("Open a data set to see its reconstructions here.")
        if snapshot is None:
            return self._message("Train or load a model to see reconstructions: inputs appear above "
                                 "what the model makes of them.")
        if not data.fits(snapshot.model):   # Dataset.fits: the one shape check
            model_shape = tuple(snapshot.model.input_shape)
            return self._message(f"This model expects samples of shape {'x'.join(map(str, model_shape))}, "
                                 f"but {data.name} has {'x'.join(map(str, data.sample_shape))}: train a model "
                                 f"on this data or open data like the model's.")
        if self.mode == "selected":
            positions = state.selection
            if len(positions) == 0:
                return self._message("Select samples in a projection (click, rectangle or lasso) to see "
                                     "their reconstructions here.")
            indices = state.view_idx[positions[:MAX_SELECTED]]
            inputs = data.x[indices]
            recons = snapshot.reconstruct(inputs)
            what = (f"first {MAX_SELECTED} of {len(positions)} selected samples" if len(positions) > MAX_SELECTED
                    else f"{len(indices)} selected sample{'s' if len(indices) != 1 else ''}")
        else:
            indices = state.preview_idx
            inputs = data.x[indices]
            recons = state.preview_recon
            if recons is None or recons.shape != inputs.shape or self._preview_snapshot is not snapshot:
                recons = snapshot.reconstruct(inputs)   # e.g. an opened run: no preview from training
            what = f"{len(indices)} preview samples"
        self.shown_indices = np.asarray(indices)
        with np.errstate(over="ignore", invalid="ignore"):   # a diverged model shows inf, not a warning
            diff = recons.astype(np.float64) - inputs
            self.shown_errors = (diff * diff).reshape(len(inputs), -1).sum(axis=1)
        what += f", model at epoch {snapshot.epoch}"
        if data.modality == "image":
            self._draw_images(inputs, recons, what)
        else:
            self._draw_lines(inputs, recons, what)
        self.redrawn.emit()

    def _draw_images(self, inputs: np.ndarray, recons: np.ndarray, what: str) -> None:
        n = len(inputs)
        columns = min(n, 8 if n <= 32 else 16)
        grid = pair_rows(inputs, recons, columns)
        blocks = grid.shape[0] // 2

        def tooltip(row: int, col: int) -> str:
            i = (row // 2) * columns + col
            if i >= n:
                return ""
            kind = "input" if row % 2 == 0 else "reconstruction"
            return (f"{sample_name(self.state, int(self.shown_indices[i]))}: {kind}\n"
                    f"squared error {self.shown_errors[i]:.4g}")

        self.grid.set_grid(grid, row_labels=["input", "recon"] * blocks, cell_tooltip=tooltip)
        self.grid.set_caption(f"{what}; each input above its reconstruction")
        self.stack.setCurrentWidget(self.grid)

    def _draw_lines(self, inputs: np.ndarray, recons: np.ndarray, what: str) -> None:
        shown = min(len(inputs), MAX_LINE_PLOTS)
        specs = [PlotSpec(f"{sample_name(self.state, int(self.shown_indices[i]))} · error {self.shown_errors[i]:.3g}",
                          [Curve(inputs[i]), Curve(recons[i], dashed=True)]) for i in range(shown)]
        self.lines.set_plots(specs, columns=4 if shown > 4 else shown)
        more = f" (the first {shown} drawn)" if shown < len(inputs) else ""
        self.lines.set_caption(f"{what}{more}; solid: input, dashed: reconstruction, one colour per channel")
        self.stack.setCurrentWidget(self.lines)
