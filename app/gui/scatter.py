"""A scatter plot that stays fast with tens of thousands of points and supports hover and selection.

Speed (docs/DESIGN.md, measured): one ScatterPlotItem per colour group with a single shared brush, no
per-point pens, pixel-sized symbols with the symbol cache on. Colours are therefore given as a small
palette plus one group index per point, never as one brush per point.

Interaction:
- hovering reports the nearest point within a few screen pixels (`pointHovered`), coalesced to
  at most one search per frame;
- a click on a point selects it; a drag in rectangle mode (or any Shift-drag) selects the points
  in the rectangle; a drag in lasso mode selects the points inside the drawn outline. Holding Ctrl
  when the selection finishes adds to the current one (`pointsSelected(indices, additive)`).
The widget only reports; its owner decides what the selection is and draws it with `set_selected`.

Many points (issue 14): with more than ALL_MARKERS_MAX points, while more than
VISIBLE_MARKERS_MAX are in view the plot is a density image (app/gui/density.py) instead of
markers; zoomed in so that fewer are in view, only the points near the view are markers. Hover,
rectangle and lasso always search every point through an x-ordered index
(app/gui/density_index.py) and return indices into the points given to set_points.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsRectItem

from app.gui import density
from app.gui.density_index import XIndex, nearest_point, points_in_polygon, points_in_rect

MODES = ("pan", "rect", "lasso")
HOVER_RADIUS_PX = 8.0
POINT_SIZE = 5
HOVER_INTERVAL_MS = 16   # one nearest-point search per frame, however fast the mouse moves
LASSO_STEP_PX = 2.0      # lasso vertices closer than this on screen are skipped
# Up to ALL_MARKERS_MAX points every point is a marker, as before issue 14: 70,000 markers pan at
# ~39 fps offscreen at 800x600 (bench/scatter.py, load 0.4). Beyond, the plot is a density image
# while more than VISIBLE_MARKERS_MAX points are in view, and markers for the points near the
# view otherwise: pyqtgraph transforms every point an item holds on each paint, and with the
# margin below an item holds ~2.25x the visible points, so 40,000 visible stays near the 70,000
# markers' frame time, while a density frame of 1,000,000 points pans at 56-88 fps under load 8
# (bench/scale.py; markers with 100,000 in view did 14-19 fps under the same load).
ALL_MARKERS_MAX = 100_000
VISIBLE_MARKERS_MAX = 40_000
DENSITY_HYSTERESIS = 1.25   # markers stay until 1.25x the limit is in view: no flicker at the edge
# Zoomed in, markers are drawn for the view plus this fraction of its size on each side, so a pan
# moves items already drawn instead of refilling them on every step (pyqtgraph culls the off-screen
# ones when painting); likewise the density image covers the view plus this margin.
REGION_MARGIN = 0.25
SELECTED_AS_POINTS_MAX = 50_000   # larger selections are a second (full-colour) density layer
REFRESH_INTERVAL_MS = 16          # a zoom or pan re-bins at most once per frame


# --- geometry on arrays: app/gui/density_index.py (no Qt, unit-tested); re-exported for the views --
__all__ = ["FastScatter", "points_in_rect", "points_in_polygon", "nearest_point", "default_marker_style", "dimmed"]


class _PassiveScatter(pg.ScatterPlotItem):
    """A scatter item that leaves clicks to the view box: pyqtgraph offers a click to every item
    near the cursor, and ScatterPlotItem would take it (and report its own point, not ours)."""

    def mouseClickEvent(self, ev):
        ev.ignore()


class _UniformScatter(_PassiveScatter):
    """A scatter item whose points all share the item's one style (symbol, size, pen, brush set
    through its options, never per point: FastScatter draws one item per colour group).

    pyqtgraph's ``updateSpots`` builds a (symbol, size, pen, brush) tuple per point and looks
    each up in the symbol atlas in Python: ~180 ms of a 70,000-point update. With one style the
    answer is the same for every point, so it is looked up once and broadcast (tested against
    pyqtgraph's own lookup in tests/gui/test_projection_view.py).
    """

    _STYLE_KEYS = ("size", "pen", "brush", "symbol")

    def setData(self, *args, **kargs):
        """As pyqtgraph's, with a fast path for coordinates given as arrays (what FastScatter does):
        pyqtgraph allocates its record array with ``np.empty``, whose object fields numpy fills one
        element at a time (~1 us a point: 80 ms of a 70,000-point update, 0.8-1.2 s at 1,000,000);
        ``np.zeros`` plus one assignment per object field gives the same records in ~8 ms."""
        pos = kargs.get("pos")
        xy_given = isinstance(pos, np.ndarray) or ("x" in kargs and "y" in kargs)
        if args or not xy_given or not set(kargs) <= {"x", "y", "pos", "pxMode", "useCache", *self._STYLE_KEYS}:
            return super().setData(*args, **kargs)
        for key in ("pxMode", "useCache"):
            if key in kargs:
                self.opts[key] = kargs[key]
        for key in self._STYLE_KEYS:
            if key in kargs:
                getattr(self, "set" + key.title())(kargs[key], update=False)
        if isinstance(pos, np.ndarray):
            self.set_xy(pos[:, 0], pos[:, 1])
        else:
            self.set_xy(kargs["x"], kargs["y"])

    def set_xy(self, x, y) -> None:
        """Replace every point (one style for all) by the coordinates x, y."""
        data = np.zeros(len(x), dtype=self.data.dtype)
        for field in ("symbol", "pen", "brush", "data", "item"):
            data[field] = None               # what np.empty would have put there
        data["size"] = -1                    # -1: the item's size, as pyqtgraph's addPoints sets
        data["visible"] = True
        data["x"], data["y"] = x, y
        self.data = data
        self.prepareGeometryChange()
        self.informViewBoundsChanged()
        self.bounds = [None, None]
        self.invalidate()
        self.updateSpots(data)
        self.sigPlotChanged.emit(self)

    def updateSpots(self, dataSet=None):
        if dataSet is None:
            dataSet = self.data
        if not (self.opts["pxMode"] and self.opts["useCache"]) or self.opts["hoverable"]:
            return super().updateSpots(dataSet)
        mask = dataSet["sourceRect"]["w"] == 0
        if np.any(mask):
            style = (self.opts["symbol"], self.opts["size"], self.opts["pen"], self.opts["brush"])
            dataSet["sourceRect"][mask] = self.fragmentAtlas[[style]][0]
            self._maybeRebuildAtlas()
            self._updateMaxSpotSizes()
            self.invalidate()
        else:
            self._updateMaxSpotSizes()

    def _updateMaxSpotSizes(self, **kwargs):
        # With the cache on pyqtgraph reads the atlas's width and ignores the points anyway.
        if self.opts["pxMode"] and self.opts["useCache"]:
            self._maxSpotWidth, self._maxSpotPxWidth = 0, self.fragmentAtlas.maxWidth
            self.bounds = [None, None]
            return
        super()._updateMaxSpotSizes(**kwargs)


def default_marker_style(n: int) -> tuple[int, float]:
    """(size in pixels, opacity) that keeps ``n`` points readable: a few hundred points can be
    large and opaque; 10,000 large opaque markers merge into solid masses (issue 15), so size
    and opacity fall with the count and overlapping points show density instead."""
    if n <= 1_000:
        return 7, 1.0
    if n <= 5_000:
        return 5, 0.85
    if n <= 20_000:
        return 4, 0.6
    if n <= 100_000:
        return 3, 0.45
    return 2, 0.35


def dimmed(color: QColor, opacity: float) -> QColor:
    """The look of an unselected point while a selection exists (Embedding Atlas's way): greyed
    towards the background and faint, so the selected points keep their colour and stand out."""
    grey = 0.8
    c = QColor(int(color.red() * (1 - grey) + 225 * grey), int(color.green() * (1 - grey) + 225 * grey),
               int(color.blue() * (1 - grey) + 225 * grey))
    c.setAlphaF(max(0.08, min(1.0, opacity * 0.5)))
    return c


# --- the view box that turns drags into selections ------------------------------------------------
class _SelectionViewBox(pg.ViewBox):
    """A ViewBox whose left drags select (rectangle or lasso) instead of panning when asked to."""

    def __init__(self):
        super().__init__()
        self.owner: FastScatter | None = None   # set by FastScatter right after construction
        outline = QPen(QColor(30, 30, 30))
        outline.setCosmetic(True)
        outline.setStyle(Qt.DashLine)
        self._rect_item = QGraphicsRectItem()
        self._rect_item.setPen(outline)
        self._rect_item.setBrush(QColor(80, 120, 200, 40))
        self._rect_item.setZValue(1e9)
        self._rect_item.hide()
        self._lasso_item = QGraphicsPathItem()
        self._lasso_item.setPen(outline)
        self._lasso_item.setBrush(QColor(80, 120, 200, 40))
        self._lasso_item.setZValue(1e9)
        self._lasso_item.hide()
        self.addItem(self._rect_item, ignoreBounds=True)
        self.addItem(self._lasso_item, ignoreBounds=True)
        self._lasso: list[tuple[float, float]] = []
        self._drag_start: QPointF | None = None
        self._active_mode: str | None = None
        self._lasso_last_screen: QPointF | None = None

    def _drag_mode(self, ev) -> str:
        mode = self.owner.mode
        if ev.modifiers() & Qt.ShiftModifier and mode == "pan":
            return "rect"
        return mode

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() != Qt.LeftButton or axis is not None:
            return super().mouseDragEvent(ev, axis)
        if ev.isStart() or self._active_mode is None:
            self._active_mode = self._drag_mode(ev)   # letting go of Shift mid-drag changes nothing
        mode = self._active_mode
        if ev.isFinish():
            self._active_mode = None
        if mode == "pan":
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        additive = bool(ev.modifiers() & Qt.ControlModifier)
        if ev.isStart() or self._drag_start is None:
            # kept in data coordinates: a layout change mid-drag must not move the anchor
            self._drag_start = self.mapToView(ev.buttonDownPos())
        start = self._drag_start
        here = self.mapToView(ev.pos())
        if ev.isFinish():
            self._drag_start = None
        if mode == "rect":
            self._rect_item.setRect(QRectF(start, here).normalized())
            self._rect_item.setVisible(not ev.isFinish())
            if ev.isFinish():
                self.owner.select_rect((start.x(), start.y()), (here.x(), here.y()), additive)
            return
        # lasso: collect vertices as the mouse moves, close the outline on release
        if ev.isStart() or not self._lasso:
            self._lasso = [(start.x(), start.y())]
            self._lasso_last_screen = ev.buttonDownPos()
        moved = ev.pos() - self._lasso_last_screen
        if abs(moved.x()) + abs(moved.y()) >= LASSO_STEP_PX or ev.isFinish():
            self._lasso.append((here.x(), here.y()))
            self._lasso_last_screen = ev.pos()
        path = QPainterPath(QPointF(*self._lasso[0]))
        for vx, vy in self._lasso[1:]:
            path.lineTo(vx, vy)
        path.closeSubpath()
        self._lasso_item.setPath(path)
        self._lasso_item.setVisible(not ev.isFinish())
        if ev.isFinish():
            polygon, self._lasso = np.asarray(self._lasso), []
            self.owner.select_polygon(polygon, additive)

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.LeftButton:
            here = self.mapToView(ev.pos())
            index = self.owner.nearest_to(here.x(), here.y())
            if index >= 0:
                ev.accept()
                self.owner.pointsSelected.emit(np.array([index], dtype=np.int64),
                                               bool(ev.modifiers() & Qt.ControlModifier))
                return
        super().mouseClickEvent(ev)


class _ExtentItem(pg.GraphicsObject):
    """Draws nothing; gives the view box the data's extent, so auto-range (set_points, the "A"
    button) frames every point while the marker items hold only those near the view."""

    def __init__(self):
        super().__init__()
        self._bounds = None   # (x0, x1, y0, y1) or None

    def set_bounds(self, bounds) -> None:
        self.prepareGeometryChange()
        self._bounds = bounds
        self.informViewBoundsChanged()

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        if self._bounds is None:
            return None, None
        return self._bounds[2 * ax], self._bounds[2 * ax + 1]

    def boundingRect(self):
        if self._bounds is None:
            return QRectF()
        x0, x1, y0, y1 = self._bounds
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    def paint(self, painter, option, widget=None):
        pass   # invisible on purpose: the item only gives the view the data's extent to range over


def _region(view, margin: float) -> tuple[float, float, float, float]:
    """The view rectangle (x0, x1, y0, y1) grown by `margin` of its size on every side."""
    x0, x1, y0, y1 = view
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return x0 - dx, x1 + dx, y0 - dy, y1 + dy


def _contains(outer, inner) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1] and outer[2] <= inner[2] and inner[3] <= outer[3]


# --- the widget -----------------------------------------------------------------------------------
class FastScatter(pg.PlotWidget):
    pointHovered = Signal(int)             # index of the point under the mouse, -1 for none
    pointsSelected = Signal(object, bool)  # (indices int64 array, add to the current selection)

    def __init__(self, parent=None):
        viewbox = _SelectionViewBox()
        super().__init__(parent, viewBox=viewbox)
        viewbox.owner = self
        self._viewbox = viewbox
        self.mode = "pan"
        self.points = np.zeros((0, 2), dtype=np.float64)
        self._index = XIndex(self.points)
        self._group_items: list[_UniformScatter] = []
        self._selected_items: list[_UniformScatter] = []   # the selected points of each group, on top
        self._groups = np.zeros(0, dtype=np.int64)
        self._colors: list[QColor] = []
        self._selection = np.zeros(0, dtype=np.int64)
        self.marker_size, self.marker_opacity = POINT_SIZE, 1.0
        self._legend: pg.LegendItem | None = None
        self._legend_entries: list[tuple[int, str]] | None = None
        self._legend_visible = True
        plot = self.getPlotItem()
        self._highlight = _PassiveScatter(size=14, pen=pg.mkPen((0, 0, 0), width=2), brush=None,
                                             pxMode=True, symbol="o")
        self._highlight.setZValue(20)
        plot.addItem(self._highlight, ignoreBounds=True)   # never part of auto-range
        # Many points: the density layers, the data's extent, and what is drawn where.
        self._extent = _ExtentItem()
        plot.addItem(self._extent)
        self._density_item = pg.ImageItem(axisOrder="row-major")
        self._density_item.setZValue(-1)
        self._selected_density_item = pg.ImageItem(axisOrder="row-major")
        self._selected_density_item.setZValue(5)
        for item in (self._density_item, self._selected_density_item):
            item.hide()
            plot.addItem(item, ignoreBounds=True)
        self.drawing = "points"              # "points" or "density": what the last refresh drew
        self._drawn_region = None            # (x0, x1, y0, y1) whose points the items hold; None: all
        self._density_key = None             # what the density image was last drawn for
        self._rgb: tuple[np.ndarray, ...] | None = None        # per-point colour, index order, lazily
        self._selected_layer = None          # (x, y, rgb) of a large selection, for its density layer
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_INTERVAL_MS)
        self._refresh_timer.timeout.connect(self.refresh_now)
        viewbox.sigRangeChanged.connect(self._schedule_refresh)
        viewbox.sigResized.connect(self._schedule_refresh)
        self.setMouseTracking(True)
        self._pending_hover: QPointF | None = None
        self._hover_timer = QTimer(self)
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(HOVER_INTERVAL_MS)
        self._hover_timer.timeout.connect(self._resolve_hover)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)

    # --- data ---------------------------------------------------------------------------------
    @property
    def many(self) -> bool:
        """Whether there are too many points to draw them all as markers (density/near-view mode)."""
        return len(self.points) > ALL_MARKERS_MAX

    def set_points(self, xy: np.ndarray, groups: np.ndarray | None = None, colors: list[QColor] | None = None,
                   legend: list[tuple[int, str]] | None = None) -> None:
        """Show xy (N, 2); point i is drawn with colors[groups[i]] (one item per group, one brush each).
        `legend` lists (group, text) entries to show; None shows no legend."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        moved = xy.shape != self.points.shape or not np.array_equal(xy, self.points)   # a recolouring keeps the zoom
        if moved:
            self._index = XIndex(xy)
            self._extent.set_bounds(self._index.bounds() if len(xy) else None)
        self.points = xy
        if groups is None or not colors:
            groups = np.zeros(len(xy), dtype=np.int64)
            colors = colors[:1] if colors else [QColor(70, 110, 170)]
        groups = np.clip(np.asarray(groups, dtype=np.int64), 0, len(colors) - 1)
        self._groups, self._colors = groups, list(colors)
        self._selection = np.zeros(0, dtype=np.int64)
        self._selected_layer, self._rgb, self._density_key = None, None, None
        self._ensure_items(len(colors))
        for g, (item, overlay) in enumerate(zip(self._group_items, self._selected_items)):
            item.setBrush(self._brush(g), update=False)
            item.setSize(self.marker_size, update=False)
            overlay.setBrush(self._brush(g, selected=True), update=False)
            overlay.setSize(self.marker_size + 1, update=False)
        self._set_legend(legend)
        self._drawn_region = None
        if self.many:
            self._fill_items(np.zeros(0, dtype=np.int64))   # markers only near the view, on refresh
        else:
            self._fill_items(np.arange(len(xy)))
        self.set_highlight(-1)
        self._update_overlays()   # the selection was reset above: empty overlays
        if moved:
            self.getPlotItem().getViewBox().autoRange()
        if self.many:
            self.refresh_now()   # the first frame is already the density image, not a blank plot
        else:
            self._hide_density()
            self.drawing = "points"

    def prepare(self, colors: list[QColor], legend: list[tuple[int, str]] | None = None) -> None:
        """Create the marker items and the legend for these colour groups before the first map
        arrives, legend hidden until set_points shows it. Creating them took ~40 ms of the first
        set_points of each panel (bench/ui_lag.py --trace-stalls), a stall right when a finished
        map is drawn; done when the data loads, it costs nothing anyone waits for."""
        if not colors:
            return
        self._ensure_items(len(colors))
        self._set_legend(legend)
        if self._legend is not None:
            self._legend.setVisible(False)

    def _ensure_items(self, n: int) -> None:
        """One marker item and one selection overlay per colour group, reused across set_points
        (creating them and their legend again cost ~40 ms of a 70,000-point update)."""
        plot = self.getPlotItem()
        while len(self._group_items) > n:
            plot.removeItem(self._group_items.pop())
            plot.removeItem(self._selected_items.pop())
            self._legend_entries = None
        while len(self._group_items) < n:
            item = _UniformScatter(size=self.marker_size, pen=None, brush=pg.mkBrush(0, 0, 0), pxMode=True,
                                   useCache=True, symbol="o")
            plot.addItem(item)
            self._group_items.append(item)
            overlay = _UniformScatter(size=self.marker_size + 1, pen=None, brush=pg.mkBrush(0, 0, 0),
                                      pxMode=True, useCache=True, symbol="o")
            overlay.setZValue(10)
            plot.addItem(overlay, ignoreBounds=True)   # overlays sit on existing points
            self._selected_items.append(overlay)
            self._legend_entries = None

    def _set_legend(self, legend) -> None:
        entries = [(int(g), str(text)) for g, text in legend] if legend else []
        if entries == self._legend_entries and (self._legend is not None) == bool(entries):
            for sample, _ in (self._legend.items if self._legend is not None else []):
                sample.update()   # the same swatches and items, perhaps in new colours: repaint them
            if self._legend is not None:
                self._legend.setVisible(self._legend_visible)   # shown again after prepare() hid it
            return
        self._remove_legend()
        self._legend_entries = entries
        if entries:
            plot = self.getPlotItem()
            self._legend = pg.LegendItem(offset=(-5, 5), labelTextSize="8pt", labelTextColor=(30, 30, 30),
                                         colCount=2 if len(entries) > 8 else 1,
                                         brush=pg.mkBrush(255, 255, 255, 200), pen=pg.mkPen(180, 180, 180))
            self._legend.setParentItem(plot.getViewBox())
            for g, text in entries:
                self._legend.addItem(self._selected_items[g], text)   # full colour, even while dimmed
            self._legend.setVisible(self._legend_visible)

    def _remove_legend(self) -> None:
        if self._legend is not None:
            if self._legend.scene() is not None:
                self._legend.scene().removeItem(self._legend)
            self._legend = None
        self._legend_entries = None

    def _fill_items(self, indices: np.ndarray) -> None:
        """Put the points `indices` (into self.points) in their groups' marker items."""
        groups = self._groups[indices]
        order = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[order], np.arange(len(self._colors) + 1))
        for g, item in enumerate(self._group_items):
            members = indices[order[bounds[g]:bounds[g + 1]]]
            if len(members) or len(item.data):
                item.set_xy(self.points[members, 0], self.points[members, 1])

    def clear_points(self) -> None:
        for item in self._group_items + self._selected_items:
            if len(item.data):
                item.set_xy(np.zeros(0), np.zeros(0))
        self._groups, self._colors = np.zeros(0, dtype=np.int64), []
        self._selection = np.zeros(0, dtype=np.int64)
        self._remove_legend()
        self.points = np.zeros((0, 2), dtype=np.float64)
        self._index = XIndex(self.points)
        self._extent.set_bounds(None)
        self._selected_layer, self._rgb, self._density_key, self._drawn_region = None, None, None, None
        self._hide_density()
        self.drawing = "points"
        self._highlight.clear()

    def _brush(self, group: int, selected: bool = False) -> QBrush:
        """A group's brush: its colour at the marker opacity; greyed and faint while other points
        are selected; the selected points themselves are never see-through."""
        color = QColor(self._colors[group])
        if len(self._selection) and not selected:
            return pg.mkBrush(dimmed(color, self.marker_opacity))
        color.setAlphaF(1.0 if selected else self.marker_opacity)
        return pg.mkBrush(color)

    def set_marker_style(self, size: int | None = None, opacity: float | None = None) -> None:
        """Marker size in pixels and opacity in (0, 1] for every point (the view's controls)."""
        if size is not None:
            self.marker_size = max(1, int(size))
        if opacity is not None:
            self.marker_opacity = min(1.0, max(0.02, float(opacity)))
        # Items without a colour (prepared, or kept after clear_points) get theirs in set_points.
        for g, (item, overlay, _) in enumerate(zip(self._group_items, self._selected_items, self._colors)):
            item.setSize(self.marker_size, update=False)
            item.setBrush(self._brush(g))
            overlay.setSize(self.marker_size + 1, update=False)
            overlay.setBrush(self._brush(g, selected=True))
        self.viewport().update()

    @property
    def group_items(self) -> list[pg.ScatterPlotItem]:
        return list(self._group_items)

    @property
    def density_item(self) -> pg.ImageItem:
        """The density image (shown while `drawing == "density"`)."""
        return self._density_item

    @property
    def selected_density_item(self) -> pg.ImageItem:
        """The full-colour density layer of a selection too large to draw as markers."""
        return self._selected_density_item

    @property
    def legend(self) -> pg.LegendItem | None:
        return self._legend

    def set_legend_visible(self, visible: bool) -> None:
        self._legend_visible = bool(visible)
        if self._legend is not None:
            self._legend.setVisible(self._legend_visible)

    # --- many points: what is drawn for the current view ----------------------------------------
    def _schedule_refresh(self, *args) -> None:
        if self.many and not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def _view(self) -> tuple[tuple[float, float, float, float], tuple[int, int]]:
        """((x0, x1, y0, y1) of the view, (rows, cols) of its pixels)."""
        (x0, x1), (y0, y1) = self._viewbox.viewRange()
        rect = self._viewbox.boundingRect()
        return (x0, x1, y0, y1), (max(1, int(round(rect.height()))), max(1, int(round(rect.width()))))

    def refresh_now(self) -> None:
        """Draw what the current view needs with many points: the density image when more than
        VISIBLE_MARKERS_MAX are in view, else markers for the points near the view. Runs on the
        debounced range/resize signals; the benchmarks and tests call it to draw synchronously."""
        self._refresh_timer.stop()
        if not self.many:
            return
        view, pixels = self._view()
        before = (self.drawing, self._drawn_region)
        limit = VISIBLE_MARKERS_MAX * (DENSITY_HYSTERESIS if self.drawing == "points" else 1.0)
        if self._index.count_in(*view) > limit:
            self._draw_density(view, pixels)
        else:
            self._draw_near_points(view)
        if len(self._selection) > SELECTED_AS_POINTS_MAX and (self.drawing, self._drawn_region) != before:
            self._update_overlays()   # a large selection's markers follow what is drawn

    def _draw_near_points(self, view) -> None:
        if self.drawing == "points" and self._drawn_region is not None and _contains(self._drawn_region, view):
            return   # panning inside what is drawn already
        region = _region(view, REGION_MARGIN)
        if self._index.count_in(*region) > 3 * VISIBLE_MARKERS_MAX:
            region = view
        self._drawn_region = region
        self._fill_items(np.sort(self._index.order[self._index.sorted_in(*region)]))
        self._hide_density()
        self.drawing = "points"

    def _draw_density(self, view, pixels) -> None:
        if self.drawing == "points":
            self._fill_items(np.zeros(0, dtype=np.int64))
            self._drawn_region = None
        self.drawing = "density"
        rows, cols = pixels
        x_scale, y_scale = (view[1] - view[0]) / cols, (view[3] - view[2]) / rows
        key = self._density_key
        if key is not None and _contains(key[0], view) and np.allclose(key[1], (x_scale, y_scale), rtol=1e-3):
            return   # same zoom, still inside the image drawn with a margin: a pan just moves it
        region = _region(view, REGION_MARGIN)
        shape = (int(round(rows * (1 + 2 * REGION_MARGIN))), int(round(cols * (1 + 2 * REGION_MARGIN))))
        index = self._index
        start, end = index.x_slice(region[0], region[1])
        if self._rgb is None:
            # float64: np.bincount converts other weights to it on every call (8 vs 14-16 ms at 1M)
            palette = np.array([c.getRgbF()[:3] for c in self._colors], dtype=np.float64)
            groups = np.take(self._groups, index.order)
            self._rgb = tuple(np.take(palette[:, c], groups) for c in range(3))
        rgb = tuple(channel[start:end] for channel in self._rgb)
        selecting = len(self._selection) > 0
        image, peak = density.density_rgba(index.xs[start:end], index.ys[start:end], rgb, region[:2], region[2:],
                                           shape, dimmed=selecting)
        rect = QRectF(region[0], region[2], region[1] - region[0], region[3] - region[2])
        self._density_item.setImage(image, autoLevels=False)
        self._density_item.setRect(rect)
        self._density_item.show()
        if self._selected_layer is not None:
            sx, sy, srgb = self._selected_layer
            layer, _ = density.density_rgba(sx, sy, srgb, region[:2], region[2:], shape, norm=peak)
            self._selected_density_item.setImage(layer, autoLevels=False)
            self._selected_density_item.setRect(rect)
            self._selected_density_item.show()
        else:
            self._selected_density_item.hide()
        self._density_key = (region, (x_scale, y_scale))

    def _hide_density(self) -> None:
        self._density_item.hide()
        self._selected_density_item.hide()
        self._density_key = None

    # --- overlays -----------------------------------------------------------------------------
    def set_highlight(self, index: int) -> None:
        if 0 <= index < len(self.points):
            self._highlight.setData(pos=self.points[index:index + 1])
        else:
            self._highlight.clear()

    def highlighted(self) -> int:
        """Number of highlighted points drawn (0 or 1); for tests and the owner's checks."""
        return len(self._highlight.data)

    def set_selected(self, indices: np.ndarray) -> None:
        """Draw a selection the way Embedding Atlas does: the selected points keep their colour
        (drawn on top, per group), every other point is greyed; an empty selection restores the
        colours and repaints at once. With many points the density image is greyed instead, and a
        selection of more than SELECTED_AS_POINTS_MAX points is a full-colour density layer on it."""
        indices = np.asarray(indices, dtype=np.int64)
        indices = np.unique(indices[(indices >= 0) & (indices < len(self.points))])
        if np.array_equal(indices, self._selection):
            return   # the view sets the selection again after each set_points: no second re-binning
        was_selecting, self._selection = bool(len(self._selection)), indices
        if was_selecting != bool(len(indices)):   # dim or restore the unselected points
            for g, item in enumerate(self._group_items):
                item.setBrush(self._brush(g))
        self._selected_layer = None
        if self.many and len(indices) > SELECTED_AS_POINTS_MAX:
            palette = np.array([c.getRgbF()[:3] for c in self._colors])
            groups = self._groups[indices]
            self._selected_layer = (self.points[indices, 0], self.points[indices, 1],
                                    tuple(np.take(palette[:, c], groups) for c in range(3)))
        if self.many:
            self._density_key = None   # redraw: greyed or not, and the selection layer
            self.refresh_now()
        self._update_overlays()
        self.viewport().update()   # a cleared selection must not wait for a zoom to disappear

    def _update_overlays(self) -> None:
        """The selected points drawn as markers over the rest: all of them, except with many points
        and a large selection: only those near the view (markers) or none (the density layer)."""
        indices = self._selection
        if self.many and len(indices) > SELECTED_AS_POINTS_MAX:
            if self.drawing == "density" or self._drawn_region is None:
                indices = indices[:0]
            else:
                x0, x1, y0, y1 = self._drawn_region
                x, y = self.points[indices, 0], self.points[indices, 1]
                indices = indices[(x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)]
        groups = self._groups[indices]
        order = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[order], np.arange(len(self._colors) + 1))
        for g, overlay in enumerate(self._selected_items):
            members = indices[order[bounds[g]:bounds[g + 1]]]
            if len(members) or len(overlay.data):
                overlay.set_xy(self.points[members, 0], self.points[members, 1])

    def selected_count(self) -> int:
        """Number of points drawn as selected (as markers or in the selection's density layer)."""
        return len(self._selection)

    def selected_indices(self) -> np.ndarray:
        """Indices of the points drawn as selected."""
        return self._selection.copy()

    # --- interaction --------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        self.mode = mode
        self.setCursor(Qt.ArrowCursor if mode == "pan" else Qt.CrossCursor)

    def select_rect(self, corner_a, corner_b, additive: bool = False) -> np.ndarray:
        """Select the points inside a rectangle given in data coordinates (what a drag does)."""
        indices = self._index.in_rect(corner_a, corner_b)
        self.pointsSelected.emit(indices, additive)
        return indices

    def select_polygon(self, polygon, additive: bool = False) -> np.ndarray:
        """Select the points inside a polygon given in data coordinates (what a lasso does)."""
        indices = self._index.in_polygon(polygon)
        self.pointsSelected.emit(indices, additive)
        return indices

    def nearest_to(self, x: float, y: float) -> int:
        """Index of the point nearest to data position (x, y) within the hover radius, or -1."""
        return self._index.nearest((x, y), self._viewbox.viewPixelSize(), HOVER_RADIUS_PX)

    def hover_at(self, x: float, y: float) -> int:
        """Report the point nearest to data position (x, y), if within the hover radius."""
        index = self.nearest_to(x, y)
        self.pointHovered.emit(index)
        return index

    def _on_mouse_moved(self, scene_pos) -> None:
        self._pending_hover = scene_pos
        if not self._hover_timer.isActive():
            self._hover_timer.start()

    def _resolve_hover(self) -> None:
        pos, self._pending_hover = self._pending_hover, None
        if pos is None or not len(self.points):
            return
        if not self._viewbox.sceneBoundingRect().contains(pos):
            self.pointHovered.emit(-1)
            return
        here = self._viewbox.mapSceneToView(pos)
        self.hover_at(here.x(), here.y())

    def leaveEvent(self, ev) -> None:
        self._pending_hover = None
        self._hover_timer.stop()
        self.pointHovered.emit(-1)
        super().leaveEvent(ev)
