"""A figure for export, laid out anew from what a plot shows on screen.

An on-screen plot has the shape of its dock (a 696x102 strip, a 250x177 map) and its legend
floats over the data. A paper figure needs a sensible shape, its text at print size and the legend
beside the data. So the export copies the plot's items (curves, scatters, lines, images), axes,
title and view range into a fresh pyqtgraph layout of the figure's size, with the legend in a
column of its own, and pyqtgraph's exporters write that. The window's plots are never touched.

Sizes: a figure `width_px` wide at `dpi` is laid out `width_px * 96 / dpi` logical pixels wide (so
9 pt text prints at 9 pt) and rendered at `width_px`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QSizePolicy

SCREEN_DPI = 96
MIN_LAYOUT_PX, MAX_LAYOUT_PX = 480, 1600
LINE_ASPECT = 0.62           # height / width of a figure of line plots
TITLE_SIZE = "10pt"
LEGEND_TEXT = "9pt"
GRID_GREY = (215, 215, 215)
TEXT_GREY = (40, 40, 40)


@dataclass
class PlotSource:
    """One plot of the figure: the on-screen PlotItem, its cell, and its legend entries
    ((item, text); None: the plot's named items)."""
    plot: pg.PlotItem
    row: int = 0
    col: int = 0
    legend: list | None = None


def layout_width(width_px: int, dpi: int) -> int:
    return int(min(max(round(width_px * SCREEN_DPI / max(dpi, 1)), MIN_LAYOUT_PX), MAX_LAYOUT_PX))


def legend_entries(plot: pg.PlotItem) -> list[tuple[object, str]]:
    """(item, text) from the plot's own legend if it has one, else its visible named items."""
    legend = getattr(plot, "legend", None)
    if legend is not None and legend.items:
        return [(sample.item, label.text) for sample, label in legend.items]
    entries = []
    for item in plot.items:
        name = getattr(item, "opts", {}).get("name") if isinstance(getattr(item, "opts", None), dict) else None
        if name and item.isVisible():
            entries.append((item, str(name)))
    return entries


def build_figure(sources: list[PlotSource], width_px: int, dpi: int, legend: bool,
                 aspect: float | None = None) -> pg.GraphicsLayoutWidget:
    """An offscreen GraphicsLayoutWidget holding copies of the plots (and a legend column)."""
    widget = pg.GraphicsLayoutWidget()
    widget.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    widget.setBackground("w")
    columns = max(s.col for s in sources) + 1
    rows = max(s.row for s in sources) + 1
    copies: dict[int, object] = {}
    entries: list[tuple[object, str]] = []
    for source in sources:
        plot = widget.addPlot(row=source.row, col=source.col)
        _copy_plot(source.plot, plot, copies)
        for item, text in (source.legend if source.legend is not None else legend_entries(source.plot)):
            if id(item) in copies and text not in [t for _, t in entries]:
                entries.append((copies[id(item)], text))
    if legend and entries:
        key = pg.LegendItem(labelTextSize=LEGEND_TEXT, labelTextColor=(30, 30, 30), verSpacing=-4, frame=False)
        # A legend floating over a plot keeps its screen size when zoomed; in a figure it must scale
        # with the rest, or a 1600 px PNG gets 9-pixel legend text.
        key.setFlag(key.GraphicsItemFlag.ItemIgnoresTransformations, False)
        for item, text in entries:
            key.addItem(item, text)
        key.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)   # stacked at the top
        widget.addItem(key, row=0, col=columns, rowspan=rows)
        widget.ci.layout.setAlignment(key, Qt.AlignmentFlag.AlignTop)
    width = layout_width(width_px, dpi)
    if aspect is None:
        aspect = _aspect(sources, rows, columns)
    widget.resize(width, max(int(width * aspect), 160))
    widget.show()   # laid out, never on screen (WA_DontShowOnScreen)
    QApplication.processEvents()
    return widget


def _aspect(sources: list[PlotSource], rows: int, columns: int) -> float:
    """Height / width: the data's own for a single aspect-locked plot (maps, image grids)."""
    if len(sources) == 1 and sources[0].plot.getViewBox().state.get("aspectLocked"):
        (x0, x1), (y0, y1) = sources[0].plot.getViewBox().viewRange()
        return float(np.clip((y1 - y0) / max(x1 - x0, 1e-12), 0.3, 1.6))
    return float(np.clip(LINE_ASPECT * rows / columns, 0.3, 1.6))


def _copy_plot(src: pg.PlotItem, dst: pg.PlotItem, copies: dict) -> None:
    for item in src.items:
        copy = copy_item(item)
        if copy is not None:
            copies[id(item)] = copy
            dst.addItem(copy, ignoreBounds=True)
    _copy_axes(src, dst)
    if src.titleLabel.isVisible() and src.titleLabel.text:
        dst.setTitle(src.titleLabel.text, size=TITLE_SIZE)
    x_grid, y_grid = src.ctrl.xGridCheck.isChecked(), src.ctrl.yGridCheck.isChecked()
    if x_grid or y_grid:
        # Opaque light grey rather than black at low alpha: ImageMagick ignores the SVG's stroke opacity.
        dst.showGrid(x=x_grid, y=y_grid, alpha=1.0)
        for name in ("left", "bottom"):
            dst.getAxis(name).setPen(GRID_GREY)
            dst.getAxis(name).setTextPen(TEXT_GREY)
    dst.setLogMode(x=src.ctrl.logXCheck.isChecked(), y=src.ctrl.logYCheck.isChecked())
    src_box, dst_box = src.getViewBox(), dst.getViewBox()
    if src_box.state.get("yInverted"):
        dst_box.invertY(True)
    if src_box.state.get("aspectLocked"):
        dst_box.setAspectLocked(True, ratio=src_box.state["aspectLocked"])
    (x0, x1), (y0, y1) = src_box.viewRange()
    dst_box.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
    dst.hideButtons()


