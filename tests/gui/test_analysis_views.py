"""The analysis tabs (issue 4): each one computes through the engine in the background, shows the
engine's numbers for the same arrays, drops stale results, and exports what it shows."""

import csv
import io

import numpy as np
import pytest
import torch
from PIL import Image

from app.core.analysis.anomaly import compare_detection, threshold_scores
from app.core.analysis.disentanglement import mig
from app.core.analysis.pca_baseline import fit_pca, pca_error_curve, pca_errors
from app.core.analysis.restoration import restore
from app.core.checkpoint import save_run
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.data import load_dataset
from app.core.latent import dimension_stats
from app.core.models import StepSettings, build_model
from app.core.session import data_info
from app.core.snapshot import ModelSnapshot
from app.gui.analysis import AnalysisView, common
from app.gui.analysis.common import fmt
from app.core.analysis.api import Split, scores_csv
from app.gui.state import ExplorerState

TIMEOUT = 60_000   # ms; the test machine is shared and slow


def trained_model(x, latent_dim=4, steps=100, beta=1.0, seed=0, loss="bce", modality="image"):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(kind="vae", latent_dim=latent_dim, hidden=(64,), beta=beta), x.shape[1:],
                        modality, loss)
    optimizers = model.make_optimizers(TrainConfig(lr=1e-2))
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        batch = torch.from_numpy(x[rng.choice(len(x), 128, replace=False)])
        model.training_step(batch, optimizers, StepSettings(beta=beta))
    return model


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models train ~25x faster on one intra-op thread than on two on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(spec="digits"))


@pytest.fixture(scope="module")
def digits_model(digits):
    return trained_model(digits.x)


@pytest.fixture(scope="module")
def shapes():
    return load_dataset(DataConfig(spec="shapes", n_samples=600))


def explorer(data, model, generation=1) -> ExplorerState:
    state = ExplorerState()
    state.set_data(data)
    snapshot = ModelSnapshot.of(model, generation, epoch=1)
    state.set_snapshot(snapshot)
    state.set_encoded(snapshot.encode_all(data.x[state.view_idx]), state.generation)
    return state


@pytest.fixture
def state(digits, digits_model):
    return explorer(digits, digits_model)


@pytest.fixture
def view(qtbot, state):
    widget = AnalysisView(state)
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    return widget


def compute(qtbot, tab, button=None):
    with qtbot.waitSignal(tab.computed, timeout=TIMEOUT):
        (button or tab.compute_button).click()


def split(data):
    return data.split(0.2, 0)


# ---------------------------------------------------------------------------------------------
def test_messages_before_data_and_model(qtbot, digits, digits_model):
    state = ExplorerState()
    view = AnalysisView(state)
    qtbot.addWidget(view)
    assert [view.tabText(i) for i in range(view.count())] == ["vs PCA", "Anomalies", "Disentanglement",
                                                              "Denoise / inpaint", "Compare runs", "Few labels"]
    for tab in view.tabs[:4]:
        assert "Open a data set" in tab.placeholder.text() and not tab.compute_button.isEnabled()
    state.set_data(digits)
    for tab in view.tabs[:4]:
        assert "Train or load a model" in tab.placeholder.text() and not tab.compute_button.isEnabled()
    state.set_snapshot(ModelSnapshot.of(digits_model, 1))
    assert view.pca_tab.compute_button.isEnabled() and view.restoration_tab.compute_button.isEnabled()
    assert "encoded" in view.anomaly_tab.placeholder.text()
    state.set_encoded(state.snapshot.encode_all(digits.x), state.generation)
    assert view.anomaly_tab.stack.currentWidget() is view.anomaly_tab.body
    # A model for other data is explained, not run.
    other = build_model(ModelConfig(kind="vae", latent_dim=2, hidden=(8,)), (1, 4, 4), "image", "bce")
    state.set_snapshot(ModelSnapshot.of(other, 2))
    assert "expects samples of shape 1x4x4" in view.restoration_tab.placeholder.text()
    assert not view.pca_tab.compute_button.isEnabled()
    anomalies = view.anomaly_tab            # its histogram was for the earlier model: the reason shows instead
    assert anomalies.stack.currentWidget() is anomalies.placeholder and "1x4x4" in anomalies.placeholder.text()
    state.set_snapshot(ModelSnapshot.of(digits_model, 3))
    with qtbot.waitSignal(anomalies.computed):
        state.set_encoded(state.snapshot.encode_all(digits.x), state.generation)
    assert anomalies.stack.currentWidget() is anomalies.body


