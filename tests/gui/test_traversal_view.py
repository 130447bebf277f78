"""The latent traversal view: sliders ordered by KL, live decoding, starting points, grids, export."""

import time

import numpy as np
import pytest
import torch
from PIL import Image

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.data import load_dataset
from app.core.data.dataset import Dataset
from app.core.imaging import display_image
from app.core.models import StepSettings, build_model
from app.core.snapshot import ModelSnapshot
from app.gui.state import ExplorerState
from app.gui.traversal_view import MAX_GRID_DIMS, TraversalView


def trained_snapshot(kind, x, latent_dim, modality, loss, generation, steps=30):
    """A small model trained a few dozen steps, so its decoder responds to the code."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, latent_dim=latent_dim, hidden=(64,)), x.shape[1:], modality, loss)
    optimizers = model.make_optimizers(TrainConfig(lr=1e-2))
    batch = torch.from_numpy(x[:256])
    model.train()
    for _ in range(steps):
        model.training_step(batch, optimizers, StepSettings())
    return ModelSnapshot.of(model, generation, epoch=1, modality=modality)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(spec="digits"))


@pytest.fixture(scope="module")
def vae(digits):
    return trained_snapshot("vae", digits.x, 4, "image", "bce", generation=1)


@pytest.fixture(scope="module")
def plain_ae(digits):
    return trained_snapshot("ae", digits.x, 4, "image", "bce", generation=2)


def make_state(data, snapshot):
    state = ExplorerState()
    state.set_data(data)
    state.set_snapshot(snapshot)
    state.set_encoded(snapshot.encode_all(data.x[state.view_idx]), state.generation)
    return state


@pytest.fixture
def view(qtbot, digits, vae):
    state = make_state(digits, vae)
    widget = TraversalView(state)
    qtbot.addWidget(widget)
    widget.resize(1000, 600)
    return widget


def slider_order(view):
    """Dimensions in the order their rows appear from top to bottom."""
    rows = {view.slider_grid.getItemPosition(view.slider_grid.indexOf(r.slider))[0]: r.dim for r in view.rows}
    return [rows[i] for i in sorted(rows)]


def test_one_slider_per_dimension_ordered_by_kl(view, vae):
    stats = vae.dimension_stats(view.state.encoded)
    assert len(view.rows) == vae.latent_dim
    order = slider_order(view)
    assert order == list(stats.order)
    assert np.all(np.diff(stats.kl[order]) <= 0), "most informative dimension first"
    top = view.rows[order[0]]
    assert top.label.text() == f"z{order[0]} · KL {stats.kl[order[0]]:.2f}"
    assert "KL" in top.slider.toolTip()


def test_inactive_dimensions_are_marked(qtbot, digits):
    # 16 dimensions for an image of 64 pixels trained briefly: some collapse to the prior.
    snapshot = trained_snapshot("vae", digits.x, 16, "image", "bce", generation=5)
    state = make_state(digits, snapshot)
    view = TraversalView(state)
    qtbot.addWidget(view)
    stats = snapshot.dimension_stats(state.encoded)
    assert (~stats.active).any(), "the test needs at least one inactive dimension"
    for row in view.rows:
        inactive = not stats.active[row.dim]
        assert (row.tag.text() == "inactive") == inactive
        assert ("Burda" in row.label.toolTip()) == inactive
        assert ("gray" in row.label.styleSheet()) == inactive
    assert view.scroll.widget().layout() is not None


def test_slider_move_redraws_decoded_image_and_emits(qtbot, view, vae):
    before = view.decoded_output.copy()
    dim = slider_order(view)[0]
    with qtbot.waitSignal(view.decoded, timeout=1000):
        view.set_dimension_value(dim, 2.5)
    assert view.z[dim] == pytest.approx(2.5)
    assert not np.allclose(view.decoded_output, before)
    np.testing.assert_allclose(view.decoded_output, vae.decode_one(view.z), atol=1e-6)
    np.testing.assert_allclose(view.live_image.image_item.image, display_image(view.decoded_output))
    assert view.rows[dim].value.text() == "+2.50"
    assert view.rows[dim].slider.value() == 550   # 2.5 on a 0..600 track over -3..3

    # Dragging the slider itself goes through the same path.
    with qtbot.waitSignal(view.decoded, timeout=1000):
        view.rows[dim].slider.setValue(100)
    assert view.z[dim] == pytest.approx(-2.0)


def test_start_from_selected_sample(qtbot, view):
    state = view.state
    assert not view.selection_button.isEnabled()
    state.set_selection([7, 30])
    assert view.selection_button.isEnabled()
    with qtbot.waitSignal(view.decoded, timeout=1000):
        view.selection_button.click()
    np.testing.assert_allclose(view.z, state.encoded.codes[7])
    view.set_dimension_value(0, 1.0)
    view.reset_button.click()
    np.testing.assert_allclose(view.z, state.encoded.codes[7])


def test_random_start_is_deterministic_per_seed(view):
    view.start_from_random(11)
    first = view.z.copy()
    assert view.seed_box.value() == 12, "the next press gives a new code"
    view.start_from_random(11)
    np.testing.assert_array_equal(view.z, first)
    view.random_button.click()                      # seed 12
    assert not np.allclose(view.z, first)
    view.zero_button.click()
    assert view.zero_button.text() == "Zero"
    np.testing.assert_array_equal(view.z, np.zeros(4))


def test_traversal_grid_shape_labels_and_debounce(qtbot, view, vae):
    view.update_traversal_grid()
    k = vae.latent_dim
    assert view.traversal.images.shape == (min(MAX_GRID_DIMS, k), 9, 1, 8, 8)
    assert view.traversal_image.grid_shape == (min(MAX_GRID_DIMS, k), 9)
    stats = vae.dimension_stats(view.state.encoded)
    assert list(view.traversal.dims) == list(stats.order)
    for label, d in zip(view.traversal_image.row_labels, stats.order):
        assert label.startswith(f"z{d} · KL {stats.kl[d]:.2f}")
        assert label.endswith("(inactive)") == (not stats.active[d])
    assert view.traversal_image.col_labels[0] == "-3" and view.traversal_image.col_labels[-1] == "+3"

    with qtbot.waitSignal(view.gridUpdated, timeout=2000) as signal:
        view.steps_box.setValue(5)
    assert signal.args == ["traversal"]
    assert view.traversal.images.shape[:2] == (k, 5)
    # Moving a slider recomputes the grid from the new base after the pause.
    with qtbot.waitSignal(view.gridUpdated, timeout=2000):
        view.set_dimension_value(int(stats.order[0]), 1.5)
    assert np.allclose(view.traversal.images[1:, 0], vae.traversal(view.z, 5, 3.0, view.state.encoded).images[1:, 0])


def test_prior_grid_enabled_for_vae_and_resamples(qtbot, view):
    assert view.tabs.isTabEnabled(1) and view.resample_button.isEnabled()
    with qtbot.waitSignal(view.gridUpdated, timeout=2000):
        view.tabs.setCurrentIndex(1)
    assert view.prior.shape == (64, 1, 8, 8)
    assert view.prior_image.grid_shape == (8, 8)
    first = view.prior.copy()
    view.resample_button.click()
    assert not np.allclose(view.prior, first)


def test_prior_grid_disabled_for_plain_ae(qtbot, digits, plain_ae):
    state = make_state(digits, plain_ae)
    view = TraversalView(state)
    qtbot.addWidget(view)
    assert not view.tabs.isTabEnabled(1)
    assert not view.resample_button.isEnabled()
    assert "no prior" in view.resample_button.toolTip()
    # Deterministic kind: sliders span the codes' own spread, and "Mean" starts at their mean.
    stats = plain_ae.dimension_stats(state.encoded)
    assert view.zero_button.text() == "Mean"
    np.testing.assert_allclose(view.z, stats.mean, rtol=1e-5)
    assert all("var" in r.label.text() for r in view.rows)


def test_interpolation_between_two_selected_samples(qtbot, view, vae):
    with qtbot.waitSignal(view.gridUpdated, timeout=2000):
        view.tabs.setCurrentIndex(2)
    assert view.interpolation is None
    assert "Select two samples" in view.interpolation_image.message.text()
    codes = view.state.encoded.codes
    with qtbot.waitSignal(view.gridUpdated, timeout=2000):
        view.state.set_selection([3, 40, 41])
    assert view.interpolation.shape == (10, 1, 8, 8)
    np.testing.assert_allclose(view.interpolation[0], vae.decode_one(codes[3]), atol=1e-5)
    np.testing.assert_allclose(view.interpolation[-1], vae.decode_one(codes[40]), atol=1e-5)
    assert view.interpolation_image.grid_shape == (1, 10)
    assert "From #" in view.interpolation_image.caption.text()
    with qtbot.waitSignal(view.gridUpdated, timeout=2000):
        view.state.set_selection([])
    assert view.interpolation is None and view.interpolation_image.caption.text() == ""


def test_grid_exports_write_pngs_at_scale(qtbot, view, tmp_path, monkeypatch):
    view.update_traversal_grid()
    path = tmp_path / "traversal.png"
    view.traversal_image.export_png(str(path), scale=3)
    h, w = view.traversal_image.mosaic.shape[:2]
    with Image.open(path) as image:
        assert image.size == (w * 3, h * 3)
    # The toolbar buttons: the dialog is replaced, the rest is the real path.
    chosen = tmp_path / "decoded.png"
    monkeypatch.setattr("app.gui.export.ask_save_path", lambda *a: str(chosen))
    view.live_image.scale_box.setValue(5)
    with qtbot.waitSignal(view.live_image.exported, timeout=2000):
        view.live_image.png_button.click()
    with Image.open(chosen) as image:
        assert image.size == (8 * 5, 8 * 5)
    svg = tmp_path / "traversal.svg"
    monkeypatch.setattr("app.gui.export.ask_save_path", lambda *a: str(svg))
    view.traversal_image.svg_button.click()
    assert b"<svg" in svg.read_bytes()


def test_new_snapshot_keeps_values_or_rebuilds(qtbot, view, digits, vae):
    view.set_dimension_value(1, 1.25)
    kept = view.z.copy()
    newer = ModelSnapshot(model=vae.model, generation=9, epoch=2, info=dict(vae.info))
    with qtbot.waitSignal(view.decoded, timeout=1000):
        view.state.set_snapshot(newer)
    np.testing.assert_array_equal(view.z, kept)
    wider = trained_snapshot("vae", digits.x, 6, "image", "bce", generation=10, steps=5)
    view.state.set_snapshot(wider)
    assert len(view.rows) == 6 and len(view.z) == 6
    view.state.set_encoded(wider.encode_all(digits.x[view.state.view_idx]), view.state.generation)
    assert slider_order(view) == list(wider.dimension_stats(view.state.encoded).order)
    view.state.set_snapshot(None)
    assert view.pages.currentWidget() is view.empty


def test_tabular_model_draws_lines(qtbot):
    rng = np.random.default_rng(0)
    table = Dataset(name="table", spec="table", x=rng.normal(size=(300, 6)).astype(np.float32), modality="tabular")
    snapshot = trained_snapshot("vae", table.x, 3, "tabular", "mse", generation=3)
    state = make_state(table, snapshot)
    view = TraversalView(state)
    qtbot.addWidget(view)
    assert view.live_stack.currentWidget() is view.live_lines
    start, current = view.live_lines.curve_items(0)
    before = current[0].yData.copy()
    view.set_dimension_value(0, 2.0)
    assert not np.allclose(current[0].yData, before)
    np.testing.assert_allclose(current[0].yData, snapshot.decode_one(view.z))
    view.update_traversal_grid()
    assert len(view.traversal_lines.plots) == 3
    assert len(view.traversal_lines.curve_items(0)) == 9      # one line per step
    with qtbot.waitSignal(view.gridUpdated, timeout=2000):
        view.tabs.setCurrentIndex(1)
    assert len(view.prior_lines.plots) == 16


def test_slider_latency(qtbot, view, capsys):
    """Printed, not asserted: decode + hand-over per slider move, and with a synchronous repaint."""
    view.show()
    qtbot.waitExposed(view)
    dim = slider_order(view)[0]
    values = np.linspace(-3, 3, 200)
    start = time.perf_counter()
    for v in values:
        view.set_dimension_value(dim, float(v))
    per_move = (time.perf_counter() - start) / len(values) * 1000
    viewport = view.live_image.graphics.viewport()
    start = time.perf_counter()
    for v in values:
        view.set_dimension_value(dim, float(v))
        viewport.repaint()
    painted = (time.perf_counter() - start) / len(values) * 1000
    with capsys.disabled():
        print(f"\nslider move: {per_move:.3f} ms decode+set, {painted:.3f} ms with a synchronous repaint "
              f"(MLP VAE, 200 moves)")


def test_sequence_traversal_has_one_plot_per_dimension_and_channel(qtbot):
    sines = load_dataset(DataConfig(spec="sines", n_samples=300))
    snapshot = trained_snapshot("vae", sines.x, 2, "sequence", "mse", generation=6, steps=10)
    view = TraversalView(make_state(sines, snapshot))
    qtbot.addWidget(view)
    view.update_traversal_grid()
    assert len(view.traversal_lines.plots) == 2 * 3            # 2 dimensions x 3 channels
    assert len(view.traversal_lines.curve_items(0)) == 9       # one line per step
    assert "channel 0" in view.traversal_lines.plots[0].titleLabel.text
