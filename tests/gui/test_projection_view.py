"""The latent projection view: projections in the child process, linked hover/selection, colours,
exports and a clean shutdown. Data: three Gaussian clusters (300 x 10, labelled) encoded by a
freshly built tiny autoencoder with a 2-D code, so the raw latent panel shows too.

UMAP pays ~30-40 s of numba compilation in every fresh child process, so only one test runs it;
the others use PCA and t-SNE. Tests wait on the view's signals, never sleep."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import psutil
import pytest
import torch
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QPainterPath
from PySide6.QtWidgets import QApplication

from app.core.config import ModelConfig
from app.core.data.dataset import Dataset
from app.core.models import build_model
from app.core.snapshot import ModelSnapshot
from app.gui import projection_panel, projection_view
from app.gui.point_colors import CONTINUOUS_BINS, LEGEND_TICKS, by_class, by_value
from app.gui.projection_csv import projection_csv
from app.gui.projection_view import ProjectionView
from app.gui.sample_preview import SamplePreview
from app.gui.scatter import FastScatter, nearest_point, points_in_polygon, points_in_rect
from app.gui.state import ExplorerState

N, D = 300, 10
PROJECTION_TIMEOUT_MS = 60_000
UMAP_TIMEOUT_MS = 240_000


def blobs() -> Dataset:
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 6.0, size=(3, D))
    y = np.repeat(np.arange(3), N // 3)
    x = (centres[y] + rng.normal(size=(N, D))).astype(np.float32)
    size = rng.random((N, 1)).astype(np.float32)
    return Dataset(name="blobs", spec="blobs", x=x, modality="tabular", y=y, label_names=["a", "b", "c"],
                   factors=size, factor_names=["size"])


def make_state(latent_dim: int = 2) -> ExplorerState:
    state = ExplorerState()
    data = blobs()
    state.set_data(data)
    torch.manual_seed(0)   # the same codes every run
    model = build_model(ModelConfig(kind="ae", latent_dim=latent_dim, hidden=(16,)), (D,), "tabular", "mse")
    state.set_snapshot(ModelSnapshot.of(model, generation=1, epoch=0, modality="tabular"))
    return state


def encode(state: ExplorerState) -> None:
    assert state.set_encoded(state.snapshot.encode_all(state.data.x[state.view_idx]), state.generation)


def worker_processes() -> list[psutil.Process]:
    """Our children, less multiprocessing's own resource tracker (it lives as long as this process)."""
    return [p for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline())]


@pytest.fixture
def state(qapp):
    return make_state()


@pytest.fixture
def view(qtbot, state):
    v = ProjectionView(state, warm_up=False)
    v.auto_check.setChecked(False)     # each test starts exactly the projections it needs
    qtbot.addWidget(v)
    v.resize(1400, 420)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.shutdown()


@pytest.fixture
def encoded_view(qtbot, view, state):
    encode(state)
    qtbot.waitUntil(view.splitter.isVisible)   # the panels replaced the placeholder
    return view


def compute(qtbot, view, methods, timeout=PROJECTION_TIMEOUT_MS):
    with qtbot.waitSignals([view.projectionFinished] * len(methods), timeout=timeout, order="none"):
        view.recompute(methods)


def widget_pos(scatter: FastScatter, x: float, y: float) -> QPoint:
    box = scatter.getPlotItem().getViewBox()
    return scatter.mapFromScene(box.mapViewToScene(QPointF(x, y)))