def test_split_defaults_and_window_config(state):
    assert Split.of(state.data_cfg) == Split(0.2, 0)
    state.data_cfg = DataConfig(val_fraction=0.3, split_seed=5)
    assert Split.of(state.data_cfg) == Split(0.3, 5)


def test_pca_tab_matches_engine(qtbot, view, state, digits, tmp_path, monkeypatch):
    tab = view.pca_tab
    compute(qtbot, tab)
    train_idx, val_idx = split(digits)
    pca = fit_pca(digits.x[train_idx], None, seed=0)
    curve = pca_error_curve(pca, digits.x[val_idx])
    model_error = float(state.snapshot.encode_all(digits.x[val_idx]).errors.mean())
    from sklearn.decomposition import PCA
    sk = PCA(n_components=4).fit(digits.x[train_idx].reshape(len(train_idx), -1))
    flat = digits.x[val_idx].reshape(len(val_idx), -1)
    sk_error = float(((sk.inverse_transform(sk.transform(flat)) - flat) ** 2).sum(1).mean())
    assert tab.model_error_label.text() == fmt(model_error)
    assert tab.pca_error_label.text() == fmt(curve.at(4)) and np.isclose(curve.at(4), sk_error, rtol=1e-4)
    assert "k = 4" in tab.pca_title.text()
    # The curve: every k, falling, with the model's point and line at its error.
    xs, ys = tab.curve_item.getData()
    assert len(xs) == min(len(train_idx), 64) + 1 and np.all(np.diff(ys) <= 1e-9)
    points = tab.model_point.getData()
    assert points[0].tolist() == [4.0] and np.isclose(points[1][0], model_error)
    assert np.isclose(tab.model_line.value(), model_error)
    tab.log_y.setChecked(True)
    assert np.isclose(tab.model_point.getData()[1][0], np.log10(model_error))
    assert np.isclose(tab.curve_item.getData()[1][1], np.log10(curve.errors[1]))
    # Probes on both feature sets, and the side-by-side grid of 8 held-out samples.
    assert tab.probe_table.isVisibleTo(tab)
    for row, key in ((0, "linear_probe_accuracy"), (1, "knn_accuracy")):
        assert tab.probe_table.item(row, 0).text() == f"{tab.result.probes[key]:.1%}"
        assert 0.3 < tab.result.probes["pca_" + key] <= 1.0
    assert tab.grid.grid_shape == (3, 8)
    assert np.allclose(tab.result.originals, digits.x[val_idx[:8]])
    # Exports: the curve as PNG and SVG through its buttons, the grid as PNG.
    targets = iter([str(tmp_path / "curve.png"), str(tmp_path / "curve.svg")])
    monkeypatch.setattr(common, "ask_save_path", lambda *args: next(targets))
    png_button, svg_button = _curve_buttons(tab)
    with qtbot.waitSignal(tab.exported):
        png_button.click()
    with qtbot.waitSignal(tab.exported):
        svg_button.click()
    assert Image.open(tmp_path / "curve.png").size[0] > 100
    assert "<svg" in (tmp_path / "curve.svg").read_text()
    tab.grid.export_png(str(tmp_path / "grid.png"), scale=2)
    assert Image.open(tmp_path / "grid.png").size[0] > 8 * 8 * 2


def _curve_buttons(tab):
    buttons = [b for b in tab.findChildren(common.QToolButton) if b.toolTip().startswith("Export this plot")]
    return buttons[0], buttons[1]


