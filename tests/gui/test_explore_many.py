"""Exploring many samples (issue 14): how many the window explores is a persisted setting (a seeded,
nested subset), the encoding reports its progress and stops when cancelled, and a map fitted on a
sample of the codes says so."""

import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import QSettings, QThreadPool

from app.core.config import ModelConfig
from app.core.data.dataset import Dataset
from app.core.models import build_model
from app.core.session import ExploredRows
from app.core.snapshot import ModelSnapshot
from app.gui.app_controller import AppController, progress_text
from app.gui.data_panel import DataPanel
from app.gui.state import EXPLORE_ALL, MAX_EXPLORED_SAMPLES, ExplorerState, explored_indices
from app.gui.window_settings import EXPLORE_LIMIT_KEY

TIMEOUT = 60_000   # ms; the test machine is shared and slow


def table(n: int, d: int = 8, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset(name="table", spec="table.npy", x=rng.normal(size=(n, d)).astype(np.float32), modality="tabular",
                   y=rng.integers(0, 3, n))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(kind="ae", latent_dim=2, hidden=(8,)), (8,), "tabular", "mse")


@pytest.fixture
def app(qtbot):
    state = ExplorerState()
    controller = AppController(state)
    yield controller
    controller.close()


# --- the subset -------------------------------------------------------------------------------
def test_explored_indices_are_seeded_sorted_and_nested():
    small, large = explored_indices(50_000, 1_000, seed=3), explored_indices(50_000, 10_000, seed=3)
    assert len(small) == 1_000 and len(large) == 10_000
    assert np.array_equal(small, explored_indices(50_000, 1_000, seed=3))          # same seed, same subset
    assert not np.array_equal(small, explored_indices(50_000, 1_000, seed=4))
    assert np.all(np.diff(large) > 0)                                               # sorted, no repeats
    assert np.isin(small, large).all()                                              # a larger limit keeps them
    assert np.array_equal(explored_indices(500, EXPLORE_ALL, seed=3), np.arange(500))
    assert np.array_equal(explored_indices(500, 10_000, seed=3), np.arange(500))
    with pytest.raises(ValueError, match="at least 1"):
        explored_indices(500, -5, seed=0)


def test_the_setting_redraws_view_idx_and_clears_what_pointed_into_it(qtbot):
    state = ExplorerState()
    data = table(30_000)
    state.set_data(data, seed=7)
    assert len(state.view_idx) == MAX_EXPLORED_SAMPLES
    default, preview = state.view_idx.copy(), state.preview_idx.copy()
    state.set_selection([1, 2, 3])
    with qtbot.waitSignals([state.dataChanged, state.selectionChanged], timeout=1_000):
        assert state.set_explore_limit(EXPLORE_ALL)
    assert np.array_equal(state.view_idx, np.arange(30_000))
    assert len(state.selection) == 0 and state.encoded is None
    assert np.array_equal(state.preview_idx, preview)           # the reconstruction preview stays put
    state.set_explore_limit(2_000)
    assert np.isin(state.view_idx, default).all()               # nested in the default subset
    assert not state.set_explore_limit(2_000)                   # no change, no signal
    state.set_explore_limit(MAX_EXPLORED_SAMPLES)
    assert np.array_equal(state.view_idx, default)              # back to the same subset
    other = ExplorerState()
    other.explore_limit = 2_000
    other.set_data(data, seed=7)                                # new data reads the setting too
    assert np.array_equal(other.view_idx, state.view_idx[np.isin(state.view_idx, other.view_idx)])


def test_the_setting_is_in_the_data_panel_and_persisted(qtbot, app):
    panel = DataPanel(app.state)
    qtbot.addWidget(panel)
    panel.bind(app)
    assert panel.explore_limit() == MAX_EXPLORED_SAMPLES        # nothing saved yet: the default
    assert "longer" in panel.explore_combo.toolTip() and "seeded" in panel.explore_combo.toolTip()
    app.state.set_data(table(25_000), seed=1)
    assert "10,000 of 25,000" in panel.explore_label.text()
    panel.choose_explore_limit(EXPLORE_ALL)
    assert len(app.state.view_idx) == 25_000 and "all 25,000" in panel.explore_label.text()
    assert int(QSettings().value(EXPLORE_LIMIT_KEY)) == EXPLORE_ALL

    state = ExplorerState()                                      # the next session
    again = AppController(state)
    second = DataPanel(state)
    qtbot.addWidget(second)
    second.bind(again)
    assert second.explore_limit() == EXPLORE_ALL and state.explore_limit == EXPLORE_ALL
    again.close()


def test_an_unreadable_saved_setting_is_the_default(qtbot, app):
    QSettings().setValue(EXPLORE_LIMIT_KEY, "lots")
    panel = DataPanel(app.state)
    qtbot.addWidget(panel)
    panel.bind(app)
    assert app.state.explore_limit == MAX_EXPLORED_SAMPLES


# --- encoding ---------------------------------------------------------------------------------
def test_explored_rows_read_blocks_without_copying_everything():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    rows = ExploredRows(x, np.array([1, 5, 7, 19]))
    assert len(rows) == 4
    np.testing.assert_array_equal(rows[1:3], x[[5, 7]])
    assert np.shares_memory(ExploredRows(x)[0:2], x)             # every row: slices of x itself, no copy
    with pytest.raises(TypeError, match="blocks"):
        rows[0]