def isolated_point(scatter: FastScatter, xy: np.ndarray) -> int:
    """The point farthest (on screen) from its nearest neighbour, so a mouse on it means it alone."""
    pixels = xy / np.asarray(scatter.getPlotItem().getViewBox().viewPixelSize())
    d2 = ((pixels[:, None, :] - pixels[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    return int(np.argmax(d2.min(1)))


def send_mouse(widget, kind, pos: QPoint, button, buttons, modifiers=Qt.NoModifier) -> None:
    event = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons, modifiers)
    QApplication.sendEvent(widget, event)


def drag_through(qtbot, scatter: FastScatter, vertices, modifiers=Qt.NoModifier) -> None:
    """Press at the first data point, move through the others, release at the last. Each position
    is mapped to the widget when it is sent, so a layout settling meanwhile cannot skew the path."""
    port = scatter.viewport()
    first, last = widget_pos(scatter, *vertices[0]), widget_pos(scatter, *vertices[-1])
    send_mouse(port, QEvent.MouseButtonPress, first, Qt.LeftButton, Qt.LeftButton, modifiers)
    for vertex in vertices[1:]:
        qtbot.wait(15)    # pyqtgraph drops mouse moves closer than 10 ms apart
        send_mouse(port, QEvent.MouseMove, widget_pos(scatter, *vertex), Qt.NoButton, Qt.LeftButton, modifiers)
    send_mouse(port, QEvent.MouseButtonRelease, last, Qt.LeftButton, Qt.NoButton, modifiers)


def path_through(corners, steps: int = 4) -> np.ndarray:
    """The closed outline through `corners`, with `steps` points per edge."""
    corners = np.asarray(corners, dtype=np.float64)
    ends = np.roll(corners, -1, axis=0)
    t = np.linspace(0.0, 1.0, steps + 1)[1:, None]
    return np.concatenate([corners[:1]] + [a + (b - a) * t for a, b in zip(corners, ends)])


# --- geometry and colours, no window ---------------------------------------------------------------
def test_points_in_rect_and_polygon_match_references():
    rng = np.random.default_rng(1)
    xy = rng.normal(size=(2000, 2))
    inside = points_in_rect(xy, (0.5, -1.0), (-0.5, 1.0))    # corners in any order
    expected = np.flatnonzero((np.abs(xy[:, 0]) <= 0.5) & (np.abs(xy[:, 1]) <= 1.0))
    assert np.array_equal(inside, expected)

    star = np.array([[0, 2], [0.5, 0.5], [2, 0], [0.5, -0.5], [0, -2], [-0.5, -0.5], [-2, 0], [-0.5, 0.5]])
    path = QPainterPath(QPointF(*star[0]))
    for vx, vy in star[1:]:
        path.lineTo(vx, vy)
    path.closeSubpath()
    reference = np.flatnonzero([path.contains(QPointF(x, y)) for x, y in xy])
    assert np.array_equal(points_in_polygon(xy, star), reference)
    assert len(reference) > 50
    assert len(points_in_polygon(xy, star[:2])) == 0    # two vertices enclose nothing


def test_nearest_point_measures_in_screen_pixels():
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 0.1]])
    # x: 1 unit per pixel, y: 0.01 units per pixel -> (0, 0.1) is 10 px away, (10, 0) is 10 px away too
    assert nearest_point(xy, (0.0, 0.02), (1.0, 0.01)) == 0
    assert nearest_point(xy, (0.0, 0.09), (1.0, 0.01)) == 2
    assert nearest_point(xy, (5.0, 0.05), (1.0, 0.01), radius_px=3) == -1
    assert nearest_point(np.zeros((0, 2)), (0, 0), (1, 1)) == -1


def test_colourings_use_few_shared_colours(qapp):
    labels = np.array([0, 2, 2, 1, 0])
    c = by_class(labels, ["zero", "one", "two"])
    assert len(c.colors) == 3 and np.array_equal(c.groups, labels)
    assert [text for _, text in c.legend] == ["zero", "one", "two"]
    values = np.linspace(0.0, 1.0, 1000)
    v = by_value(values, "error", robust=True)
    assert len(v.colors) == CONTINUOUS_BINS and v.groups.min() == 0 and v.groups.max() == CONTINUOUS_BINS - 1
    assert len(v.legend) == LEGEND_TICKS and v.legend[0][1].startswith("error ≤")
    constant = by_value(np.ones(10), "size")
    assert len(set(constant.groups)) == 1


def test_projection_csv_columns_and_empty_cells():
    codes = np.arange(12, dtype=np.float32).reshape(4, 3)
    text = projection_csv(np.array([5, 6, 7, 8]), codes, {"pca": np.ones((4, 2))})
    lines = text.splitlines()
    assert lines[0] == "index,pca_x,pca_y,umap_x,umap_y,tsne_x,tsne_y,z0,z1,z2"
    assert lines[1] == "5,1,1,,,,,0,1,2"
    assert len(lines) == 5