def test_pca_tab_drops_a_result_for_an_older_model(qtbot, view, state, digits_model):
    tab = view.pca_tab
    with qtbot.waitSignal(tab.jobEnded, timeout=TIMEOUT):
        tab.compute_button.click()
        state.set_snapshot(ModelSnapshot.of(digits_model, 9))  # a new model while PCA is being fitted
    assert tab.result is None and "dropped" in tab.status.text()
    compute(qtbot, tab)
    assert tab.result is not None and "earlier model" not in tab.status.text()
    snapshot = ModelSnapshot.of(digits_model, 10)
    state.set_snapshot(snapshot)
    assert "earlier model" in tab.status.text()
    with qtbot.waitSignal(tab.computed, timeout=TIMEOUT):   # small data: re-measured once the model is encoded
        state.set_encoded(snapshot.encode_all(state.data.x[state.view_idx]), state.generation)
    assert "earlier model" not in tab.status.text()
    state.set_data(state.data)                                # new data: nothing measured on it yet
    assert tab.result is None and tab.stack.currentWidget() is tab.placeholder


def test_anomaly_histogram_threshold_gallery_and_csv(qtbot, view, state, digits, tmp_path):
    tab = view.anomaly_tab
    scores = state.encoded.errors.astype(np.float64)
    assert tab.scores is not None and np.allclose(tab.scores, scores)      # drawn without pressing anything
    assert tab.kind_box.count() == 2                                       # reconstruction and negative ELBO
    tab.percentile_box.setValue(95.0)
    expected = threshold_scores(scores, percentile=95.0)
    assert tab.flagged_count == expected.count and abs(expected.count - 0.05 * len(scores)) <= 1
    assert f"{expected.count:,} of {len(scores):,}" in tab.count_label.text()
    assert np.isclose(tab.threshold_line.value(), expected.value)
    # Dragging the line moves the count and the spin boxes with it.
    median = float(np.median(scores))
    tab.threshold_line.setValue(median)
    assert tab.flagged_count == int((scores > median).sum())
    assert np.isclose(tab.value_box.value(), median, atol=1e-4)
    assert np.isclose(tab.percentile_box.value(), 100 * (scores <= median).mean(), atol=0.01)
    # The gallery holds the highest scores; clicking one selects it for every view.
    top = np.argsort(-scores, kind="stable")[:16]
    assert tab.top_positions.tolist() == top.tolist() and tab.gallery.grid_shape == (2, 8)
    assert tab.gallery_position_at(1 + 8 + 4, 1 + 4) == top[1]            # centre of row 0, column 1
    with qtbot.waitSignal(state.selectionChanged):
        tab.top_list.itemClicked.emit(tab.top_list.item(2))
    assert state.selection.tolist() == [top[2]]
    # Scores CSV: index,score,label,flagged for every explored sample.
    path = tmp_path / "scores.csv"
    assert tab.export_scores(str(path))
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert list(rows[0]) == ["index", "score", "label", "flagged"] and len(rows) == digits.n
    assert sum(int(r["flagged"]) for r in rows) == tab.flagged_count
    assert [int(r["label"]) for r in rows[:5]] == digits.y[:5].tolist()
    # The negative ELBO as the score.
    tab.kind_box.setCurrentIndex(1)
    assert np.allclose(tab.scores, state.encoded.neg_elbo)


def test_scores_csv_uses_data_indices_for_a_subsample():
    text = scores_csv(np.array([1.0, 2.0]), np.array([0, 1]), 1.5, index=np.array([3, 7]))
    assert text.splitlines() == ["index,score,label,flagged", "3,1,0,0", "7,2,1,1"]