def _copy_axes(src: pg.PlotItem, dst: pg.PlotItem) -> None:
    for name in ("left", "bottom", "right", "top"):
        shown = src.getAxis(name).isVisible() if name in src.axes else False
        dst.showAxis(name, shown)
        if not shown:
            continue
        a, b = src.getAxis(name), dst.getAxis(name)
        if a.labelText:
            b.setLabel(a.labelText, units=a.labelUnits or None)
        b.enableAutoSIPrefix(a.autoSIPrefix)
        if getattr(a, "_tickLevels", None) is not None:
            b.setTicks(a._tickLevels)
        b.setStyle(tickLength=a.style.get("tickLength", 5), maxTickLevel=a.style.get("maxTickLevel", 2))
        if name == "left" and a._tickLevels is not None:
            b.setWidth(a.width())   # custom labels (grid rows): keep the room reserved for them


def copy_item(item):
    """A copy of a plot item pyqtgraph can draw in another plot, or None for items not worth one."""
    if not item.isVisible():
        return None
    if isinstance(item, pg.PlotDataItem):
        x, y = item.xData, item.yData
        if x is None or y is None:
            return None
        keys = ("pen", "shadowPen", "symbol", "symbolSize", "symbolBrush", "symbolPen", "connect", "fillLevel",
                "fillBrush", "name", "antialias")
        copy = pg.PlotDataItem(np.array(x), np.array(y), **{k: item.opts[k] for k in keys if k in item.opts})
    elif isinstance(item, pg.ScatterPlotItem):
        data = item.data   # may be empty: a layer that only carries a legend swatch still gets one
        opts = item.opts
        if not len(data):
            copy = pg.ScatterPlotItem(size=opts["size"], pen=opts["pen"], brush=opts["brush"], symbol=opts["symbol"],
                                      pxMode=opts["pxMode"], name=opts.get("name"))
            copy.setZValue(item.zValue())
            return copy
        sizes = np.where(data["size"] < 0, opts["size"], data["size"])
        copy = pg.ScatterPlotItem(x=np.array(data["x"]), y=np.array(data["y"]), size=sizes,
                                  pen=_per_spot(data["pen"], opts["pen"]), brush=_per_spot(data["brush"], opts["brush"]),
                                  symbol=_per_spot(data["symbol"], opts["symbol"]), pxMode=opts["pxMode"],
                                  name=opts.get("name"))
    elif isinstance(item, pg.InfiniteLine):
        label = item.label.format if getattr(item, "label", None) is not None else None
        copy = pg.InfiniteLine(pos=item.value(), angle=item.angle, pen=item.pen, movable=False, label=label,
                               labelOpts={"position": item.label.orthoPos, "color": (60, 60, 60)} if label else None)
    elif isinstance(item, pg.ImageItem):
        if item.image is None:
            return None
        copy = pg.ImageItem(np.array(item.image), axisOrder=item.axisOrder, levels=item.levels)
        copy.setTransform(item.transform())
        copy.setPos(item.pos())
    else:
        return None
    copy.setZValue(item.zValue())
    return copy


def _per_spot(values, default) -> list:
    """A spot's own pen/brush/symbol, or the item's where the spot has none (pyqtgraph stores None)."""
    return [default if v is None else v for v in values]


def data_inside_view(widget: pg.GraphicsLayoutWidget) -> bool:
    """Whether every point of every plot lies inside its view range: then the SVG needs no clip
    path (ImageMagick draws nothing inside one), and dropping it changes nothing."""
    for plot in widget.ci.items:
        if not isinstance(plot, pg.PlotItem):
            continue
        if plot.ctrl.logXCheck.isChecked() or plot.ctrl.logYCheck.isChecked():
            return False   # data bounds are in data units, the range in log units: keep the clip
        (x0, x1), (y0, y1) = plot.getViewBox().viewRange()
        for bx, by in filter(None, (_bounds(child) for child in plot.items)):
            if bx[0] < x0 or bx[1] > x1 or by[0] < y0 or by[1] > y1:
                return False
    return True


def _bounds(item):
    """((xmin, xmax), (ymin, ymax)) of an item's data, or None for items drawn to the view's edges."""
    if isinstance(item, pg.ImageItem):
        rect = item.mapRectToParent(item.boundingRect())
        return (rect.left(), rect.right()), (rect.top(), rect.bottom())
    if isinstance(item, (pg.PlotDataItem, pg.ScatterPlotItem)):
        bx, by = item.dataBounds(0), item.dataBounds(1)
        if bx is None or by is None or bx[0] is None or by[0] is None:
            return None
        return bx, by
    return None


def plot_sources(scene) -> list[PlotSource]:
    """The plots of a GraphicsLayoutWidget's scene, each in its cell (a single PlotItem otherwise)."""
    for item in scene.items():
        if isinstance(item, pg.GraphicsLayout) and item.parentItem() is None:
            return [PlotSource(plot, row=cells[0][0], col=cells[0][1]) for plot, cells in item.items.items()
                    if isinstance(plot, pg.PlotItem) and cells]
    return [PlotSource(item) for item in scene.items() if isinstance(item, pg.PlotItem)][:1]
