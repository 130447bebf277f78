"""Small multiples of overlaid lines, for data that is not an image: sequences (T, C) and table
rows (D,). Used for inputs against reconstructions (solid against dashed, one colour per channel)
and for families of decoded outputs (one colour per step of a traversal or an interpolation).

Plots and curve items are reused when the layout stays the same, so redrawing only hands new
arrays to existing items; `set_curve_values` is the hot path for the live traversal slider.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QWidget

from app.gui.export import FigureExports, export_plot, export_toolbar, message_label, stack_under_toolbar

# Tableau 10: distinct on light and dark backgrounds, and the usual colours of matplotlib figures.
CHANNEL_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MAX_CHANNELS = 8           # more lines than this in one small plot are unreadable
MAX_EXPORT_WIDTH = 8000    # pixels; a larger scale would make files no viewer opens comfortably


def as_channels(values: np.ndarray) -> np.ndarray:
    """One sample as (L, C): a table row (D,) is one line over the features, a sequence (T, C) one
    line per channel (the first MAX_CHANNELS)."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 1:
        return values[:, None]
    if values.ndim == 2:
        return values[:, :MAX_CHANNELS]
    raise ValueError(f"expected a (D,) row or a (T, C) sequence, got shape {values.shape}")


def ramp_colours(n: int) -> list[str]:
    """n colours from blue through grey to red: the order of a traversal's or interpolation's steps."""
    cmap = pg.ColorMap([0.0, 0.5, 1.0], [(49, 99, 206), (150, 150, 150), (214, 39, 40)])
    return [cmap.map(t, mode="qcolor").name() for t in np.linspace(0.0, 1.0, max(n, 1))]


@dataclass
class Curve:
    values: np.ndarray                 # one sample: (D,) or (T, C)
    colours: tuple = CHANNEL_COLOURS   # one colour per channel (cycled), or a 1-tuple for all channels
    dashed: bool = False


@dataclass
class PlotSpec:
    title: str
    curves: list[Curve] = field(default_factory=list)


def family_plots(title: str, family: np.ndarray, max_channels: int = 3) -> list[PlotSpec]:
    """A family of outputs (S, D) or (S, T, C), e.g. the steps of a traversal, as plots of S lines
    coloured blue to red in step order. Several channels get one plot each (the first
    `max_channels`): every channel's lines in one plot would be an unreadable tangle."""
    family = np.asarray(family)
    colours = ramp_colours(len(family))
    if family.ndim == 2 or family.shape[-1] == 1:
        return [PlotSpec(title, [Curve(member.reshape(len(member), -1)[:, 0] if member.ndim == 2 else member,
                                       colours=(colours[s],)) for s, member in enumerate(family)])]
    return [PlotSpec(f"{title} · channel {c}" if title else f"channel {c}", [Curve(member[:, c], colours=(colours[s],))
                                               for s, member in enumerate(family)])
            for c in range(min(family.shape[-1], max_channels))]


class SignalPlot(QWidget, FigureExports):
    exported = Signal(str)
    exportFailed = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, export_name: str = "lines.png", columns: int = 4,
                 toolbar: bool = True):
        super().__init__(parent)
        self.export_name = export_name
        self.columns = columns
        self._plots: list[pg.PlotItem] = []
        self._items: list[list[list[pg.PlotDataItem]]] = []   # plot -> curve -> channel item
        self._layout_key: tuple | None = None
        self._pens: dict[tuple[str, bool], object] = {}

        bar_widget = export_toolbar(
            self, scale=None, scale_tip="", png_tip="Export these plots as a PNG figure (width and DPI in the dialog)",
            svg_tip="Export these plots as an SVG figure")
        self.message = message_label()
        self.graphics = pg.GraphicsLayoutWidget()
        self.stack = stack_under_toolbar(self, bar_widget, self.message, self.graphics, toolbar)
        self.show_message("Nothing to show yet.")

    @property
    def plots(self) -> list[pg.PlotItem]:
        return list(self._plots) if self.stack.currentWidget() is self.graphics else []

    def curve_items(self, plot_index: int) -> list[list[pg.PlotDataItem]]:
        """For each curve of a plot, its line items (one per channel)."""
        return self._items[plot_index]

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
        self._set_exportable(False)

    def set_caption(self, text: str) -> None:
        self.caption.setText(text)

    def set_plots(self, specs: list[PlotSpec], columns: int | None = None) -> None:
        """Draw one small plot per spec; reuses the existing plots when the layout is unchanged."""
        columns = max(1, min(columns or self.columns, len(specs) or 1))
        shaped = [[as_channels(c.values) for c in spec.curves] for spec in specs]
        key = (columns, tuple(tuple(v.shape for v in curves) for curves in shaped))
        if key != self._layout_key:
            self._rebuild(specs, shaped, columns)
            self._layout_key = key
        for p, spec in enumerate(specs):
            self._plots[p].setTitle(spec.title, size="9pt")
            for c, (curve, values) in enumerate(zip(spec.curves, shaped[p])):
                for ch, item in enumerate(self._items[p][c]):
                    item.setPen(self._pen(curve.colours[ch % len(curve.colours)], curve.dashed))
                self._set_values(p, c, values)
        if self.stack.currentWidget() is not self.graphics:
            self.stack.setCurrentWidget(self.graphics)
        self._set_exportable(True)

    def set_curve_values(self, plot_index: int, curve_index: int, values: np.ndarray) -> None:
        """The hot path: new values for one existing curve (same shape as before)."""
        self._set_values(plot_index, curve_index, as_channels(values))

    def _set_values(self, p: int, c: int, values: np.ndarray) -> None:
        x = np.arange(len(values), dtype=np.float32)
        finite = bool(np.isfinite(values).all())   # pyqtgraph may skip its own check only when this holds
        for ch, item in enumerate(self._items[p][c]):
            item.setData(x, values[:, ch], skipFiniteCheck=finite)

    def _rebuild(self, specs: list[PlotSpec], shaped: list[list[np.ndarray]], columns: int) -> None:
        self.graphics.clear()
        self._plots, self._items = [], []
        for p, spec in enumerate(specs):
            if p and p % columns == 0:
                self.graphics.nextRow()
            plot = self.graphics.addPlot()
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setMenuEnabled(False, enableViewBoxMenu=True)
            plot.hideButtons()
            items = []
            for values in shaped[p]:
                items.append([plot.plot() for _ in range(values.shape[1])])
            self._plots.append(plot)
            self._items.append(items)

    def _pen(self, colour: str, dashed: bool):
        key = (colour, dashed)
        if key not in self._pens:   # shared pens: one per colour and style, not one per curve
            self._pens[key] = pg.mkPen(colour, width=1.5, style=Qt.DashLine if dashed else Qt.SolidLine)
        return self._pens[key]

    # --- export -------------------------------------------------------------------------------
    def _set_exportable(self, enabled: bool) -> None:
        for w in (self.png_button, self.svg_button):
            w.setEnabled(enabled)

    def export_png(self, path: str, width: int | None = None) -> None:
        """A figure of these plots, `width` pixels across (the width chosen on export by default)."""
        if not self.plots:
            raise ValueError("there are no plots to export yet")
        export_plot(self.graphics.scene(), path, width=min(MAX_EXPORT_WIDTH, width) if width else None)

    def export_svg(self, path: str) -> None:
        if not self.plots:
            raise ValueError("there are no plots to export yet")
        export_plot(self.graphics.scene(), path)