def test_fast_scatter_draws_70k_points_as_one_item_per_class(qtbot):
    scatter = FastScatter()
    qtbot.addWidget(scatter)
    scatter.resize(800, 600)
    scatter.show()
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(70_000, 2))
    c = by_class(rng.integers(0, 10, 70_000))
    scatter.set_points(xy, c.groups, c.colors, c.legend)
    items = scatter.group_items
    assert len(items) == 10
    assert sum(len(item.data) for item in items) == 70_000
    assert all(item.opts["pen"] is None or item.opts["pen"].style() == Qt.NoPen for item in items)
    assert all(item.opts["useCache"] and item.opts["pxMode"] for item in items)
    scatter.grab()   # paints without error


def test_one_atlas_lookup_per_item_matches_pyqtgraphs_own(qtbot):
    import pyqtgraph as pg

    from app.gui.scatter import _UniformScatter

    rng = np.random.default_rng(1)
    xy = rng.normal(size=(500, 2))
    item = _UniformScatter(x=xy[:, 0], y=xy[:, 1], size=5, pen=None, brush=pg.mkBrush("#1f77b4"), pxMode=True,
                           useCache=True, symbol="o")
    for brush in ("#1f77b4", "#ff7f0e"):   # a new style is looked up again
        item.setBrush(pg.mkBrush(brush))
        ours = item.data["sourceRect"].copy()
        item.data["sourceRect"] = 0
        pg.ScatterPlotItem.updateSpots(item)   # pyqtgraph's per-point lookup, same item and atlas
        assert np.array_equal(ours, item.data["sourceRect"]) and (ours["w"] > 0).all()
        assert item._maxSpotPxWidth == item.fragmentAtlas.maxWidth


def painted_colour(scatter, xy) -> str:
    """The colour drawn at data position xy (the centre pixel of its marker)."""
    image = scatter.grab().toImage()
    scene = scatter.getPlotItem().getViewBox().mapViewToScene(QPointF(*xy))
    pos = scatter.mapFromScene(scene)
    ratio = image.devicePixelRatio()
    return image.pixelColor(int(pos.x() * ratio), int(pos.y() * ratio)).name()


def test_selection_keeps_colours_greys_the_rest_and_clearing_repaints_at_once(qtbot):
    from PySide6.QtCore import QObject

    scatter = FastScatter()
    scatter.setBackground("w")
    qtbot.addWidget(scatter)
    scatter.resize(400, 400)
    scatter.show()
    qtbot.waitExposed(scatter)
    # three well separated points per class, so each marker's centre shows its own colour
    xy = np.array([[i * 10.0, g * 10.0] for g in range(3) for i in range(3)])
    c = by_class(np.repeat(np.arange(3), 3))
    scatter.set_points(xy, c.groups, c.colors, c.legend)
    scatter.set_legend_visible(False)   # it would sit over the top-right point
    scatter.set_marker_style(size=9, opacity=1.0)
    colours = [color.name() for color in c.colors]
    assert painted_colour(scatter, xy[0]) == colours[0]

    scatter.set_selected([0, 4])       # one point of class 0, one of class 1
    assert scatter.selected_count() == 2
    assert painted_colour(scatter, xy[0]) == colours[0] and painted_colour(scatter, xy[4]) == colours[1]
    greyed = painted_colour(scatter, xy[8])
    assert greyed != colours[2]
    r, g, b = (int(greyed[i:i + 2], 16) for i in (1, 3, 5))
    assert min(r, g, b) > 200          # pale grey, no dark ring anywhere
    assert painted_colour(scatter, xy[0] + [1.2, 0]) != "#0f0f0f"

    class PaintCounter(QObject):
        paints = 0

        def eventFilter(self, obj, event):
            if event.type() == QEvent.Paint:
                PaintCounter.paints += 1
            return False

    counter = PaintCounter()
    scatter.viewport().installEventFilter(counter)
    scatter.set_selected([])
    qtbot.waitUntil(lambda: PaintCounter.paints > 0, timeout=2000)   # repainted without a zoom
    scatter.viewport().removeEventFilter(counter)
    assert scatter.selected_count() == 0
    assert [painted_colour(scatter, p) for p in xy[[0, 4, 8]]] == [colours[0], colours[1], colours[2]]
    assert [item.opts["brush"].color().name() for item in scatter.group_items] == colours


