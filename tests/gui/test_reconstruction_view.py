"""The reconstruction view: inputs above reconstructions, lines for non-image data, throttling, export."""

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QPointF, Qt

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.data import load_dataset
from app.core.data.dataset import Dataset
from app.core.imaging import to_display
from app.core.models import StepSettings, build_model
from app.core.snapshot import ModelSnapshot
from app.gui.reconstruction_view import MAX_LINE_PLOTS, ReconstructionView, pair_rows
from app.gui.state import ExplorerState


def trained_snapshot(x, latent_dim, modality, loss, generation=1, steps=30):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="vae", latent_dim=latent_dim, hidden=(64,)), x.shape[1:], modality, loss)
    optimizers = model.make_optimizers(TrainConfig(lr=1e-2))
    batch = torch.from_numpy(x[:256])
    model.train()
    for _ in range(steps):
        model.training_step(batch, optimizers, StepSettings())
    return ModelSnapshot.of(model, generation, epoch=3, modality=modality)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(spec="digits"))


@pytest.fixture(scope="module")
def vae(digits):
    return trained_snapshot(digits.x, 4, "image", "bce")


@pytest.fixture
def state(digits, vae):
    state = ExplorerState()
    state.set_data(digits)
    state.set_snapshot(vae)
    return state


@pytest.fixture
def view(qtbot, state):
    widget = ReconstructionView(state)
    qtbot.addWidget(widget)
    widget.resize(800, 500)
    return widget


def test_messages_when_nothing_to_show(qtbot, digits, vae):
    state = ExplorerState()
    view = ReconstructionView(state)
    qtbot.addWidget(view)
    assert view.grid.mosaic is None and "Open a data set" in view.grid.message.text()
    state.set_data(digits)
    assert "Train or load a model" in view.grid.message.text()
    with qtbot.waitSignal(view.redrawn, timeout=2000):
        state.set_snapshot(vae)
    assert view.grid.mosaic is not None
    view.set_mode("selected")
    assert "Select samples" in view.grid.message.text()
    other = trained_snapshot(np.zeros((4, 2, 4, 4), np.float32), 2, "image", "bce", generation=7, steps=1)
    with qtbot.waitSignal(view.redrawn, timeout=2000):
        state.set_snapshot(other)
    view.set_mode("preview")
    assert "expects samples of shape 2x4x4" in view.grid.message.text()


def test_preview_inputs_above_reconstructions(qtbot, view, state, vae):
    recon = vae.reconstruct(state.data.x[state.preview_idx])
    with qtbot.waitSignal(view.redrawn, timeout=2000):
        state.set_preview(recon)
    assert view.showing_images
    n = len(state.preview_idx)                       # 16 preview samples -> 2 blocks of 8
    assert view.grid.grid_shape == (4, 8)
    assert view.grid.row_labels == ["input", "recon", "input", "recon"]
    expected = pair_rows(state.data.x[state.preview_idx], recon, 8)
    h, w = 8, 8
    mosaic = view.grid.mosaic
    first_input = mosaic[1:1 + h, 1:1 + w]
    first_recon = mosaic[2 + h:2 + 2 * h, 1:1 + w]
    np.testing.assert_allclose(first_input, to_display(expected[0, :1])[0])
    np.testing.assert_allclose(first_recon, to_display(recon[:1])[0], atol=1e-6)
    assert "16 preview samples" in view.grid.caption.text()
    np.testing.assert_array_equal(view.shown_indices, state.preview_idx)
    assert len(view.shown_errors) == n and np.all(view.shown_errors > 0)

    # Another model on the same data (an opened run) is never paired with the old preview.
    other = trained_snapshot(state.data.x, 4, "image", "bce", generation=8, steps=3)
    qtbot.waitUntil(lambda: not view._throttle._timer.isActive(), timeout=2000)
    with qtbot.waitSignal(view.redrawn, timeout=2000):
        state.set_snapshot(other)
    expected = other.reconstruct(state.data.x[state.preview_idx[:1]])[0, 0]
    np.testing.assert_allclose(view.grid.mosaic[2 + h:2 + 2 * h, 1:1 + w], expected, atol=1e-6)


