"""Exported figures: the size and DPI chosen (1600 px at 300 dpi by default), the legend only when
its setting is on and then beside the data, an SVG whose curves every renderer draws, and a line in
Messages for each export."""

from __future__ import annotations

import re

import numpy as np
import pyqtgraph as pg
import pytest
from PIL import Image
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

from app.gui.app import configure_pyqtgraph
from app.gui.export import ExportOptions, export_image, fit_scale, remember_export_options
from app.gui.figure import PlotSource, build_figure
from app.gui.loss_view import TRAIN_COLOUR, LossView
from app.gui.projection_panel import ProjectionPanel
from app.gui.state import ExplorerState
from tests.gui.test_loss_view import epoch


@pytest.fixture
def loss(qtbot):
    configure_pyqtgraph()
    state = ExplorerState()
    view = LossView(state)
    view.resize(700, 110)   # the squashed strip a small dock gives: the figure must not inherit it
    qtbot.addWidget(view)
    view.show()
    view.test_state = state
    state.set_history([epoch(i, 60.0 - 2 * i, 62.0 - 1.5 * i) for i in range(1, 21)])
    qtbot.waitUntil(lambda: view.curve_points("train_loss") == 20, timeout=2_000)
    return view


def messages_of(state):
    seen = []
    state.messageRaised.connect(lambda level, text: seen.append((level, text)))
    return seen


def test_png_has_the_default_paper_size_and_dpi_and_the_chosen_one_next(loss, tmp_path):
    seen = messages_of(loss.test_state)
    path = tmp_path / "losses.png"
    assert loss.export_to(str(path))
    with Image.open(path) as image:
        assert image.width == 1600 and round(image.info["dpi"][0]) == 300
        assert 0.45 < image.height / image.width < 0.8   # a figure's shape, not the 700x110 strip
    assert seen == [("info", f"Exported the loss plot to {path}")]
    remember_export_options(ExportOptions(width_px=900, dpi=150))
    assert loss.export_to(str(path))
    with Image.open(path) as image:
        assert image.width == 900 and round(image.info["dpi"][0]) == 150


def colour_pixels(image: QImage, colour, tolerance: int = 40) -> int:
    return int(_colour_mask(image, colour, tolerance).sum())


def test_loss_svg_draws_its_curves_without_clip_paths(loss, tmp_path):
    path = tmp_path / "losses.svg"
    assert loss.export_to(str(path))
    text = path.read_text()
    assert "clip-path" not in text   # ImageMagick draws nothing inside a clip path
    assert re.search(r'<svg[^>]*width="5\.333in"', text)   # 1600 px at 300 dpi
    renderer = QSvgRenderer(str(path))
    assert renderer.isValid()
    image = QImage(1000, 640, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    # The train curve: a line across the plot in its colour, not only the grid.
    assert colour_pixels(image, TRAIN_COLOUR) > 500
    columns = np.nonzero(_colour_mask(image, TRAIN_COLOUR).any(axis=0))[0]
    assert columns.max() - columns.min() > 300   # it spans the plot's width


def _colour_mask(image: QImage, colour, tolerance: int = 40) -> np.ndarray:
    array = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.width(), 4)
    b, g, r = (array[..., i].astype(int) for i in range(3))
    return (abs(r - colour[0]) < tolerance) & (abs(g - colour[1]) < tolerance) & (abs(b - colour[2]) < tolerance)


def test_loss_legend_follows_its_box_and_sits_beside_the_plot(loss, tmp_path):
    with_key, without = tmp_path / "with.svg", tmp_path / "without.svg"
    assert loss.export_to(str(with_key))
    loss.legend_checkbox.setChecked(False)
    assert loss.export_to(str(without))
    assert "validation" in with_key.read_text() and "validation" not in without.read_text()
    assert not loss.legend.isVisible()


def map_panel(qtbot) -> ProjectionPanel:
    configure_pyqtgraph()
    panel = ProjectionPanel("pca", "PCA")
    qtbot.addWidget(panel)
    panel.resize(250, 177)
    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal(c, 0.3, size=(100, 2)) for c in (0.0, 3.0)])
    groups = np.repeat([0, 1], 100)
    panel.scatter.set_points(xy, groups, [QColor(31, 119, 180), QColor(255, 127, 14)], [(0, "zero"), (1, "one")])
    panel.show()
    return panel


def test_map_export_honours_legend_in_plots(qtbot, tmp_path):
    panel = map_panel(qtbot)
    panel.scatter.set_legend_visible(False)   # "Legend in plots" off, the default
    off, on, png = tmp_path / "off.svg", tmp_path / "on.svg", tmp_path / "map.png"
    panel.export(str(off))
    panel.scatter.set_legend_visible(True)
    panel.export(str(on))
    assert "zero" not in off.read_text() and "zero" in on.read_text()
    panel.export(str(png))
    with Image.open(png) as image:
        assert image.width == 1600   # not the 250x177 on screen


def test_figure_legend_lies_outside_the_data(qtbot):
    panel = map_panel(qtbot)
    entries = [(sample.item, label.text) for sample, label in panel.scatter.legend.items]
    figure = build_figure([PlotSource(panel.scatter.getPlotItem(), legend=entries)], 1600, 300, legend=True)
    try:
        keys = [item for item in figure.ci.items if isinstance(item, pg.LegendItem)]
        plots = [item for item in figure.ci.items if isinstance(item, pg.PlotItem)]
        assert len(keys) == 1 and len(plots) == 1
        key_rect = keys[0].sceneBoundingRect()
        assert key_rect.width() > 20
        assert not key_rect.intersects(plots[0].getViewBox().sceneBoundingRect())
    finally:
        figure.close()


def test_map_export_is_logged(qtbot, tmp_path, monkeypatch):
    from app.gui import projection_panel
    panel = map_panel(qtbot)
    path = tmp_path / "pca.png"
    monkeypatch.setattr(projection_panel, "ask_save_path", lambda *a: str(path))
    with qtbot.waitSignal(panel.exported, timeout=5_000) as signal:
        panel.export_png_action.trigger()
    assert signal.args == [str(path)] and path.exists()


def test_pixel_grids_fit_the_chosen_width_in_whole_pixels(tmp_path):
    mosaic = np.random.default_rng(0).random((82, 82))
    assert fit_scale(82) == 20   # 1640 px: closest to 1600 in whole pixels
    path = tmp_path / "grid.png"
    export_image(mosaic, str(path), scale=0)
    with Image.open(path) as image:
        assert image.size == (1640, 1640) and round(image.info["dpi"][0]) == 300