def test_marker_size_and_opacity_follow_the_point_count_until_set(qtbot, encoded_view):
    from app.gui.scatter import default_marker_style

    sizes = [default_marker_style(n) for n in (100, 3_000, 10_000, 70_000, 1_000_000)]
    assert [s for s, _ in sizes] == sorted((s for s, _ in sizes), reverse=True)
    assert [o for _, o in sizes] == sorted((o for _, o in sizes), reverse=True) and sizes[0][1] == 1.0
    view = encoded_view
    latent = view.panels["latent"].scatter
    assert (view.marker_size_spin.value(), view.marker_opacity_spin.value()) == default_marker_style(N)
    assert latent.group_items[0].opts["size"] == default_marker_style(N)[0]
    view.marker_size_spin.setValue(11)
    view.marker_opacity_spin.setValue(0.3)
    item = latent.group_items[0]
    assert item.opts["size"] == 11 and abs(item.opts["brush"].color().alphaF() - 0.3) < 0.01


def test_sample_preview_shows_images_and_sequences(qtbot):
    preview = SamplePreview()
    qtbot.addWidget(preview)
    image = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    preview.show_sample(image, image * 0.5, "an image")
    assert preview.shown_kind == "image"
    assert preview.input_image.image.shape == (8, 8)
    sequence = np.zeros((20, 3), np.float32)
    preview.show_sample(sequence, sequence + 1, "a sequence")
    assert preview.shown_kind == "lines"
    assert len(preview.lines.getPlotItem().listDataItems()) == 6   # 3 inputs + 3 reconstructions
    preview.clear()
    assert preview.shown_kind == "none"


# --- the view -------------------------------------------------------------------------------------
def test_without_codes_the_view_says_what_to_do(view, state, monkeypatch):
    assert view.pages.currentWidget() is view.placeholder
    assert "Train or load a model" in view.placeholder.text()
    view.recompute()                          # nothing to project: no job
    assert view.running() == []
    warnings = []
    state.messageRaised.connect(lambda level, text: warnings.append(level))
    monkeypatch.setattr(projection_view, "ask_save_path", lambda *a: pytest.fail("no dialog without codes"))
    view.csv_button.click()
    assert warnings == ["warning"]


def test_pca_and_tsne_arrive_with_timings_and_trustworthiness(qtbot, encoded_view):
    view = encoded_view
    assert view.pages.currentWidget() is view.splitter
    with qtbot.waitSignals([view.trustworthinessComputed] * 2, timeout=PROJECTION_TIMEOUT_MS, order="none"):
        compute(qtbot, view, ["pca", "tsne"])
    for method, title in (("pca", "PCA"), ("tsne", "t-SNE")):
        assert view.embeddings[method].shape == (N, 2)
        assert np.isfinite(view.embeddings[method]).all()
        text = view.panels[method].scatter.getPlotItem().titleLabel.text
        assert text.startswith(title) and " s" in text and "trustworthiness" in text
        assert 0.0 <= view.trust[method] <= 1.0
        assert view.panels[method].progress.isHidden() and view.panels[method].cancel_button.isHidden()
    # clusters this far apart stay apart in PCA: trustworthiness is high
    assert view.trust["pca"] > 0.8
    # the raw 2-D latent space needs no computing
    assert view.panels["latent"].isVisibleTo(view)
    assert np.allclose(view.embeddings["latent"], view.state.encoded.codes)


def test_new_codes_recompute_automatically(qtbot, view, state):
    view.auto_check.setChecked(True)
    view.auto_methods = ("pca",)
    with qtbot.waitSignal(view.projectionFinished, timeout=PROJECTION_TIMEOUT_MS) as blocker:
        encode(state)
    assert blocker.args == ["pca"]
    assert view.embeddings["pca"].shape == (N, 2)