def test_anomaly_evaluation_against_pca(qtbot, view, state, digits):
    tab = view.anomaly_tab
    assert tab.eval_group.isVisibleTo(tab)
    tab.classes_edit.setText("banana")
    with qtbot.waitSignal(tab.failed):
        tab.evaluate_button.click()
    assert "banana" in tab.status.text()
    tab.classes_edit.setText("9")
    compute(qtbot, tab, tab.evaluate_button)
    train_idx, _ = split(digits)
    pca_scores = pca_errors(fit_pca(digits.x[train_idx], 4, seed=0), digits.x)
    expected = compare_detection({"reconstruction": state.encoded.errors, "neg_elbo": state.encoded.neg_elbo},
                                 pca_scores, digits.y == 9)
    table = tab.detection_table
    assert table.rowCount() == 4 and "PCA" in table.verticalHeaderItem(2).text()
    assert "IsolationForest" in table.verticalHeaderItem(3).text()
    from app.core.analysis.api import detection_metrics, isolation_forest_scores
    forest = detection_metrics(isolation_forest_scores(digits.x[train_idx], digits.x, seed=0), digits.y == 9)
    assert table.item(3, 0).text() == fmt(forest["auc"], 3)
    assert "Warning: the model was trained on 9 too" in tab.detection_note.text()   # it saw every class
    assert table.item(0, 0).text() == fmt(expected["anomaly_auc"], 3)
    assert table.item(1, 1).text() == fmt(expected["anomaly_average_precision_neg_elbo"], 3)
    assert table.item(2, 0).text() == fmt(expected["pca_anomaly_auc"], 3)
    assert 0.0 < expected["anomaly_auc"] < 1.0
    assert "trained on every class" in tab.classes_hint.text()
    # A new model's encoding re-runs the evaluation shown, on the new scores.
    snapshot = ModelSnapshot.of(trained_model(digits.x, steps=10, seed=1), 5)
    state.set_snapshot(snapshot)
    with qtbot.waitSignal(tab.jobEnded, timeout=TIMEOUT):
        state.set_encoded(snapshot.encode_all(digits.x), state.generation)
        assert tab.running
    new = compare_detection({"reconstruction": state.encoded.errors}, pca_scores, digits.y == 9)
    assert table.item(0, 0).text() == fmt(new["anomaly_auc"], 3)


def test_disentanglement_with_factors(qtbot, shapes):
    model = trained_model(shapes.x, latent_dim=5, steps=40)
    state = explorer(shapes, model)
    view = AnalysisView(state)
    qtbot.addWidget(view)
    tab = view.disentanglement_tab
    stats = dimension_stats(state.encoded.codes, state.encoded.logvar)
    # KL and activity bars are drawn from the encoding without pressing anything.
    assert np.allclose(tab.kl_bars.opts["height"], stats.kl)
    assert np.allclose(tab.var_bars.opts["height"], stats.variance)
    assert tab.active_label.text() == f"Active units: {int(stats.active.sum())} of 5"
    assert tab.dimension_table.rowCount() == 5 and tab.report is None
    compute(qtbot, tab)
    expected = mig(state.encoded.codes, shapes.factors).score
    assert tab.metric_labels["mig"].text() == fmt(expected, 3)
    assert tab.metric_labels["dci"].text() not in ("–", "not run") and tab.metric_labels["sap"].text() != "–"
    assert tab.factor_table.rowCount() == len(shapes.factor_names)
    assert [tab.factor_table.item(r, 0).text() for r in range(tab.factor_table.rowCount())] == shapes.factor_names
    factor_per_dim = tab.report.to_dict()["factor_per_dim"]
    assert len(factor_per_dim) == 5
    assert all(name is None or name in shapes.factor_names for name in factor_per_dim)
    assert "Per" not in tab.tables_csv() and shapes.factor_names[0] in tab.tables_csv()
    # A new encoding invalidates the factor labels.
    state.set_encoded(state.snapshot.encode_all(shapes.x), state.generation)
    assert tab.report is None and tab.metric_labels["mig"].text() == "–"


def test_disentanglement_without_factors(view, state):
    tab = view.disentanglement_tab
    assert not tab.compute_button.isEnabled()
    assert "no ground-truth factors" in tab.metrics_note.text()
    assert tab.active_label.text().startswith("Active units:")