def test_training_previews_are_throttled(qtbot, view, state, vae):
    recon = vae.reconstruct(state.data.x[state.preview_idx])
    redraws = []
    view.redrawn.connect(lambda: redraws.append(1))
    with qtbot.waitSignal(view.redrawn, timeout=2000):
        for _ in range(20):
            state.set_preview(recon)
    # The burst became one immediate redraw plus at most one deferred one.
    qtbot.waitUntil(lambda: not view._throttle._timer.isActive(), timeout=2000)
    assert 1 <= len(redraws) <= 2


def test_selected_samples_are_reconstructed(qtbot, view, state, vae):
    state.set_selection([2, 5, 11])
    assert view.mode_box.itemText(1) == "selected samples (3)"
    with qtbot.waitSignal(view.redrawn, timeout=2000):
        view.mode_box.setCurrentIndex(1)
    assert view.mode == "selected"
    np.testing.assert_array_equal(view.shown_indices, state.view_idx[[2, 5, 11]])
    assert view.grid.grid_shape == (2, 3)
    with qtbot.waitSignal(view.redrawn, timeout=2000):
        state.set_selection(np.arange(100))
    assert view.grid.grid_shape == (8, 16)           # the first 64, as 4 blocks of 16
    assert "first 64 of 100" in view.grid.caption.text()
    # Hovering a cell explains it: which sample, input or reconstruction, its error.
    view.show()
    qtbot.waitExposed(view)
    centre_of_recon_0 = QPointF(1 + 4, 1 + 8 + 1 + 4)             # column 0, row 1 (pad 1, 8x8 cells)
    view.grid.graphics.scene().sigMouseMoved.emit(view.grid.plot.vb.mapViewToScene(centre_of_recon_0))
    tooltip = view.grid.graphics.toolTip()
    index = int(state.view_idx[0])
    assert tooltip.startswith(f"#{index} ({state.data.y[index]}): reconstruction") and "squared error" in tooltip


def test_export_png_at_scale(view, tmp_path):
    path = tmp_path / "recon.png"
    view.grid.export_png(str(path), scale=6)
    h, w = view.grid.mosaic.shape[:2]
    with Image.open(path) as image:
        assert image.size == (w * 6, h * 6)


@pytest.mark.parametrize("modality", ["tabular", "sequence"])
def test_non_image_rows_drawn_as_lines(qtbot, tmp_path, monkeypatch, modality):
    rng = np.random.default_rng(0)
    if modality == "tabular":
        data = Dataset(name="table", spec="table", x=rng.normal(size=(300, 6)).astype(np.float32),
                       modality="tabular", y=rng.integers(0, 2, 300), label_names=["ok", "bad"])
    else:
        data = load_dataset(DataConfig(spec="sines", n_samples=300))
    snapshot = trained_snapshot(data.x, 3, modality, "mse", generation=4)
    state = ExplorerState()
    state.set_data(data)
    state.set_snapshot(snapshot)
    view = ReconstructionView(state)
    qtbot.addWidget(view)
    view.resize(900, 500)
    assert not view.showing_images
    plots = view.lines.plots
    assert len(plots) == MAX_LINE_PLOTS                      # 16 previews, the first 8 drawn
    solid, dashed = view.lines.curve_items(0)
    channels = data.x.shape[2] if modality == "sequence" else 1
    assert len(solid) == len(dashed) == channels
    assert solid[0].opts["pen"].style() == Qt.SolidLine and dashed[0].opts["pen"].style() == Qt.DashLine
    first = data.x[state.preview_idx[0]]
    np.testing.assert_allclose(solid[0].yData, first if modality == "tabular" else first[:, 0])
    recon = snapshot.reconstruct(first[None])[0]
    np.testing.assert_allclose(dashed[0].yData, recon if modality == "tabular" else recon[:, 0], atol=1e-5)
    assert "dashed: reconstruction" in view.lines.caption.text()
    # Lines export as a figure: PNG at the width chosen (1600 px at 300 dpi by default), SVG.
    path = tmp_path / "lines.png"
    view.lines.export_png(str(path))
    with Image.open(path) as image:
        assert image.size[0] == 1600 and round(image.info["dpi"][0]) == 300
    view.lines.export_png(str(path), width=900)
    with Image.open(path) as image:
        assert image.size[0] == 900
    svg = tmp_path / "lines.svg"
    monkeypatch.setattr("app.gui.export.ask_save_path", lambda *a: str(svg))
    with qtbot.waitSignal(view.lines.exported, timeout=5000):
        view.lines.svg_button.click()
    assert b"<svg" in svg.read_bytes()
