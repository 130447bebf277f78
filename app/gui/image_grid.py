"""A mosaic of small images shown as one pyqtgraph ImageItem, with row/column labels, a tooltip per
cell, and export as PNG at a chosen scale (the pixels) or as SVG (the labelled figure).

One ImageItem for the whole grid keeps drawing cheap however many cells there are; the labels are
axis ticks, so they stay readable at any zoom. `show_display` is the hot path for a single live
image (the traversal slider): it only hands the new array to the ImageItem, with fixed levels so
pyqtgraph does not scan the data for its range.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QWidget

from app.core.imaging import grid_mosaic
from app.gui.export import (FigureExports, export_image, export_plot, export_toolbar, message_label,
                            stack_under_toolbar)

CellTooltip = Callable[[int, int], str]   # (row, column) -> text
LABEL_GAP_PX = 6   # at least this much space between two neighbouring axis labels


def spaced_labels(centres_px, extents_px, labels, gap: float = LABEL_GAP_PX) -> list[int]:
    """Indices of the labels to draw so that none overlaps another: the middle non-empty label
    first, then outwards on each side, each kept only if it clears the last one kept by `gap`.
    Empty labels are never drawn and never block one."""
    filled = [i for i, text in enumerate(labels) if text]
    if not filled:
        return []
    middle = filled[len(filled) // 2]
    kept = [middle]
    for direction in (1, -1):
        edge = centres_px[middle] + direction * extents_px[middle] / 2
        for i in (filled[filled.index(middle) + 1:] if direction > 0 else reversed(filled[:filled.index(middle)])):
            near = centres_px[i] - direction * extents_px[i] / 2
            if (near - edge) * direction >= gap:
                kept.append(i)
                edge = centres_px[i] + direction * extents_px[i] / 2
    return sorted(kept)


def cell_centres(count: int, size: int, pad: int) -> np.ndarray:
    """Centre coordinate of each of `count` cells of `size` pixels separated by `pad` pixels."""
    return pad + np.arange(count) * (size + pad) + size / 2.0


def cell_at(coordinate: float, count: int, size: int, pad: int) -> int:
    """Which cell a mosaic coordinate falls in, or -1 on the padding / outside."""
    if coordinate < pad:
        return -1
    index, offset = divmod(coordinate - pad, size + pad)
    return int(index) if index < count and offset < size else -1


class ImageGrid(QWidget, FigureExports):
    """Shows a grid of data-space images (or one display image) with a message when there is none."""

    exported = Signal(str)        # a file was written at this path
    exportFailed = Signal(str)    # a readable message: the write failed

    def __init__(self, parent: QWidget | None = None, *, export_name: str = "grid.png", scale: int = 0,
                 pad: int = 1, background: float = 0.5, toolbar: bool = True):
        super().__init__(parent)
        self.export_name = export_name
        self.pad = pad
        self.background = background   # grey lines between cells: visible against dark and light images
        self._mosaic: np.ndarray | None = None
        self._grid_shape = (0, 0)           # rows, columns of the current grid
        self._cell_size = (0, 0)            # height, width of one cell in pixels
        self._cell_pad = pad
        self._cell_tooltip: CellTooltip | None = None
        self._row_tooltips: list[str] | None = None
        self.row_labels: list[str] = []      # shown beside the rows / under the columns
        self.col_labels: list[str] = []
        self._tick_positions: dict[str, list[float]] = {"left": [], "bottom": []}

        bar_widget = export_toolbar(
            self, scale=scale, scale_tip="Each image pixel becomes this many pixels in the exported PNG; "
                                         "fit: as many as bring it closest to the figure width chosen on export",
            png_tip="Export the grid's pixels as a PNG, enlarged by the scale on the left (size and DPI in the dialog)",
            svg_tip="Export the figure with its labels as SVG")
        self.message = message_label()
        self.graphics = pg.GraphicsLayoutWidget()
        self.plot = self.graphics.addPlot()
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False, enableViewBoxMenu=True)
        self.plot.setDefaultPadding(0.0)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image_item)
        for name in ("left", "bottom"):
            self.plot.getAxis(name).setStyle(tickLength=0)
            self.plot.showAxis(name, False)
        self.graphics.scene().sigMouseMoved.connect(self._update_tooltip)
        # Labels that would run into each other at this zoom are left out (greedily, from the middle).
        self.plot.vb.sigResized.connect(self._fit_labels)
        self.plot.vb.sigRangeChanged.connect(self._fit_labels)
        # The plot takes the mosaic's shape, centred, so the row labels sit right beside the cells
        # instead of across the blank margin an aspect-locked view leaves.
        self.graphics.ci.layout.setAlignment(self.plot, Qt.AlignmentFlag.AlignCenter)
        self.graphics.installEventFilter(self)
        self.stack = stack_under_toolbar(self, bar_widget, self.message, self.graphics, toolbar)
        self.show_message("Nothing to show yet.")

    # --- content ------------------------------------------------------------------------------
    @property
    def mosaic(self) -> np.ndarray | None:
        """The display array shown now ((H, W) or (H, W, 3) in [0, 1]), None while a message shows."""
        return self._mosaic

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self._grid_shape

    def show_message(self, text: str) -> None:
        self._mosaic = None
        self._grid_shape = (0, 0)
        self.row_labels, self.col_labels = [], []
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
        self._set_exportable(False)

    def set_grid(self, images: np.ndarray, row_labels: list[str] | None = None,
                 col_labels: list[str] | None = None, cell_tooltip: CellTooltip | None = None,
                 row_tooltips: list[str] | None = None) -> None:
        """images: (R, S, C, H, W) in data space; labels are drawn as axis ticks beside the rows/columns."""
        images = np.asarray(images)
        rows, cols, h, w = images.shape[0], images.shape[1], images.shape[-2], images.shape[-1]
        mosaic = grid_mosaic(images, pad=self.pad, background=self.background)
        self._cell_tooltip = cell_tooltip
        self._row_tooltips = row_tooltips
        self._show(mosaic, (rows, cols), (h, w))
        self.row_labels, self.col_labels = list(row_labels or []), list(col_labels or [])
        self._set_ticks("left", row_labels, cell_centres(rows, h, self.pad))
        self._set_ticks("bottom", col_labels, cell_centres(cols, w, self.pad))
        self._fit_shape()
        self._fit_labels()

    def show_display(self, display: np.ndarray) -> None:
        """The hot path: one display image ((H, W) or (H, W, 3) in [0, 1]) replaces the current one.
        Only the ImageItem's data changes; labels and view range are kept when the size is the same."""
        if self._grid_shape != (1, 1) or self._cell_size != display.shape[:2]:
            self._cell_tooltip = None
            self._row_tooltips = None
            self._show(display, (1, 1), display.shape[:2], pad=0)
            self.row_labels, self.col_labels = [], []
            self._set_ticks("left", None, [])
            self._set_ticks("bottom", None, [])
            return
        self._mosaic = display
        self.image_item.setImage(display, autoLevels=False, levels=(0.0, 1.0))

    def _show(self, mosaic: np.ndarray, grid: tuple[int, int], cell: tuple[int, int], pad: int | None = None) -> None:
        resized = self._mosaic is None or self._mosaic.shape[:2] != mosaic.shape[:2]
        self._mosaic = mosaic
        self._grid_shape = grid
        self._cell_size = tuple(cell)
        self._cell_pad = self.pad if pad is None else pad
        self.image_item.setImage(mosaic, autoLevels=False, levels=(0.0, 1.0))
        if self.stack.currentWidget() is not self.graphics:
            self.stack.setCurrentWidget(self.graphics)
            resized = True
        if resized:
            self.plot.autoRange(padding=0.0)
            self._fit_shape()
        self._set_exportable(True)

    def _set_ticks(self, axis_name: str, labels: list[str] | None, positions) -> None:
        axis = self.plot.getAxis(axis_name)
        if not labels:
            self._tick_positions[axis_name] = []
            self.plot.showAxis(axis_name, False)
            return
        self._tick_positions[axis_name] = [float(p) for p in positions]
        axis.setTicks([list(zip(self._tick_positions[axis_name], labels)), []])
        if axis_name == "left":
            # Reserve the labels' width now: pyqtgraph widens an axis only after a first paint that
            # clipped the labels, which leaves the first picture (and a quick export) unlabelled.
            metrics = QFontMetrics(axis.style.get("tickFont") or self.font())
            axis.setWidth(max(metrics.horizontalAdvance(label) for label in labels) + 12)
        self.plot.showAxis(axis_name, True)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if watched is self.graphics and event.type() == QEvent.Type.Resize:
            self._fit_shape()
        return False

    def _fit_shape(self) -> None:
        """Limit the plot to the size at which the mosaic fills its view box, for the space there is."""
        if self._mosaic is None:
            return
        mosaic_h, mosaic_w = self._mosaic.shape[:2]
        left = self.plot.getAxis("left")
        bottom = self.plot.getAxis("bottom")
        # Axes plus the layout's and the plot's own margins (pyqtgraph: a few pixels each side).
        extra_w = (left.width() if left.isVisible() else 0) + 20
        extra_h = (bottom.height() if bottom.isVisible() else 0) + 24
        room_w, room_h = self.graphics.width() - extra_w, self.graphics.height() - extra_h
        if room_w <= 0 or room_h <= 0:
            return
        scale = min(room_w / mosaic_w, room_h / mosaic_h)
        width, height = mosaic_w * scale + extra_w, mosaic_h * scale + extra_h
        self.plot.setMaximumSize(width, height)
        # Centred in the space: the grid layout puts a narrower column at the left.
        side = max((self.graphics.width() - width) / 2, 0)
        top = max((self.graphics.height() - height) / 2, 0)
        self.graphics.ci.setContentsMargins(side, top, side, top)

    def _fit_labels(self, *_args) -> None:
        """Show only labels that keep a gap to their neighbours at the current pixel scale."""
        for axis_name, labels in (("bottom", self.col_labels), ("left", self.row_labels)):
            positions = self._tick_positions[axis_name]
            if not labels or len(positions) != len(labels):
                continue
            axis = self.plot.getAxis(axis_name)
            metrics = QFontMetrics(axis.style.get("tickFont") or self.font())
            vertical = axis_name == "left"
            pixels = self.plot.vb.height() if vertical else self.plot.vb.width()
            (x0, x1), (y0, y1) = self.plot.vb.viewRange()
            span = (y1 - y0) if vertical else (x1 - x0)
            if pixels <= 1 or span <= 0:
                continue
            extent = [metrics.height() if vertical else metrics.horizontalAdvance(t) for t in labels]
            kept = spaced_labels([p * pixels / span for p in positions], extent, labels, gap=LABEL_GAP_PX)
            axis.setTicks([[(positions[i], labels[i]) for i in kept], []])

    def set_caption(self, text: str) -> None:
        self.caption.setText(text)

    # --- tooltips -----------------------------------------------------------------------------
    def _update_tooltip(self, scene_pos) -> None:
        if self._mosaic is None or (self._cell_tooltip is None and not self._row_tooltips):
            return
        point = self.plot.vb.mapSceneToView(scene_pos)
        (rows, cols), (h, w) = self._grid_shape, self._cell_size
        row = cell_at(point.y(), rows, h, self._cell_pad)
        col = cell_at(point.x(), cols, w, self._cell_pad)
        text = ""
        if row >= 0 and col >= 0 and self._cell_tooltip is not None:
            text = self._cell_tooltip(row, col)
        elif row >= 0 and self._row_tooltips and point.x() < 0:
            text = self._row_tooltips[row]
        if text != self.graphics.toolTip():
            self.graphics.setToolTip(text)

    # --- export -------------------------------------------------------------------------------
    def _set_exportable(self, enabled: bool) -> None:
        self.png_button.setEnabled(enabled)
        self.svg_button.setEnabled(enabled)
        self.scale_box.setEnabled(enabled)

    def export_png(self, path: str, scale: int | None = None) -> None:
        """The mosaic's pixels, each enlarged `scale` times (the spin box's value by default; 0 fits
        the chosen figure width)."""
        if self._mosaic is None:
            raise ValueError("there is no image to export yet")
        export_image(self._mosaic, path, self.scale_box.value() if scale is None else scale)

    def export_svg(self, path: str) -> None:
        """The labelled figure as SVG (pyqtgraph's exporter)."""
        if self._mosaic is None:
            raise ValueError("there is no image to export yet")
        export_plot(self.plot, path)