def test_restoration_psnr_and_grid(qtbot, view, state, digits, tmp_path):
    tab = view.restoration_tab
    tab.set_corruption("gaussian", 0.5)
    compute(qtbot, tab)
    _, val_idx = split(digits)
    expected = restore(state.snapshot.model, digits.x[val_idx[:256]], "gaussian", 0.5, seed=0).summary()
    assert tab.psnr_labels["corrupted"].text() == f"{fmt(expected['psnr_corrupted'], 3)} dB"
    assert tab.psnr_labels["restored"].text() == f"{fmt(expected['psnr_restored'], 3)} dB"
    assert expected["psnr_restored"] > expected["psnr_corrupted"]
    assert tab.grid.grid_shape == (3, 8) and tab.grid.row_labels == ["corrupted", "restored", "original"]
    tab.set_corruption("block", 0.4)
    compute(qtbot, tab)
    assert tab.grid.row_labels == ["corrupted", "restored", "inpainted", "original"]
    assert tab.psnr_labels["inpainted"].isVisibleTo(tab) and np.isfinite(tab.result.summary()["psnr_inpainted"])
    tab.grid.export_png(str(tmp_path / "restoration.png"), scale=1)
    assert Image.open(tmp_path / "restoration.png").size[1] > 4 * 8


def test_sequences_lines_in_pca_tab_and_no_restoration(qtbot):
    sines = load_dataset(DataConfig(spec="sines", n_samples=200))
    state = explorer(sines, trained_model(sines.x, latent_dim=3, steps=20, loss="mse", modality="sequence"))
    view = AnalysisView(state)
    qtbot.addWidget(view)
    assert "shown for images" in view.restoration_tab.placeholder.text()
    assert not view.restoration_tab.compute_button.isEnabled()
    tab = view.pca_tab
    compute(qtbot, tab)
    assert tab.samples.currentWidget() is tab.lines and len(tab.lines.plots) == 8
    assert len(tab.lines.curve_items(0)) == 3               # original, autoencoder, PCA
    assert tab.probe_table.isVisibleTo(tab) == (sines.y is not None)
    assert view.anomaly_tab.gallery.mosaic is None and view.anomaly_tab.top_list.count() == 16


def test_compare_runs_table(qtbot, view, digits, tmp_path):
    cfg = DataConfig(spec="digits")
    for beta, steps in ((1.0, 20), (4.0, 20)):
        model = trained_model(digits.x, latent_dim=3, steps=steps, beta=beta)
        save_run(tmp_path / "sweep" / f"beta{beta:g}", model, data_cfg=cfg, train_cfg=TrainConfig(),
                 modality="image", data_info=data_info(digits))
    (tmp_path / "broken").mkdir()
    tab = view.runs_tab
    with qtbot.waitSignal(tab.jobEnded, timeout=TIMEOUT):
        tab.add_runs([str(tmp_path / "sweep"), str(tmp_path / "broken")])   # a folder of runs, and not a run
    table = tab.table
    assert table.rowCount() == 3
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    column = {name: headers.index(name) for name in headers}
    by_run = {table.item(r, 0).text(): r for r in range(3)}
    assert set(by_run) == {"beta1", "beta4", "broken"}
    for name, beta in (("beta1", "1"), ("beta4", "4")):
        r = by_run[name]
        assert table.item(r, column["Kind"]).text() == "vae" and table.item(r, column["β"]).text() == beta
        assert table.item(r, column["Latent"]).text() == "3"
        assert float(table.item(r, column["PCA error"]).text()) > 0
        assert table.item(r, column["Linear probe"]).text().endswith("%")
        assert table.item(r, column["Error"]).text() == ""
    assert table.item(by_run["broken"], column["Error"]).text()
    table.sortItems(column["β"])
    assert [table.item(r, 0).text() for r in range(3)] == ["beta1", "beta4", "broken"]   # blanks last
    path = tmp_path / "runs.csv"
    assert tab.export_csv(str(path))
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == 3 and {"kind", "beta", "mig", "pca_reconstruction_error", "error"} <= set(rows[0])
    tab.add_runs([str(tmp_path / "sweep")])
    assert "already" in tab.status.text()
    # Cancel stops between runs.
    other_view = AnalysisView(ExplorerState())
    qtbot.addWidget(other_view)
    other = other_view.runs_tab
    with qtbot.waitSignal(other.jobEnded, timeout=TIMEOUT):
        other.add_runs([str(tmp_path / "sweep")])
        other.cancel()
    assert other.table.rowCount() < 2 and "cancelled" in other.status.text()


