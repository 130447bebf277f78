"""The Few labels tab: computes the curve in the background, draws every point with its error bar,
exports PNG/SVG/CSV."""

import numpy as np
import pytest
import torch

from app.core.config import DataConfig, ModelConfig
from app.core.data import load_dataset
from app.core.models import build_model
from app.core.snapshot import ModelSnapshot
from app.gui.analysis import AnalysisView
from app.gui.state import ExplorerState


@pytest.fixture
def state(qtbot):
    torch.manual_seed(0)
    data = load_dataset(DataConfig(spec="digits"))
    model = build_model(ModelConfig(kind="ae", latent_dim=6, hidden=(32,)), data.sample_shape, "image", "bce")
    state = ExplorerState()
    state.set_data(data)
    state.set_snapshot(ModelSnapshot.of(model, generation=state.next_generation()))
    return state


def test_few_labels_tab_draws_the_curve_and_exports(qtbot, state, tmp_path):
    view = AnalysisView(state)
    qtbot.addWidget(view)
    tab = view.few_labels_tab
    assert view.tabText(view.indexOf(tab)) == "Few labels"
    tab.sizes_edit.setText("3,10")
    tab.draws_box.setValue(2)
    with qtbot.waitSignal(tab.computed, timeout=120_000):
        tab.compute()
    result = tab.result
    assert result.used_per_class == [3, 10] and len(result.accuracies) == 4
    items = tab.plot.getPlotItem().items
    bars = [i for i in items if type(i).__name__ == "ErrorBarItem"]
    assert len(bars) == 4 and all(len(b.opts["x"]) == 2 for b in bars)
    assert np.allclose(bars[0].opts["x"], np.log10([3, 10]))
    assert "held-out validation split" in tab.status.text()
    assert "3.33%" in tab.caption.text()
    for suffix in (".png", ".svg"):
        from app.gui.export import export_plot
        export_plot(tab.plot.getPlotItem(), str(tmp_path / f"curve{suffix}"))
        assert (tmp_path / f"curve{suffix}").stat().st_size > 0
    from app.gui.export import export_text
    export_text(result.to_csv(), str(tmp_path / "curve.csv"))
    assert (tmp_path / "curve.csv").read_text().count("\n") == 1 + 4 * 2


def test_few_labels_tab_says_when_labels_are_missing(qtbot, state):
    data = state.data
    data.y = None
    state.set_data(data)
    view = AnalysisView(state)
    qtbot.addWidget(view)
    assert "has no labels" in view.few_labels_tab.placeholder.text()
    assert not view.few_labels_tab.compute_button.isEnabled()
