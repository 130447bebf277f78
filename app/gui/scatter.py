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
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsRectItem

MODES = ("pan", "rect", "lasso")
HOVER_RADIUS_PX = 8.0
POINT_SIZE = 5
HOVER_INTERVAL_MS = 16   # one nearest-point search per frame, however fast the mouse moves
LASSO_STEP_PX = 2.0      # lasso vertices closer than this on screen are skipped


# --- geometry on arrays (no Qt; unit-tested directly) ---------------------------------------------
def points_in_rect(xy: np.ndarray, corner_a, corner_b) -> np.ndarray:
    """Indices of the rows of xy (N, 2) inside the axis-aligned rectangle spanned by two corners."""
    x0, x1 = sorted((float(corner_a[0]), float(corner_b[0])))
    y0, y1 = sorted((float(corner_a[1]), float(corner_b[1])))
    x, y = xy[:, 0], xy[:, 1]
    return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


def points_in_polygon(xy: np.ndarray, polygon) -> np.ndarray:
    """Indices of the rows of xy (N, 2) inside a closed polygon (M, 2), by the even-odd ray rule.

    Vectorised over points, looping over the polygon's edges: a lasso has a few hundred vertices
    and the points are pre-filtered by the polygon's bounding box, so this stays in milliseconds."""
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(poly) < 3 or len(xy) == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = points_in_rect(xy, poly.min(0), poly.max(0))
    px, py = xy[candidates, 0].astype(np.float64), xy[candidates, 1].astype(np.float64)
    inside = np.zeros(len(candidates), dtype=bool)
    xa, ya = poly[:, 0], poly[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    for ax, ay, bx, by in zip(xa, ya, xb, yb):
        if ay == by:
            continue  # a horizontal edge never crosses a horizontal ray
        crosses = (ay > py) != (by > py)
        x_at = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (px < x_at)
    return candidates[inside]


def nearest_point(xy: np.ndarray, target, pixel_size, radius_px: float = HOVER_RADIUS_PX) -> int:
    """Index of the point nearest to `target` as the user sees it, or -1 if none is within radius_px.

    Distances are measured in screen pixels (each axis divided by its pixel size), because the two
    axes of a projection are scaled differently on screen. A brute-force numpy search over 70,000
    points takes about a millisecond, so no spatial index (which would need rebuilding on every
    zoom) is worth its complexity."""
    if len(xy) == 0:
        return -1
    pw, ph = (max(float(s), 1e-30) for s in pixel_size)
    d2 = ((xy[:, 0] - target[0]) / pw) ** 2 + ((xy[:, 1] - target[1]) / ph) ** 2
    best = int(np.argmin(d2))
    return best if d2[best] <= radius_px ** 2 else -1


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
            index = nearest_point(self.owner.points, (here.x(), here.y()), self.viewPixelSize())
            if index >= 0:
                ev.accept()
                self.owner.pointsSelected.emit(np.array([index], dtype=np.int64),
                                               bool(ev.modifiers() & Qt.ControlModifier))
                return
        super().mouseClickEvent(ev)


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
        self._group_items: list[pg.ScatterPlotItem] = []
        self._selected_items: list[pg.ScatterPlotItem] = []   # the selected points of each group, on top
        self._groups = np.zeros(0, dtype=np.int64)
        self._colors: list[QColor] = []
        self._selection = np.zeros(0, dtype=np.int64)
        self.marker_size, self.marker_opacity = POINT_SIZE, 1.0
        self._legend: pg.LegendItem | None = None
        self._legend_visible = True
        self._highlight = _PassiveScatter(size=14, pen=pg.mkPen((0, 0, 0), width=2), brush=None,
                                             pxMode=True, symbol="o")
        self._highlight.setZValue(20)
        self.getPlotItem().addItem(self._highlight, ignoreBounds=True)   # never part of auto-range
        self.setMouseTracking(True)
        self._pending_hover: QPointF | None = None
        self._hover_timer = QTimer(self)
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(HOVER_INTERVAL_MS)
        self._hover_timer.timeout.connect(self._resolve_hover)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)

    # --- data ---------------------------------------------------------------------------------
    def set_points(self, xy: np.ndarray, groups: np.ndarray | None = None, colors: list[QColor] | None = None,
                   legend: list[tuple[int, str]] | None = None) -> None:
        """Show xy (N, 2); point i is drawn with colors[groups[i]] (one item per group, one brush each).
        `legend` lists (group, text) entries to show; None shows no legend."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        moved = not np.array_equal(xy, self.points)   # a recolouring keeps the user's zoom
        self.clear_points()
        self.points = xy
        if groups is None or not colors:
            groups = np.zeros(len(xy), dtype=np.int64)
            colors = colors[:1] if colors else [QColor(70, 110, 170)]
        groups = np.clip(np.asarray(groups, dtype=np.int64), 0, len(colors) - 1)
        self._groups, self._colors = groups, list(colors)
        order = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[order], np.arange(len(colors) + 1))
        plot = self.getPlotItem()
        for g in range(len(colors)):
            members = order[bounds[g]:bounds[g + 1]]
            item = _UniformScatter(x=xy[members, 0], y=xy[members, 1], size=self.marker_size, pen=None,
                                   brush=self._brush(g), pxMode=True, useCache=True, symbol="o")
            plot.addItem(item)
            self._group_items.append(item)
            overlay = _UniformScatter(size=self.marker_size + 1, pen=None, brush=self._brush(g, selected=True),
                                      pxMode=True, useCache=True, symbol="o")
            overlay.setZValue(10)
            plot.addItem(overlay, ignoreBounds=True)   # overlays sit on existing points
            self._selected_items.append(overlay)
        if legend:
            self._legend = pg.LegendItem(offset=(-5, 5), labelTextSize="8pt", labelTextColor=(30, 30, 30), colCount=2 if len(legend) > 8 else 1,
                                         brush=pg.mkBrush(255, 255, 255, 200), pen=pg.mkPen(180, 180, 180))
            self._legend.setParentItem(plot.getViewBox())
            for g, text in legend:
                self._legend.addItem(self._selected_items[g], text)   # full colour, even while dimmed
            self._legend.setVisible(self._legend_visible)
        self.set_highlight(-1)
        self.set_selected(np.zeros(0, dtype=np.int64))
        if moved:
            plot.getViewBox().autoRange()

    def clear_points(self) -> None:
        plot = self.getPlotItem()
        for item in self._group_items + self._selected_items:
            plot.removeItem(item)
        self._group_items, self._selected_items = [], []
        self._groups, self._colors = np.zeros(0, dtype=np.int64), []
        self._selection = np.zeros(0, dtype=np.int64)
        if self._legend is not None:
            if self._legend.scene() is not None:
                self._legend.scene().removeItem(self._legend)
            self._legend = None
        self.points = np.zeros((0, 2), dtype=np.float64)
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
        for g, (item, overlay) in enumerate(zip(self._group_items, self._selected_items)):
            item.setSize(self.marker_size, update=False)
            item.setBrush(self._brush(g))
            overlay.setSize(self.marker_size + 1, update=False)
            overlay.setBrush(self._brush(g, selected=True))
        self.viewport().update()

    @property
    def group_items(self) -> list[pg.ScatterPlotItem]:
        return list(self._group_items)

    @property
    def legend(self) -> pg.LegendItem | None:
        return self._legend

    def set_legend_visible(self, visible: bool) -> None:
        self._legend_visible = bool(visible)
        if self._legend is not None:
            self._legend.setVisible(self._legend_visible)

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
        colours and repaints at once."""
        indices = np.asarray(indices, dtype=np.int64)
        indices = np.unique(indices[(indices >= 0) & (indices < len(self.points))])
        was_selecting, self._selection = bool(len(self._selection)), indices
        if was_selecting != bool(len(indices)):   # dim or restore the unselected points
            for g, item in enumerate(self._group_items):
                item.setBrush(self._brush(g))
        if len(indices):
            groups = self._groups[indices]
            order = np.argsort(groups, kind="stable")
            bounds = np.searchsorted(groups[order], np.arange(len(self._colors) + 1))
            for g, overlay in enumerate(self._selected_items):
                members = indices[order[bounds[g]:bounds[g + 1]]]
                if len(members):
                    overlay.setData(pos=self.points[members])
                elif len(overlay.data):
                    overlay.clear()
        else:
            for overlay in self._selected_items:
                if len(overlay.data):
                    overlay.clear()
        self.viewport().update()   # a cleared selection must not wait for a zoom to disappear

    def selected_count(self) -> int:
        return int(sum(len(item.data) for item in self._selected_items))

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
        indices = points_in_rect(self.points, corner_a, corner_b)
        self.pointsSelected.emit(indices, additive)
        return indices

    def select_polygon(self, polygon, additive: bool = False) -> np.ndarray:
        """Select the points inside a polygon given in data coordinates (what a lasso does)."""
        indices = points_in_polygon(self.points, polygon)
        self.pointsSelected.emit(indices, additive)
        return indices

    def hover_at(self, x: float, y: float) -> int:
        """Report the point nearest to data position (x, y), if within the hover radius."""
        index = nearest_point(self.points, (x, y), self._viewbox.viewPixelSize())
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