def test_progress_and_cancel_while_running(qtbot, encoded_view):
    view = encoded_view
    panel = view.panels["tsne"]
    view.recompute(["tsne"])
    assert view.running() == ["tsne"]
    assert panel.progress.isVisibleTo(panel) and panel.cancel_button.isVisibleTo(panel)
    assert "t-SNE" in panel.progress.format() and "t-SNE" in panel.message.text()
    qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    assert view.running() == [] and panel.status == "cancelled"
    assert "Cancelled" in panel.message.text() and panel.progress.isHidden()
    # Recompute reruns what was cancelled, and only that
    with qtbot.waitSignal(view.projectionFinished, timeout=PROJECTION_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(view.recompute_button, Qt.LeftButton)
        assert view.running() == ["tsne"]
    assert blocker.args == ["tsne"]
    # each panel's menu recomputes just that panel
    view.panels["pca"].recompute_action.trigger()
    assert view.running() == ["pca"]
    assert not view.panels["latent"].recompute_action.isVisible()


def test_changed_parameters_rerun_only_their_method(qtbot, encoded_view):
    view = encoded_view
    compute(qtbot, view, ["pca", "tsne"])
    first = view.embeddings["tsne"]
    view.perplexity_spin.setValue(10)
    with qtbot.waitSignal(view.projectionFinished, timeout=PROJECTION_TIMEOUT_MS) as blocker:
        view.recompute_button.click()
        assert view.running() == ["tsne"]
    assert blocker.args == ["tsne"]
    assert view.embeddings["tsne"] is not first
    assert view.params("tsne")["perplexity"] == 10.0


def test_stale_result_is_dropped(qtbot, encoded_view, state):
    view = encoded_view
    with qtbot.waitSignal(view.projectionDropped, timeout=PROJECTION_TIMEOUT_MS) as blocker, \
            qtbot.assertNotEmitted(view.projectionFinished):
        view.recompute(["pca"])
        state.next_generation()          # the model changed while PCA was computing
    assert blocker.args == ["pca"]
    assert "pca" not in view.embeddings
    assert view.running() == [] and "dropped" in view.panels["pca"].message.text()

    # A new model arriving cancels what was running for the old one at once
    view.recompute(["tsne"])
    assert view.running() == ["tsne"]
    model = build_model(ModelConfig(kind="ae", latent_dim=2, hidden=(16,)), (D,), "tabular", "mse")
    state.set_snapshot(ModelSnapshot.of(model, generation=state.generation + 1, modality="tabular"))
    assert view.running() == [] and "dropped" in view.panels["tsne"].message.text()


def test_failing_umap_shows_its_error_and_pca_still_works(qtbot, encoded_view):
    view = encoded_view
    view.neighbors_spin.setValue(N + 100)          # more neighbours than points
    with qtbot.waitSignal(view.projectionFailed, timeout=PROJECTION_TIMEOUT_MS) as failed, \
            qtbot.waitSignal(view.projectionFinished, timeout=PROJECTION_TIMEOUT_MS) as finished:
        view.recompute(["umap", "pca"])
    method, message = failed.args
    assert method == "umap" and "n_neighbors" in message
    panel = view.panels["umap"]
    assert panel.status == "error" and panel.message.isVisibleTo(panel) and message in panel.message.text()
    assert "failed" in panel.scatter.getPlotItem().titleLabel.text
    assert finished.args == ["pca"] and view.embeddings["pca"].shape == (N, 2)
    assert view.panels["pca"].status == "done" and view.panels["pca"].message.isHidden()


def test_umap_projection(qtbot, encoded_view):
    """The one real UMAP fit (pays numba's compilation in a fresh process)."""
    view = encoded_view
    compute(qtbot, view, ["umap"], timeout=UMAP_TIMEOUT_MS)
    assert view.embeddings["umap"].shape == (N, 2)
    assert view.panels["umap"].scatter.getPlotItem().titleLabel.text.startswith("UMAP ·")


def test_hover_highlights_everywhere_and_previews_the_sample(qtbot, encoded_view, state):
    view = encoded_view
    compute(qtbot, view, ["pca"])
    x, y = view.embeddings["pca"][7]
    with qtbot.waitSignal(state.hoverChanged) as blocker:
        view.panels["pca"].scatter.hover_at(x, y)
    assert blocker.args == [7] and state.hover == 7
    assert view.panels["pca"].scatter.highlighted() == 1
    assert view.panels["latent"].scatter.highlighted() == 1
    assert view.preview.shown_kind == "lines"
    assert "sample 7" in view.preview.title.text() and "label a" in view.preview.title.text()
    recon = view.preview.lines.getPlotItem().listDataItems()[1].getData()[1]
    assert np.allclose(recon, state.snapshot.reconstruct(state.data.x[7:8])[0], atol=1e-5)

    # A real mouse move over another point of the latent panel
    latent = view.panels["latent"].scatter
    target = isolated_point(latent, view.embeddings["latent"])
    qtbot.mouseMove(latent.viewport(), widget_pos(latent, *view.embeddings["latent"][target]))
    qtbot.waitUntil(lambda: state.hover == target, timeout=2000)
    assert view.panels["pca"].scatter._highlight.data["x"][0] == pytest.approx(view.embeddings["pca"][target, 0])
    # hovering empty space clears the highlight but keeps the preview
    view.panels["pca"].scatter.hover_at(1e6, 1e6)
    assert state.hover == -1 and view.panels["pca"].scatter.highlighted() == 0
    assert f"sample {target}" in view.preview.title.text()


def test_rectangle_selection_by_call_and_by_mouse_drag(qtbot, encoded_view, state):
    view = encoded_view
    compute(qtbot, view, ["pca"])
    emb = view.embeddings["pca"]
    x0, x1 = np.percentile(emb[:, 0], [20, 70])
    y0, y1 = np.percentile(emb[:, 1], [10, 90])
    expected = np.flatnonzero((emb[:, 0] >= x0) & (emb[:, 0] <= x1) & (emb[:, 1] >= y0) & (emb[:, 1] <= y1))
    assert 0 < len(expected) < N
    with qtbot.waitSignal(state.selectionChanged):
        view.panels["pca"].scatter.select_rect((x1, y1), (x0, y0))
    assert np.array_equal(state.selection, expected)
    assert all(p.scatter.selected_count() == len(expected) for m, p in view.panels.items() if m in view.embeddings)
    assert view.selection_label.text() == f"{len(expected)} selected"
    assert "sample" in view.preview.title.text()        # the first selected sample is previewed

    # The same with the mouse: Rectangle mode, drag across the latent panel
    view.mode_buttons["rect"].click()
    assert all(panel.scatter.mode == "rect" for panel in view.panels.values())
    latent = view.panels["latent"].scatter
    codes = view.embeddings["latent"]
    lo, hi = np.percentile(codes, 25, axis=0), np.percentile(codes, 75, axis=0)
    with qtbot.waitSignal(latent.pointsSelected) as blocker:
        drag_through(qtbot, latent, np.linspace((lo[0], hi[1]), (hi[0], lo[1]), 8))
    # The drag's corners are whole pixels: the selection lies between the rectangle shrunk and
    # grown by two pixels.
    assert np.array_equal(state.selection, blocker.args[0])
    margin = 2 * np.asarray(latent.getPlotItem().getViewBox().viewPixelSize())
    assert set(points_in_rect(codes, lo + margin, hi - margin)) <= set(state.selection)
    assert set(state.selection) <= set(points_in_rect(codes, lo - margin, hi + margin))
    assert len(state.selection) > 10 and not blocker.args[1]

    # In pan mode Shift-drag selects a rectangle too; with Ctrl it adds to the selection
    view.set_selection_mode("pan")
    assert view.mode_buttons["pan"].isChecked()
    before = state.selection.copy()
    # a box around the middle point (so the press lands inside the plot) holds at least that point
    anchor = codes[int(np.argmin(((codes - np.median(codes, axis=0)) ** 2).sum(1)))]
    corner_a, corner_b = anchor - 0.3 * codes.std(0), anchor + 0.3 * codes.std(0)
    with qtbot.waitSignal(latent.pointsSelected) as blocker:
        drag_through(qtbot, latent, np.linspace(corner_a, corner_b, 6), Qt.ShiftModifier | Qt.ControlModifier)
    assert blocker.args[1] is True and len(blocker.args[0])
    assert np.array_equal(state.selection, np.union1d(before, blocker.args[0]))


def test_lasso_selects_points_inside_and_ctrl_adds(qtbot, encoded_view, state):
    view = encoded_view
    view.mode_buttons["lasso"].click()
    assert all(panel.scatter.mode == "lasso" for panel in view.panels.values())
    latent = view.panels["latent"].scatter
    codes = view.embeddings["latent"]
    centre = codes.mean(0)
    span = codes.std(0)
    triangle = centre + np.array([[-1.5, -1.0], [1.5, -1.0], [0.0, 1.5]]) * span
    inside = points_in_polygon(codes, triangle)
    assert 0 < len(inside) < N
    latent.select_polygon(triangle)
    assert np.array_equal(state.selection, inside)
    latent.select_polygon(triangle + 5 * span, additive=False)
    outside_only = state.selection.copy()
    latent.select_polygon(triangle, additive=True)
    assert np.array_equal(state.selection, np.union1d(outside_only, inside))

    # drawn with the mouse: the lasso outline follows the pointer and selects on release
    with qtbot.waitSignal(latent.pointsSelected) as blocker:
        drag_through(qtbot, latent, path_through(triangle))
    drawn = set(blocker.args[0])
    # pixel rounding moves the outline slightly: compare with the triangle shrunk and grown by 10 %
    middle = triangle.mean(0)
    assert set(points_in_polygon(codes, middle + 0.9 * (triangle - middle))) <= drawn
    assert drawn <= set(points_in_polygon(codes, middle + 1.1 * (triangle - middle)))


def test_selection_made_elsewhere_is_drawn_and_cleared(qtbot, encoded_view, state):
    view = encoded_view
    state.set_selection([3, 1, 2])
    latent = view.panels["latent"].scatter
    assert latent.selected_count() == 3
    assert view.selection_label.text() == "3 selected"
    # a click on a point selects just that point
    codes = view.embeddings["latent"]
    target = isolated_point(latent, codes)
    port = latent.viewport()
    qtbot.mouseClick(port, Qt.LeftButton, pos=widget_pos(latent, *codes[target]))
    assert list(state.selection) == [target]
    qtbot.mouseClick(view.clear_button, Qt.LeftButton)
    assert len(state.selection) == 0 and latent.selected_count() == 0 and view.selection_label.text() == ""


def test_colour_modes_change_the_brushes(qtbot, encoded_view, state):
    view = encoded_view
    assert view.color_modes() == ["label", "factor:size", "error", "none"]
    assert view.color_mode == "label"
    latent = view.panels["latent"].scatter

    def colours():
        return [item.opts["brush"].color().name() for item in latent.group_items]

    assert len(latent.group_items) == 3 and len(set(colours())) == 3
    assert [latent.legend.items[i][1].text for i in range(3)] == ["a", "b", "c"]
    assert sum(len(item.data) for item in latent.group_items) == N

    box = latent.getPlotItem().getViewBox()
    box.setRange(xRange=(0.0, 0.5), yRange=(0.0, 0.5), padding=0)
    zoomed = box.viewRange()
    view.set_color_mode("error")
    assert box.viewRange() == zoomed            # recolouring keeps the user's zoom
    assert view.color_combo.currentText() == "Reconstruction error"
    assert len(latent.group_items) == CONTINUOUS_BINS and len(latent.legend.items) == LEGEND_TICKS
    errors = state.encoded.errors
    worst = int(np.argmax(errors))
    worst_group = next(i for i, item in enumerate(latent.group_items)
                       if np.any(np.isclose(item.data["x"], view.embeddings["latent"][worst, 0])))
    assert worst_group == CONTINUOUS_BINS - 1
    assert "error" in view.color_summary.text()

    view.color_combo.setCurrentIndex(view.color_modes().index("factor:size"))
    assert view.color_mode == "factor:size" and len(latent.group_items) == CONTINUOUS_BINS
    view.set_color_mode("none")
    assert len(latent.group_items) == 1 and latent.legend is None
    view.legend_check.setChecked(False)
    view.set_color_mode("label")
    assert not latent.legend.isVisible()
    with pytest.raises(ValueError):
        view.set_color_mode("nonsense")


def test_exports_write_valid_png_svg_and_csv(qtbot, encoded_view, state, tmp_path, monkeypatch):
    view = encoded_view
    compute(qtbot, view, ["pca"])
    panel = view.panels["pca"]
    png, svg, csv = tmp_path / "pca.png", tmp_path / "pca.svg", tmp_path / "codes.csv"
    answers = iter([str(png), str(svg)])
    monkeypatch.setattr(projection_panel, "ask_save_path", lambda *a: next(answers))
    panel.export_png_action.trigger()
    panel.export_svg_action.trigger()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")

    monkeypatch.setattr(projection_view, "ask_save_path", lambda *a: str(csv))
    infos = []
    state.messageRaised.connect(lambda level, text: infos.append(level))
    view.csv_button.click()
    assert infos == ["info"]
    lines = csv.read_text().splitlines()
    assert lines[0] == ("index,label,factor_size,pca_x,pca_y,umap_x,umap_y,tsne_x,tsne_y,z0,z1")
    assert len(lines) == N + 1
    first = lines[1].split(",")
    assert first[0] == "0" and first[1] == "0"
    assert float(first[3]) == pytest.approx(view.embeddings["pca"][0, 0], rel=1e-5)
    assert first[5] == "" and float(first[9]) == pytest.approx(state.encoded.codes[0, 0], rel=1e-5)

    # a failed write reaches the user as a message, not a traceback
    errors = []
    state.messageRaised.connect(lambda level, text: errors.append(level))
    monkeypatch.setattr(projection_panel, "ask_save_path", lambda *a: str(tmp_path / "missing" / "x.png"))
    panel.export_png_action.trigger()
    assert "error" in errors


def test_one_and_three_dimensional_latents(qtbot):
    one = make_state(latent_dim=1)
    view = ProjectionView(one, warm_up=False)
    view.auto_check.setChecked(False)
    qtbot.addWidget(view)
    encode(one)
    view.recompute()
    assert view.running() == []   # nothing to project in 1-D
    assert all(view.panels[m].status == "note" for m in ("pca", "umap", "tsne"))
    assert view.panels["latent"].isVisibleTo(view)
    assert np.array_equal(view.embeddings["latent"][:, 0], np.arange(N))
    view.shutdown()

    three = make_state(latent_dim=3)
    view3 = ProjectionView(three, warm_up=False)
    view3.auto_check.setChecked(False)
    qtbot.addWidget(view3)
    view3.show()
    encode(three)
    assert not view3.panels["latent"].isVisibleTo(view3) and "latent" not in view3.embeddings
    view3.shutdown()


def test_new_data_clears_the_view(qtbot, encoded_view, state):
    view = encoded_view
    compute(qtbot, view, ["pca"])
    assert view.color_summary.text() != ""
    state.set_data(blobs())
    assert view.embeddings == {} and view.pages.currentWidget() is view.placeholder
    assert view.panels["pca"].scatter.points.shape == (0, 2)
    assert view.color_summary.text() == ""      # no colour key of the old data


def test_shutdown_ends_the_projection_process(qtbot, encoded_view):
    view = encoded_view
    compute(qtbot, view, ["pca"])
    pid = view.runner.service.pid
    assert psutil.pid_exists(pid) and any(p.pid == pid for p in worker_processes())
    view.recompute(["tsne"])            # something running while the window closes
    view.shutdown()
    assert view.runner.service is None and view.running() == [] and not view.runner.alive
    assert worker_processes() == []
    view.recompute(["pca"])             # after shutdown nothing starts again
    assert view.running() == [] and worker_processes() == []


def test_destroying_the_view_ends_the_projection_process(qtbot, state):
    view = ProjectionView(state, warm_up=False)
    view.auto_check.setChecked(False)
    encode(state)
    compute(qtbot, view, ["pca"])
    assert len(worker_processes()) == 1
    gone = []
    view.destroyed.connect(lambda *_: gone.append(True))
    view.deleteLater()
    qtbot.waitUntil(lambda: bool(gone))
    assert worker_processes() == []


def test_new_data_prepares_each_maps_items_and_hidden_legend_before_its_first_map(qtbot, encoded_view, state):
    """The marker items and legend of a map are built when the data loads, one panel per turn of the
    event loop, so a finished map only fills them (creating them stalled its arrival ~40 ms)."""
    view = encoded_view
    state.set_data(blobs())
    scatter = view.panels["pca"].scatter
    qtbot.waitUntil(lambda: all(len(p.scatter.group_items) == 3 for m, p in view.panels.items() if m != "latent"))
    assert scatter.points.shape == (0, 2)
    assert scatter.legend is not None and not scatter.legend.isVisible()      # nothing drawn yet, no legend
    prepared = list(scatter.group_items)
    encode(state)
    view.legend_check.setChecked(True)
    compute(qtbot, view, ["pca"])
    assert scatter.group_items == prepared                                      # reused, not created again
    assert sum(len(item.data) for item in scatter.group_items) == N
    assert scatter.legend.isVisible()