def test_progress_text_has_an_eta():
    assert progress_text("Encoding 1,000 samples", 250, 1000, 10.0) == "Encoding 1,000 samples: 25 %, about 30 s left"
    assert "min left" in progress_text("Encoding", 10, 1000, 10.0)
    assert progress_text("Encoding", 1000, 1000, 3.0) == "Encoding: 100 %"


def test_encoding_reports_progress_and_matches_a_direct_encoding(qtbot, app, model):
    data = table(6_000)
    app.state.explore_limit = EXPLORE_ALL
    app.state.set_data(data, seed=0)
    snapshot = ModelSnapshot.of(model, app.state.next_generation(), epoch=1, modality="tabular")
    app.state.set_snapshot(snapshot)
    reports = []
    app.encodingProgressed.connect(lambda done, total, text: reports.append((done, total, text)))
    with qtbot.waitSignal(app.encodingFinished, timeout=TIMEOUT):
        app.encode_explored()
    assert reports[0][:2] == (0, 6_000) and reports[-1] == (0, 0, "")     # started, ..., ended
    assert any(r[0] == 6_000 and "100 %" in r[2] for r in reports)
    np.testing.assert_allclose(app.state.encoded.codes, snapshot.encode_all(data.x).codes, rtol=1e-5, atol=1e-6)


def test_cancel_stops_the_encoding(qtbot, app, model):
    panel = DataPanel(app.state)
    qtbot.addWidget(panel)
    panel.bind(app)
    app.state.set_data(table(200_000), seed=0)
    panel.choose_explore_limit(EXPLORE_ALL)
    snapshot = ModelSnapshot.of(model, app.state.next_generation(), epoch=1, modality="tabular")
    blocks = []
    encode_block = snapshot.model._encode

    def slow(x):   # 196 blocks of 1,024 rows at >= 5 ms each: about a second unless it stops
        blocks.append(len(x))
        time.sleep(0.005)
        return encode_block(x)

    snapshot.model._encode = slow
    app.state.set_snapshot(snapshot)
    with qtbot.waitSignal(app.encodingProgressed, timeout=TIMEOUT, check_params_cb=lambda d, t, _s: 0 < d < t):
        app.encode_explored()
    assert panel.encoding_bar.isVisibleTo(panel) and "left" in panel.encoding_label.text()
    panel.cancel_encoding_button.click()
    assert QThreadPool.globalInstance().waitForDone(TIMEOUT)
    assert len(blocks) < 150                     # it stopped at a block boundary, long before the end
    assert app.state.encoded is None and not app.encoding
    assert not panel.encoding_bar.isVisibleTo(panel) and panel.encode_button.isVisibleTo(panel)
    with qtbot.waitSignal(app.encodingFinished, timeout=TIMEOUT):
        snapshot.model._encode = encode_block
        panel.encode_button.click()              # encoding again from the panel
    assert len(app.state.encoded.codes) == 200_000 and not panel.encode_button.isVisibleTo(panel)


def test_changing_the_setting_re_encodes(qtbot, app, model):
    data = table(20_000)
    app.state.set_data(data, seed=0)
    app.state.set_snapshot(ModelSnapshot.of(model, app.state.next_generation(), epoch=1, modality="tabular"))
    with qtbot.waitSignal(app.encodingFinished, timeout=TIMEOUT):
        app.set_explore_limit(EXPLORE_ALL)
    assert len(app.state.encoded.codes) == 20_000


# --- a map fitted on a sample says so -----------------------------------------------------------
def test_a_map_fitted_on_a_sample_shows_its_caption(qtbot, model):
    from app.core.projections import FitInfo
    from app.gui.projection_runner import ProjectionJob, fit_info
    from app.gui.projection_view import ProjectionView, fit_caption

    sampled = FitInfo("umap", 5, 3).as_dict()                  # what the projection service sends
    done = ("done", 1, np.zeros((5, 2)), 0.1, 0.9)
    assert fit_info(done + (sampled,)) == (3, sampled["caption"]) and "3 of 5" in sampled["caption"]
    assert fit_info(done + (FitInfo("umap", 5, 5).as_dict(),)) == (None, "")   # fitted on all
    assert fit_info(done) == (None, "")                                         # an event without fit info
    state = ExplorerState()
    state.set_data(table(400), seed=0)
    snapshot = ModelSnapshot.of(model, state.next_generation(), epoch=1, modality="tabular")
    state.set_snapshot(snapshot)
    state.set_encoded(snapshot.encode_all(state.data.x[state.view_idx]), state.generation)
    view = ProjectionView(state, warm_up=False)
    view.auto_check.setChecked(False)
    qtbot.addWidget(view)
    codes = state.encoded.codes
    embedding = np.random.default_rng(0).normal(size=(len(codes), 2))
    view._on_finished(ProjectionJob(1, "umap", state.generation, codes, fitted_on=100), embedding, 0.5, 0.95)
    message = view.panels["umap"].message
    assert message.isVisibleTo(view) and message.text() == fit_caption("umap", 100, 400)
    assert "UMAP fitted on 100 of 400 codes" in message.text() and "transform" in message.text()
    caption = FitInfo("umap", 400, 50).caption()                # the service's own line is shown as sent
    view._on_finished(ProjectionJob(3, "umap", state.generation, codes, fitted_on=50, fit_caption=caption),
                      embedding, 0.5, 0.95)
    assert message.text() == caption
    view._on_finished(ProjectionJob(2, "tsne", state.generation, codes), embedding, 0.5, 0.95)
    assert view.panels["tsne"].message.isHidden()                                # fitted on all: no caption
    assert fit_caption("tsne", 400, 400) == ""
    view.shutdown()
