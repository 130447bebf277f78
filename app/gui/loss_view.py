"""Loss curves: train and validation totals per epoch, each loss part as its own curve, and a live
curve of the running training loss within the current epoch.

History rows come from `state.history`: always metrics rows (dicts with the metrics.csv column
names), whether trained here or loaded from a run (app/core/run.py). Live points arrive
through `add_progress()` (about 10 per second from the trainer); the plot itself is redrawn at most
`REDRAW_INTERVAL_MS` apart, from the latest data, however fast points arrive. Click a legend entry
to hide or show its curve.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from app.gui.export import ask_save_path, export_plot
from app.gui.state import ExplorerState

REDRAW_INTERVAL_MS = 100
EMPTY_HINT = "Train or load a model to see its loss curves."

TRAIN_COLOUR = (31, 119, 180)
VAL_COLOUR = (255, 127, 14)
LIVE_COLOUR = (31, 119, 180, 110)
PART_COLOURS = [(44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
                (188, 189, 34), (23, 190, 207)]


def history_columns(history: list) -> dict[str, np.ndarray]:
    """Metrics rows -> {column: float array}, NaN where a row lacks a value."""
    rows = history
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)

    def number(value) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    return {key: np.array([number(row.get(key)) for row in rows], dtype=np.float64) for key in columns}


def loss_series(columns: dict[str, np.ndarray]) -> list[tuple[str, str, str | None]]:
    """(key, legend name, part or None) for every loss column worth a curve, totals first."""
    series = []
    if "train_loss" in columns:
        series.append(("train_loss", "train", None))
    if "val_loss" in columns and np.isfinite(columns["val_loss"]).any():
        series.append(("val_loss", "validation", None))
    for key in columns:
        for split, label in (("train_", "train"), ("val_", "val")):
            if key.startswith(split) and key not in ("train_loss", "val_loss") and np.isfinite(columns[key]).any():
                part = key[len(split):]
                series.append((key, f"{label} {part}", part))
    return series


def best_epoch(columns: dict[str, np.ndarray]) -> tuple[float, float] | None:
    """(epoch, loss) of the lowest validation loss, or of the training loss without a validation split."""
    if "epoch" not in columns:
        return None
    for key in ("val_loss", "train_loss"):
        values = columns.get(key)
        if values is not None and np.isfinite(values).any():
            i = int(np.nanargmin(values))
            return float(columns["epoch"][i]), float(values[i])
    return None


class LossView(QWidget):
    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self._columns: dict[str, np.ndarray] = {}
        self._live_x: list[float] = []
        self._live_y: list[float] = []
        self._last_step = -1
        self._history_dirty = False
        self._part_colours: dict[str, tuple] = {}

        toolbar = self._build_toolbar()

        # The legend sits in a column of its own right of the plot, so it never covers a curve.
        self.plot = pg.GraphicsLayoutWidget()
        self.plot_item = self.plot.addPlot(row=0, col=0)
        # A grid at the major ticks only, and no minor ticks: the minor levels' extra lines made up
        # half of each redraw's paint (about 10 of 20 ms here, with ten redraws a second while training).
        self.plot_item.showGrid(x=True, y=True, alpha=0.2)
        for name in ("left", "bottom"):
            self.plot_item.getAxis(name).setStyle(maxTickLevel=0)
        self.plot_item.setLabel("bottom", "epoch")
        self.plot_item.setLabel("left", "loss per sample")
        self.plot_item.setMouseEnabled(x=True, y=True)
        self.legend = pg.LegendItem(labelTextSize="8pt", verSpacing=-6, frame=False)
        self.plot.addItem(self.legend, row=0, col=1)
        # Entries stacked at the top of their column, not spread over the plot's height.
        self.legend.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.plot.ci.layout.setAlignment(self.legend, Qt.AlignmentFlag.AlignTop)
        self.curves: dict[str, pg.PlotDataItem] = {}
        # A short name: the legend's column takes its width from the plot.
        self.live_curve = pg.PlotDataItem(pen=pg.mkPen(LIVE_COLOUR, width=1), name="train, running in epoch")
        # Peak downsampling and clipping for the one long curve (pyqtgraph's advice for live data).
        # Not for the per-epoch curves: with them on, every change of the view range re-clipped and
        # re-symbolled each of those short curves as well.
        self.live_curve.setDownsampling(auto=True, method="peak")
        self.live_curve.setClipToView(True)
        self.best_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((90, 90, 90), width=1,
                                                                                 style=Qt.PenStyle.DashLine),
                                         label="best", labelOpts={"position": 0.95, "color": (60, 60, 60)})
        self.best_marker = pg.PlotDataItem(pen=None, symbol="o", symbolSize=9, symbolBrush=None,
                                           symbolPen=pg.mkPen((20, 20, 20), width=2))
        for item in (self.best_line, self.best_marker):
            item.setVisible(False)
            self.plot_item.addItem(item, ignoreBounds=item is self.best_line)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(toolbar)
        layout.addWidget(self.plot, 1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self.redraw)
        state.historyChanged.connect(self._history_changed)
        self._history_changed()

    def _build_toolbar(self) -> QHBoxLayout:
        """Info line, Log scale / Loss parts / Legend, and the PNG and SVG export buttons."""
        self.log_checkbox = QCheckBox("Log scale")
        self.log_checkbox.setToolTip("Logarithmic loss axis: small late improvements and parts of very "
                                     "different size stay readable")
        self.log_checkbox.toggled.connect(self.set_log_scale)
        self.parts_checkbox = QCheckBox("Loss parts")
        self.parts_checkbox.setChecked(True)
        self.parts_checkbox.setToolTip("Show each part of the loss (reconstruction, KL, ...) as its own curve; "
                                       "click a legend entry to hide one curve")
        self.parts_checkbox.toggled.connect(self._apply_visibility)
        self.legend_checkbox = QCheckBox("Legend")
        self.legend_checkbox.setChecked(True)
        self.legend_checkbox.setToolTip("Show the legend beside the plot (and in exported figures); click an entry "
                                        "to hide or show its curve")
        self.legend_checkbox.toggled.connect(self._show_legend)
        self.export_png_button = QToolButton(text="PNG…")
        self.export_png_button.setToolTip("Save the loss plot as a PNG image (size and DPI in the dialog)")
        self.export_png_button.clicked.connect(lambda: self._ask_export("png"))
        self.export_svg_button = QToolButton(text="SVG…")
        self.export_svg_button.setToolTip("Save the loss plot as an SVG vector drawing")
        self.export_svg_button.clicked.connect(lambda: self._ask_export("svg"))
        self.info_label = QLabel(EMPTY_HINT)
        self.info_label.setWordWrap(True)   # wraps in a narrow dock instead of widening it
        self.info_label.setToolTip("The best epoch has the lowest validation loss (training loss without a "
                                   "validation split)")

        toolbar = QHBoxLayout()
        toolbar.addWidget(self.info_label, 1)
        for widget in (self.log_checkbox, self.parts_checkbox, self.legend_checkbox, self.export_png_button,
                       self.export_svg_button):
            toolbar.addWidget(widget)
        return toolbar

    # --- inputs ------------------------------------------------------------------------------
    def _history_changed(self) -> None:
        if not self.state.history:
            self.clear_live()   # a new run started, or the history was replaced by nothing
        self._history_dirty = True
        self._schedule()

    def add_progress(self, p) -> None:
        """A TrainProgress: one more point of the running training loss within the epoch."""
        if p.step < self._last_step:
            self.clear_live()   # a new training run
        self._last_step = p.step
        loss = p.parts.get("total")
        if loss is None or not math.isfinite(loss):
            return
        self._live_x.append((p.epoch - 1) + p.step_in_epoch / max(p.steps_per_epoch, 1))
        self._live_y.append(float(loss))
        self._schedule()

    def clear_live(self) -> None:
        self._live_x.clear()
        self._live_y.clear()
        self._last_step = -1
        self._schedule()

    def _schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    # --- drawing -----------------------------------------------------------------------------
    def redraw(self) -> None:
        """Draw from the latest data; the timer makes this run at most ~10 times a second."""
        if self._history_dirty:
            self._history_dirty = False
            self._columns = history_columns(self.state.history)
            self._draw_history()
        self._draw_live()
        # Settle the auto-range and the view's transform now rather than inside the next paint:
        # pyqtgraph would change them mid-paint, which asks for a second paint of the whole plot.
        view_box = self.plot_item.getViewBox()
        view_box.updateAutoRange()
        view_box.updateMatrix()
        has_anything = bool(self._columns.get("epoch", np.zeros(0)).size or self._live_x)
        if not has_anything:
            self.info_label.setText(EMPTY_HINT)

    def _curve(self, key: str, name: str, part: str | None) -> pg.PlotDataItem:
        curve = self.curves.get(key)
        if curve is None:
            if part is None:
                colour = TRAIN_COLOUR if key.startswith("train") else VAL_COLOUR
                pen = pg.mkPen(colour, width=2)
            else:
                colour = self._part_colours.setdefault(part, PART_COLOURS[len(self._part_colours) % len(PART_COLOURS)])
                style = Qt.PenStyle.SolidLine if key.startswith("train") else Qt.PenStyle.DashLine
                pen = pg.mkPen(colour, width=1, style=style)
            curve = pg.PlotDataItem(pen=pen, name=name, symbol="o" if part is None else None, symbolSize=4,
                                    symbolBrush=pen.color(), symbolPen=None)
            curve.loss_part = part
            self.plot_item.addItem(curve)
            self.legend.addItem(curve, name)
            self.curves[key] = curve
        return curve

    def _positive_if_log(self, y: np.ndarray) -> np.ndarray:
        if self.log_checkbox.isChecked():
            y = np.where(y > 0, y, np.nan)   # log10 of 0 or a negative part would be -inf/NaN noise
        return y

    def _draw_history(self) -> None:
        columns = self._columns
        epochs = columns.get("epoch", np.zeros(0))
        wanted = {key for key, _, _ in loss_series(columns)} if epochs.size else set()
        for key in list(self.curves):
            if key not in wanted:
                curve = self.curves.pop(key)
                self.plot_item.removeItem(curve)
                self.legend.removeItem(curve)
        if not epochs.size:
            self._part_colours.clear()
            self.best_line.setVisible(False)
            self.best_marker.setVisible(False)
            return
        for key, name, part in loss_series(columns):
            self._curve(key, name, part).setData(epochs, self._positive_if_log(columns[key]), connect="finite")
        self._apply_visibility()
        best = best_epoch(columns)
        if best is None:
            self.best_line.setVisible(False)
            self.best_marker.setVisible(False)
            self.info_label.setText(f"{int(epochs.size)} epochs")
            return
        epoch, loss = best
        self.best_line.setPos(epoch)
        self.best_line.label.setFormat(f"best: epoch {epoch:.0f}")
        self.best_line.setVisible(True)
        self.best_marker.setData([epoch], self._positive_if_log(np.array([loss])))
        self.best_marker.setVisible(True)
        which = "validation" if np.isfinite(columns.get("val_loss", np.array([np.nan]))).any() else "training"
        self.info_label.setText(f"{int(epochs.size)} epochs · best {which} loss {loss:.4g} at epoch {epoch:.0f}")

    def _draw_live(self) -> None:
        if not self._live_x:
            if self.live_curve.scene() is not None:
                self.plot_item.removeItem(self.live_curve)
                self.legend.removeItem(self.live_curve)
            return
        if self.live_curve.scene() is None:
            self.plot_item.addItem(self.live_curve)
            self.legend.addItem(self.live_curve, self.live_curve.name())
        self.live_curve.setData(np.asarray(self._live_x), self._positive_if_log(np.asarray(self._live_y)),
                                connect="finite")
        if not self._columns.get("epoch", np.zeros(0)).size:
            self.info_label.setText(f"running training loss {self._live_y[-1]:.4g}")

    def _apply_visibility(self) -> None:
        show_parts = self.parts_checkbox.isChecked()
        for curve in self.curves.values():
            if curve.loss_part is not None:
                curve.setVisible(show_parts)

    def _show_legend(self, on: bool) -> None:
        self.legend.setVisible(on)
        # A hidden legend gives its column back to the plot.
        self.plot.ci.layout.setColumnFixedWidth(1, self.legend.boundingRect().width() if on else 0)

    def set_log_scale(self, on: bool) -> None:
        if self.log_checkbox.isChecked() != on:
            self.log_checkbox.setChecked(on)   # re-enters through toggled
            return
        self.plot_item.setLogMode(y=on)
        self.plot_item.setLabel("left", "loss per sample (log scale)" if on else "loss per sample")
        self._history_dirty = True   # re-filter non-positive values for the new scale
        self.redraw()
        self.plot_item.enableAutoRange()

    # --- export ------------------------------------------------------------------------------
    def _ask_export(self, suffix: str) -> None:
        filters = "PNG image (*.png)" if suffix == "png" else "SVG drawing (*.svg)"
        path = ask_save_path(self, f"Export loss curves as {suffix.upper()}", f"losses.{suffix}", filters)
        if path:
            self.export_to(path)

    def export_to(self, path: str) -> bool:
        """Write the plot as PNG or SVG (by the extension); errors reach the user as a message."""
        self.redraw()   # include points still waiting for the timer
        # The figure's legend is the one beside the plot, when it is shown (the "Legend" box).
        entries = [(sample.item, label.text) for sample, label in self.legend.items] \
            if self.legend_checkbox.isChecked() else []
        try:
            export_plot(self.plot_item, path, legend=entries)
        except (OSError, ValueError) as exc:
            self.state.error(f"Could not export the loss plot to {path}: {exc}")
            return False
        self.state.info(f"Exported the loss plot to {path}")
        return True

    # --- what tests and the tour read ----------------------------------------------------------
    def curve_points(self, key: str = "train_loss") -> int:
        curve = self.curves.get(key)
        if curve is None:
            return 0
        x, _ = curve.getData()
        return 0 if x is None else len(x)

    def live_points(self) -> int:
        return len(self._live_x)