def test_split_of_the_tab_is_the_models(view, state):
    state.data_cfg = DataConfig(val_fraction=0.3, split_seed=5)
    subject = view.pca_tab.subject()
    assert subject.split == Split(0.3, 5) and subject.data is state.data and subject.model is state.snapshot.model


def test_cancel_stops_the_computation_not_only_its_result(qtbot, view, monkeypatch):
    """Cancel sets the running core function's should_stop: the work itself ends (cooperatively)."""
    import threading

    import app.gui.analysis.pca_compare_view as pca_view

    started, stopped = threading.Event(), threading.Event()

    def endless(subject, should_stop=None, **_):
        started.set()
        while not should_stop():
            started.wait(0.001)      # stands for one chunk of work
        stopped.set()
        from app.core.analysis.api import Cancelled
        raise Cancelled()

    monkeypatch.setattr(pca_view, "pca_comparison", endless)
    tab = view.pca_tab
    tab.compute_button.click()
    qtbot.waitUntil(started.is_set, timeout=TIMEOUT)
    assert tab.running and tab.cancel_button.isVisibleTo(tab)
    with qtbot.waitSignal(tab.jobEnded, timeout=TIMEOUT):
        tab.cancel_button.click()
    qtbot.waitUntil(stopped.is_set, timeout=TIMEOUT)
    assert tab.result is None and "Cancelled" in tab.status.text() and not tab.cancel_button.isVisibleTo(tab)


def _rows_visible(table) -> bool:
    last = table.rowCount() - 1
    return table.rowViewportPosition(last) + table.rowHeight(last) <= table.viewport().height()


def _bottom_tick_texts(plot) -> list[str]:
    from PySide6.QtGui import QImage, QPainter

    axis = plot.getAxis("bottom")
    image = QImage(max(int(axis.width()), 1), max(int(axis.height()), 1), QImage.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _, _, text in specs[2]] if specs else []


def test_tables_show_every_row_and_activity_keeps_z0(qtbot, shapes):
    """Issue 15 item 7: per-factor and per-dimension tables show all rows; the histogram keeps its
    height after Evaluate and the ROC table shows every row; the Activity plot labels z0."""
    model = trained_model(shapes.x, latent_dim=6, steps=20)
    state = explorer(shapes, model)
    view = AnalysisView(state)
    qtbot.addWidget(view)
    view.resize(1100, 420)
    view.show()
    tab = view.disentanglement_tab
    view.setCurrentWidget(tab)
    compute(qtbot, tab)
    assert tab.factor_table.rowCount() == len(shapes.factor_names) and _rows_visible(tab.factor_table)
    assert tab.dimension_table.rowCount() == 6 and _rows_visible(tab.dimension_table)
    assert "z0" in _bottom_tick_texts(tab.var_plot) and "z5" in _bottom_tick_texts(tab.var_plot)


def test_anomaly_histogram_keeps_its_height_after_evaluate(qtbot, view, state):
    view.resize(1100, 520)
    view.show()
    tab = view.anomaly_tab
    view.setCurrentWidget(tab)
    tab.classes_edit.setText("9")
    compute(qtbot, tab, tab.evaluate_button)
    qtbot.waitUntil(lambda: tab.plot_widget.height() >= 150, timeout=5_000)
    assert _rows_visible(tab.detection_table) and tab.detection_table.rowCount() == 4


def test_retrain_on_normal_classes_asks_for_the_others(qtbot, view, state):
    tab = view.anomaly_tab
    tab.classes_edit.setText("8,9")
    with qtbot.waitSignal(tab.retrainRequested) as asked:
        tab.retrain_button.click()
    assert asked.args == ["0,1,2,3,4,5,6,7"]
