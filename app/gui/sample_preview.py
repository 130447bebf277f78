"""One sample next to its reconstruction: two images side by side, or input and reconstruction as
overlaid lines (solid input, dashed reconstruction) for sequences and tabular rows.

The projection view feeds it the hovered or selected sample; anything that has a sample and its
reconstruction can use it."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStackedWidget, QVBoxLayout, QWidget

from app.core.imaging import to_display

MAX_LINES = 8   # channels drawn for a sequence; more would be an unreadable tangle
CHANNEL_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
                  (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127)]


class SamplePreview(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setToolTip("The sample under the mouse (or the first selected one): its input and what the "
                        "model reconstructs from its code")
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message = QLabel("Hover over a point to see its input and reconstruction.")
        self.message.setAlignment(Qt.AlignCenter)
        self.message.setWordWrap(True)

        self.images = pg.GraphicsLayoutWidget()
        self.images.setBackground("w")
        self.input_image = pg.ImageItem(axisOrder="row-major")
        self.recon_image = pg.ImageItem(axisOrder="row-major")
        for column, (label, item) in enumerate((("input", self.input_image), ("reconstruction", self.recon_image))):
            self.images.addLabel(label, row=0, col=column, color="k", size="8pt")
            box = self.images.addViewBox(row=1, col=column, lockAspect=True, enableMouse=False, invertY=True)
            box.addItem(item)
        self.input_box = self.images.getItem(1, 0)
        self.recon_box = self.images.getItem(1, 1)

        self.lines = pg.PlotWidget(background="w")
        self.lines.showGrid(x=True, y=True, alpha=0.2)
        self.lines.addLegend(offset=(5, 5), labelTextSize="8pt")
        self.lines.setMouseEnabled(x=False, y=False)

        self.pages = QStackedWidget()
        for page in (self.message, self.images, self.lines):
            self.pages.addWidget(page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.title)
        layout.addWidget(self.pages, 1)
        self.setMinimumWidth(180)
        self.shown_kind = "none"   # "none" | "image" | "lines"

    def clear(self, message: str = "Hover over a point to see its input and reconstruction.") -> None:
        self.title.setText("")
        self.message.setText(message)
        self.pages.setCurrentWidget(self.message)
        self.shown_kind = "none"

    def show_sample(self, x: np.ndarray, recon: np.ndarray | None, title: str = "") -> None:
        """x: one sample, (C, H, W) image, (T, C) sequence or (D,) row; recon: same shape or None."""
        x = np.asarray(x, dtype=np.float32)
        self.title.setText(title)
        if x.ndim == 3:
            self._show_images(x, recon)
        else:
            self._show_lines(x, recon)

    def _show_images(self, x: np.ndarray, recon: np.ndarray | None) -> None:
        shown = to_display(x[None])[0]
        self.input_image.setImage(shown, levels=(0.0, 1.0))
        if recon is not None:
            self.recon_image.setImage(to_display(np.asarray(recon, np.float32)[None])[0], levels=(0.0, 1.0))
        else:
            self.recon_image.clear()
        self.input_box.autoRange(padding=0)
        self.recon_box.autoRange(padding=0)
        self.pages.setCurrentWidget(self.images)
        self.shown_kind = "image"

    def _show_lines(self, x: np.ndarray, recon: np.ndarray | None) -> None:
        plot = self.lines.getPlotItem()
        plot.clear()   # also empties the legend
        columns = x.reshape(len(x), -1) if x.ndim == 2 else x.reshape(-1, 1)   # (T, C) or (D, 1)
        rec_columns = None if recon is None else np.asarray(recon, np.float32).reshape(columns.shape)
        t = np.arange(len(columns))
        plot.setLabel("bottom", "time step" if x.ndim == 2 else "feature")
        for c in range(min(columns.shape[1], MAX_LINES)):
            color = CHANNEL_COLORS[c % len(CHANNEL_COLORS)]
            rec_color = color if columns.shape[1] > 1 else CHANNEL_COLORS[1]   # one line each: tell them apart
            suffix = f" [{c}]" if columns.shape[1] > 1 else ""
            plot.plot(t, columns[:, c], pen=pg.mkPen(color, width=1.5), name=f"input{suffix}")
            if rec_columns is not None:
                plot.plot(t, rec_columns[:, c], pen=pg.mkPen(rec_color, width=1.5, style=Qt.DashLine),
                          name=f"reconstruction{suffix}")
        self.pages.setCurrentWidget(self.lines)
        self.shown_kind = "lines"
