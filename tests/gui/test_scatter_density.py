"""The maps with a million points (issue 14): a density image when zoomed out, markers when zoomed
in, and hover, rectangle and lasso returning the right indices; the density maths on tiny examples."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor

from app.gui import density
from app.gui.density_index import XIndex, nearest_point, points_in_polygon, points_in_rect
from app.gui.point_colors import by_class
from app.gui.scatter import SELECTED_AS_POINTS_MAX, VISIBLE_MARKERS_MAX, FastScatter

MILLION = 1_000_000


def brute_polygon(xy: np.ndarray, polygon) -> np.ndarray:
    """Every point against every edge (the even-odd rule the scatter had before): the reference."""
    poly = np.asarray(polygon, dtype=np.float64)
    box = points_in_rect(xy, poly.min(0), poly.max(0))   # outside the bounding box nothing flips
    px, py = xy[box, 0], xy[box, 1]
    inside = np.zeros(len(box), dtype=bool)
    for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, axis=0)):
        if ay == by:
            continue
        with np.errstate(invalid="ignore"):
            inside ^= ((ay > py) != (by > py)) & (px < ax + (py - ay) * (bx - ax) / (by - ay))
    return box[inside]


def blobs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    return rng.normal(scale=8.0, size=(10, 2))[labels] + rng.normal(size=(n, 2)), labels


# --- density maths (numpy only) -------------------------------------------------------------------
def test_density_blends_class_colours_by_count_and_opacity_follows_log_density():
    red, blue = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    # a 2x2 image over [0, 2] x [0, 2]: pixel (row 0, col 0) holds 3 red + 1 blue, (row 1, col 1)
    # one blue, (row 0, col 1) nothing; one point outside the image is ignored
    x = np.array([0.5, 0.5, 0.5, 0.5, 1.5, 5.0])
    y = np.array([0.5, 0.5, 0.5, 0.5, 1.5, 0.5])
    colours = [red, red, red, blue, blue, red]
    rgb = tuple(np.array([c[k] for c in colours]) for k in range(3))
    image, peak = density.density_rgba(x, y, rgb, (0, 2), (0, 2), (2, 2))
    assert image.shape == (2, 2, 4) and image.dtype == np.uint8 and peak == 4
    assert tuple(image[0, 0, :3]) == (191, 0, 64)        # 3/4 red + 1/4 blue
    assert tuple(image[1, 1, :3]) == (0, 0, 255)
    assert image[0, 1, 3] == 0 and image[1, 0, 3] == 0   # empty pixels are clear
    assert image[0, 0, 3] == 255                          # the densest pixel is opaque
    single = density.ALPHA_FLOOR + (1 - density.ALPHA_FLOOR) * np.log1p(1) / np.log1p(4)
    assert image[1, 1, 3] == int(single * 255 + 0.5)      # one point: fainter, still visible
    # dimmed (a selection elsewhere): pale grey-ish, half as opaque
    dim, _ = density.density_rgba(x, y, rgb, (0, 2), (0, 2), (2, 2), dimmed=True)
    assert dim[1, 1, :3].min() > 170 and dim[1, 1, 3] == int(single * 0.5 * 255 + 0.5)
    # a shared scale: a selection layer of the lone blue point, normalised by the base's peak
    layer, _ = density.density_rgba(x[4:5], y[4:5], tuple(c[4:5] for c in rgb), (0, 2), (0, 2), (2, 2), norm=peak)
    assert layer[1, 1, 3] == image[1, 1, 3]


def test_pixel_bins_rows_start_at_the_bottom_and_outside_points_go_to_the_spare_bin():
    flat = density.pixel_bins(np.array([0.1, 1.9, 0.1, 2.5, np.nan]), np.array([0.1, 0.1, 1.9, 0.1, 0.1]),
                              (0, 2), (0, 2), (2, 2))
    assert flat.tolist() == [0, 1, 2, 4, 4]


def test_polygon_and_index_queries_equal_brute_force():
    rng = np.random.default_rng(3)
    xy = rng.normal(size=(20_000, 2))
    xy[:5] = [[np.nan, 0], [0, np.inf], [1e9, 0], [0.0, 0.0], [0.5, 0.5]]   # oddities and exact ties
    index = XIndex(xy)
    for trial in range(8):
        m = int(rng.integers(3, 60))
        poly = rng.normal(scale=1.5, size=(m, 2))      # self-intersecting, any orientation
        if trial == 0:
            poly = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1.0]])   # horizontal edges, points on them
        expected = brute_polygon(xy, poly)
        assert np.array_equal(points_in_polygon(xy, poly), expected)
        assert np.array_equal(index.in_polygon(poly), expected)
        a, b = rng.normal(size=2), rng.normal(size=2)
        assert np.array_equal(index.in_rect(a, b), points_in_rect(xy, a, b))
        target, pixel = rng.normal(size=2), rng.uniform(0.001, 0.05, size=2)
        assert index.nearest(target, pixel) == nearest_point(xy, target, pixel)
    assert index.nearest((0.0, 0.0), (0.1, 0.1)) == 3
    assert len(index.in_polygon([[0, 0], [1, 1]])) == 0
    empty = XIndex(np.zeros((0, 2)))
    assert empty.nearest((0, 0), (1, 1)) == -1 and len(empty.in_rect((0, 0), (1, 1))) == 0


# --- the widget with a million points -------------------------------------------------------------
@pytest.fixture(scope="module")
def million():
    xy, labels = blobs(MILLION)
    return xy, by_class(labels)


@pytest.fixture
def big_scatter(qtbot, million):
    xy, c = million
    scatter = FastScatter()
    scatter.setBackground("w")
    qtbot.addWidget(scatter)
    scatter.resize(600, 500)
    scatter.show()
    qtbot.waitExposed(scatter)
    scatter.set_points(xy, c.groups, c.colors, c.legend)
    return scatter


def view_rect(scatter):
    (x0, x1), (y0, y1) = scatter.getPlotItem().getViewBox().viewRange()
    return x0, x1, y0, y1


def zoom_to(scatter, x, y, half):
    scatter.getPlotItem().getViewBox().setRange(xRange=(x - half, x + half), yRange=(y - half, y + half), padding=0)
    scatter.refresh_now()


def test_a_million_points_show_a_density_image_first_and_points_after_zooming(big_scatter, million):
    xy, c = million
    scatter = big_scatter
    assert scatter.drawing == "density" and scatter.density_item.isVisible()
    assert sum(len(item.data) for item in scatter.group_items) == 0     # no markers for 1M points
    assert scatter.legend is not None and len(scatter.legend.items) == 10
    image = scatter.density_item.image
    assert image.shape[2] == 4 and (image[..., 3] > 0).sum() > 10_000
    scatter.grab()

    # zoomed into a small region: markers, holding the points in view (and a margin), no more
    zoom_to(scatter, *xy[0], 0.4)
    x0, x1, y0, y1 = view_rect(scatter)
    visible = points_in_rect(xy, (x0, y0), (x1, y1))
    assert 0 < len(visible) <= VISIBLE_MARKERS_MAX
    assert scatter.drawing == "points" and not scatter.density_item.isVisible()
    drawn = np.concatenate([np.c_[item.data["x"], item.data["y"]] for item in scatter.group_items])
    assert len(visible) <= len(drawn) <= 3 * len(visible)
    in_view = (drawn[:, 0] >= x0) & (drawn[:, 0] <= x1) & (drawn[:, 1] >= y0) & (drawn[:, 1] <= y1)
    assert in_view.sum() == len(visible)                               # every visible point is drawn
    for g, item in enumerate(scatter.group_items):                      # each in its class's item
        expected = xy[visible][c.groups[visible] == g]
        inside = (item.data["x"] >= x0) & (item.data["x"] <= x1) & (item.data["y"] >= y0) & (item.data["y"] <= y1)
        assert inside.sum() == len(expected)
    scatter.grab()

    # a small pan stays within what is drawn; zooming out again brings the density image back
    scatter.getPlotItem().getViewBox().translateBy(x=0.05)
    scatter.refresh_now()
    assert scatter.drawing == "points"
    scatter.getPlotItem().getViewBox().autoRange()
    scatter.refresh_now()
    assert scatter.drawing == "density" and sum(len(item.data) for item in scatter.group_items) == 0


def test_density_follows_range_changes_by_itself(qtbot, big_scatter, million):
    xy, _ = million
    zoom_to(big_scatter, *xy[0], 0.4)
    big_scatter.getPlotItem().getViewBox().autoRange()     # no refresh_now: the debounced signal does it
    qtbot.waitUntil(lambda: big_scatter.drawing == "density", timeout=3000)


def test_lasso_rectangle_and_hover_return_the_right_ids_with_a_million_points(big_scatter, million):
    xy, _ = million
    scatter = big_scatter
    got = []
    scatter.pointsSelected.connect(lambda indices, additive: got.append(indices))
    rect = scatter.select_rect((6.0, 2.0), (-3.0, -4.0))
    assert np.array_equal(rect, points_in_rect(xy, (-3.0, -4.0), (6.0, 2.0))) and len(rect) > 1000
    theta = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    lasso = np.c_[2 + 9 * np.cos(theta), 3 + 7 * np.sin(theta) * (1 + 0.3 * np.sin(5 * theta))]
    inside = scatter.select_polygon(lasso)
    assert np.array_equal(inside, brute_polygon(xy, lasso)) and len(inside) > 100_000
    assert np.array_equal(got[0], rect) and np.array_equal(got[1], inside)

    pixel = scatter.getPlotItem().getViewBox().viewPixelSize()
    rng = np.random.default_rng(0)
    for target in list(xy[rng.integers(0, MILLION, 5)] + 0.01) + [(1e6, 1e6)]:
        assert scatter.hover_at(*target) == nearest_point(xy, target, pixel)
    zoom_to(scatter, *xy[7], 0.2)                 # zoomed in, the radius in data units shrinks
    pixel = scatter.getPlotItem().getViewBox().viewPixelSize()
    assert scatter.hover_at(*(xy[7] + 0.001)) == nearest_point(xy, xy[7] + 0.001, pixel) == 7


def test_selection_keeps_its_colour_and_greys_the_rest_in_density_mode(big_scatter, million):
    xy, c = million
    scatter = big_scatter
    base = scatter.density_item.image.copy()
    # a small selection: greyed density image, the selected points as full-colour markers
    small = points_in_rect(xy, (-1, -1), (1, 1))
    assert 0 < len(small) <= SELECTED_AS_POINTS_MAX
    scatter.set_selected(small)
    assert scatter.drawing == "density" and scatter.selected_count() == len(small)
    dimmed = scatter.density_item.image
    filled = base[..., 3] > 0
    assert (dimmed[..., 3][filled] < base[..., 3][filled]).all()                     # fainter
    assert dimmed[..., :3][filled].min() > 150                                        # and pale
    overlays = sum(len(o.data) for o in scatter._selected_items)
    assert overlays == len(small) and not scatter.selected_density_item.isVisible()
    colours = {o.opts["brush"].color().name() for o in scatter._selected_items if len(o.data)}
    assert colours <= {q.name() for q in c.colors}

    # a large selection: a full-colour density layer of exactly those points over the greyed image
    large = points_in_rect(xy, (-50, -50), (0, 50))
    assert len(large) > SELECTED_AS_POINTS_MAX
    scatter.set_selected(large)
    layer = scatter.selected_density_item
    assert layer.isVisible() and sum(len(o.data) for o in scatter._selected_items) == 0
    rect = layer.mapRectToParent(layer.boundingRect())
    cols = layer.image.shape[1]
    split = int((0 - rect.left()) / rect.width() * cols)   # the image column of x = 0
    alpha = layer.image[..., 3]
    assert alpha[:, :split - 1].sum() > 0 and alpha[:, split + 1:].sum() == 0
    # where the layer is drawn its colours are the classes' own, not greyed
    saturated = layer.image[..., :3].max(-1).astype(int) - layer.image[..., :3].min(-1)
    assert saturated[alpha > 0].mean() > 60

    scatter.set_selected([])
    assert not scatter.selected_density_item.isVisible()
    assert np.array_equal(scatter.density_item.image, base)                           # colours back
    scatter.grab()


def test_a_recolouring_keeps_the_zoom_and_redraws(big_scatter, million):
    xy, c = million
    zoom_to(big_scatter, 0.0, 0.0, 5.0)
    before = view_rect(big_scatter)
    grey = [QColor(120, 120, 120)]
    big_scatter.set_points(xy, np.zeros(MILLION, dtype=np.int64), grey, None)
    assert view_rect(big_scatter) == pytest.approx(before)
    assert big_scatter.legend is None
    if big_scatter.drawing == "density":
        image = big_scatter.density_item.image
        assert set(map(tuple, image[image[..., 3] > 0][:, :3])) == {(120, 120, 120)}
    else:
        assert all(len(item.data) == 0 for item in big_scatter.group_items[1:])


def test_density_image_follows_the_widget_size(qtbot, big_scatter):
    rows, cols = big_scatter.density_item.image.shape[:2]
    big_scatter.resize(900, 700)
    qtbot.waitUntil(lambda: big_scatter.density_item.image.shape[1] > cols, timeout=3000)   # re-binned, debounced
    assert big_scatter.density_item.image.shape[0] > rows and big_scatter.drawing == "density"


def test_fast_record_fill_equals_pyqtgraphs_own(qtbot):
    import pyqtgraph as pg

    from app.gui.scatter import _UniformScatter

    rng = np.random.default_rng(2)
    xy = rng.normal(size=(300, 2))
    style = dict(size=4, pen=None, brush=pg.mkBrush("#2ca02c"), pxMode=True, useCache=True, symbol="o")
    ours, theirs = _UniformScatter(x=xy[:, 0], y=xy[:, 1], **style), pg.ScatterPlotItem(x=xy[:, 0], y=xy[:, 1], **style)
    for field in ("x", "y", "size", "visible", "symbol", "pen", "brush", "data", "item", "hovered", "sourceRect"):
        assert np.array_equal(ours.data[field], theirs.data[field]), field
    ours.setData(pos=xy[:10])                       # the fast path again, through setData
    assert len(ours.data) == 10 and np.array_equal(ours.data["x"], xy[:10, 0])
    ours.setData(x=xy[:5, 0], y=xy[:5, 1], data=list(range(5)))   # anything else: pyqtgraph's path
    assert list(ours.data["data"]) == list(range(5))
