"""The training form shows when the loaded built-in data and the chosen kind have a recommended
setting that differs (app/core/presets.py, issue 15 item 4), and applies it on request."""

from __future__ import annotations

from app.core.config import ModelConfig, TrainConfig
from app.gui.training_panel import TrainingPanel


def test_recommendation_is_shown_and_applied_for_digits_vae(qtbot):
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.set_configs(None, ModelConfig(kind="vae"), TrainConfig())
    panel.set_data_shape((1, 8, 8), "digits")
    assert not panel.recommend_button.isHidden()
    text = panel.recommend_label.text()
    assert text.startswith("Recommended for digits + vae:") and "epochs 10 -> 40" in text and "lr 0.001 -> 0.003" in text
    panel.train_form.widgets["seed"].setValue(7)                     # a field the recommendation leaves alone
    panel.recommend_button.click()
    _, model, train = panel.configs()
    assert (model.latent_dim, model.hidden, train.epochs, train.lr, train.batch_size) == (8, (256,), 40, 3e-3, 64)
    assert train.seed == 7
    assert panel.recommend_button.isHidden() and panel.recommend_label.isHidden()


def test_no_recommendation_for_files_or_pairs_without_one(qtbot):
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.set_data_shape((784,), "/data/table.csv")
    assert panel.recommend_button.isHidden()
    panel.set_data_shape((1, 8, 8))
    assert panel.recommend_button.isHidden()
