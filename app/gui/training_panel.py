"""The training panel: model, training and split settings (generated from the same dataclasses
the CLI uses), Train / Pause / Resume / Stop, and a progress bar with ETA and throughput.

The panel only asks; the TrainingController does. It shows the fields that matter for the chosen
model kind (beta for VAEs, noise for the denoising AE, ...) and keeps Train disabled, with the
reason beside it, while a setting is invalid or no data is loaded.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea,
                               QVBoxLayout, QWidget)

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.gui.config_form import ConfigForm

DATA_FIELDS = ("val_fraction", "split_seed")   # the rest of DataConfig comes from the data panel


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TrainingPanel(QWidget):
    trainRequested = Signal()
    pauseRequested = Signal()
    resumeRequested = Signal()
    stopRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model_form = ConfigForm(ModelConfig)
        self.train_form = ConfigForm(TrainConfig)
        self.data_form = ConfigForm(DataConfig, DATA_FIELDS)
        self._data_shape: tuple | None = None
        self._data_spec = ""   # the loaded data's spec: a built-in name has recommended settings
        self._state = "idle"   # idle | running | paused
        self._error: str | None = None
        self._epoch_seconds: list[float] = []

        self.kind_help = QLabel()
        self.kind_help.setWordWrap(True)
        self.kind_help.setStyleSheet("color: #555555; font-style: italic;")
        kind_combo = self.model_form.widgets["kind"]
        from app.core.config import MODEL_KINDS_HELP
        for i in range(kind_combo.count()):
            kind_combo.setItemData(i, MODEL_KINDS_HELP.get(kind_combo.itemData(i), ""), Qt.ItemDataRole.ToolTipRole)

        forms = QWidget()
        forms_layout = QVBoxLayout(forms)
        forms_layout.setContentsMargins(0, 0, 0, 0)
        for title, form, extra in (("Model", self.model_form, self.kind_help), ("Training", self.train_form, None),
                                   ("Validation split", self.data_form, None)):
            box = QGroupBox(title)
            box_layout = QVBoxLayout(box)
            if extra is not None:
                box_layout.addWidget(extra)
            box_layout.addWidget(form)
            forms_layout.addWidget(box)
            form.changed.connect(self._settings_changed)
        forms_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(forms)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #8a5a00;")
        # Recommended settings for the (built-in data, kind) pair (app/core/presets.py, issue 15).
        self.recommend_label = QLabel()
        self.recommend_label.setWordWrap(True)
        self.recommend_button = QPushButton("Use recommended")
        self.recommend_button.setToolTip("Set the fields listed here to the recommended values; others stay")
        self.recommend_button.clicked.connect(self.apply_recommended)
        recommend_row = QHBoxLayout()
        recommend_row.addWidget(self.recommend_label, 1)
        recommend_row.addWidget(self.recommend_button)

        buttons = self._build_buttons()

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setToolTip("Share of all training steps done")
        self.progress_label = QLabel("Not training")
        self.progress_label.setWordWrap(True)   # a long "Stopped after ..." must not widen the settings column
        self.progress_label.setToolTip("Epoch, running training loss, throughput and estimated time left")

        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.warning_label)
        layout.addLayout(recommend_row)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_label)
        self._settings_changed()

    def _build_buttons(self) -> QHBoxLayout:
        """Train / Pause / Resume / Stop, each asking through its signal."""
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("Train a new model with these settings on the loaded data (Ctrl+T)")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Pause after the current step; the model is kept (Space)")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue a paused training (Space)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop training and keep the model trained so far (Ctrl+. or Esc)")
        self.train_button.clicked.connect(self.trainRequested)
        self.pause_button.clicked.connect(self.pauseRequested)
        self.resume_button.clicked.connect(self.resumeRequested)
        self.stop_button.clicked.connect(self.stopRequested)
        buttons = QHBoxLayout()
        for button in (self.train_button, self.pause_button, self.resume_button, self.stop_button):
            button.setMinimumWidth(60)   # not the style's 80: the settings column stays ~300 px (default_layout.py)
            buttons.addWidget(button)
        return buttons

    # --- settings ----------------------------------------------------------------------------
    def configs(self) -> tuple[DataConfig, ModelConfig, TrainConfig]:
        """The three configs (data: only the split fields are the form's); ConfigError when invalid."""
        return self.data_form.values(), self.model_form.values(), self.train_form.values()

    def set_configs(self, data_cfg: DataConfig | None, model_cfg: ModelConfig | None,
                    train_cfg: TrainConfig | None) -> None:
        if data_cfg is not None:
            self.data_form.set_values(data_cfg)
        if model_cfg is not None:
            self.model_form.set_values(model_cfg)
        if train_cfg is not None:
            self.train_form.set_values(train_cfg)

    def set_data_shape(self, shape: tuple | None, spec: str = "") -> None:
        """The loaded data's sample shape (Train needs data, warnings depend on it) and spec
        (built-in names have recommended settings)."""
        self._data_shape = shape
        self._data_spec = spec
        self._settings_changed()

    def recommended_differences(self) -> list:
        """What the recommended setting for the loaded data and the chosen kind would change."""
        from app.core.presets import differences
        if self._error is not None or not self._data_spec:
            return []
        data_cfg, model_cfg, train_cfg = self.configs()
        return differences(DataConfig(spec=self._data_spec), model_cfg, train_cfg)

    def apply_recommended(self) -> None:
        from app.core.presets import apply_preset, recommended
        data_cfg, model_cfg, train_cfg = self.configs()
        preset = recommended(self._data_spec, model_cfg.kind)
        if preset is not None:
            _, model_cfg, train_cfg = apply_preset(preset, data_cfg, model_cfg, train_cfg)
            self.set_configs(None, model_cfg, train_cfg)
            self._settings_changed()

    def _show_recommendation(self) -> None:
        from app.core.presets import summary
        diffs = self.recommended_differences()
        kind = self.model_form.value("kind")
        self.recommend_label.setText(f"Recommended for {self._data_spec} + {kind}: {summary(diffs)}" if diffs else "")
        self.recommend_label.setVisible(bool(diffs))
        self.recommend_button.setVisible(bool(diffs))

    def error(self) -> str | None:
        for form in (self.model_form, self.train_form, self.data_form):
            message = form.error()
            if message:
                return message
        return None

    def _settings_changed(self) -> None:
        kind = self.model_form.value("kind")
        self.model_form.show_for_kind(kind)   # which settings apply: the fields' metadata (app/core/config.py)
        self.train_form.show_for_kind(kind)
        from app.core.config import MODEL_KINDS_HELP
        self.kind_help.setText(MODEL_KINDS_HELP.get(kind, ""))

        message = self._error = self.error()
        self.error_label.setText(message or "")
        self.error_label.setVisible(bool(message))
        warnings = []
        if message is None and self._data_shape is not None:
            from app.core.model_warnings import model_warnings
            warnings = model_warnings(self.model_form.values(), self._data_shape)
        self.warning_label.setText("\n".join(f"Note: {w}" for w in warnings))
        self.warning_label.setVisible(bool(warnings))
        self._show_recommendation()
        self._update_buttons()

    # --- run state ---------------------------------------------------------------------------
    @property
    def run_state(self) -> str:
        return self._state

    def set_run_state(self, state: str) -> None:
        """idle | running | paused; the buttons and the form follow."""
        self._state = state
        for form in (self.model_form, self.train_form, self.data_form):
            form.setEnabled(state == "idle")
        text = self.progress_label.text().removeprefix("Paused — ")
        self.progress_label.setText(("Paused — " if state == "paused" else "") + text)
        self._update_buttons()

    def _update_buttons(self) -> None:
        idle = self._state == "idle"
        self.train_button.setEnabled(idle and self._data_shape is not None and self._error is None)
        if idle and self._data_shape is None:
            self.train_button.setToolTip("Load data first (File > Open data…)")
        elif idle and self._error:
            self.train_button.setToolTip(f"Fix the settings first: {self._error}")
        else:
            self.train_button.setToolTip("Train a new model with these settings on the loaded data (Ctrl+T)")
        self.pause_button.setEnabled(self._state == "running")
        self.resume_button.setEnabled(self._state == "paused")
        self.stop_button.setEnabled(not idle)

    def reset_progress(self) -> None:
        self._epoch_seconds = []
        self.progress.setValue(0)
        self.progress_label.setText("Starting…")

    def show_progress(self, p) -> None:
        """A TrainProgress: bar position, epoch, running loss, samples/s and ETA."""
        self.progress.setValue(int(round(p.fraction * 1000)))
        loss = p.parts.get("total", math.nan)
        text = (f"Epoch {p.epoch}/{p.epochs} · loss {loss:.4g} · {p.samples_per_second:,.0f} samples/s · "
                f"ETA {format_duration(p.eta_s)}")
        self.progress_label.setText(("Paused — " if self._state == "paused" else "") + text)

    def show_epoch(self, result, epochs: int) -> None:
        """An EpochResult: enough for the bar, the rate and an ETA when epochs are too short for the
        trainer's within-epoch reports."""
        self._epoch_seconds.append(result.seconds)
        self.progress.setValue(int(round(min(1.0, result.epoch / max(epochs, 1)) * 1000)))
        eta = (epochs - result.epoch) * sum(self._epoch_seconds) / len(self._epoch_seconds)
        text = (f"Epoch {result.epoch}/{epochs} · loss {result.train_loss:.4g} · "
                f"{result.samples_per_second:,.0f} samples/s · ETA {format_duration(eta)}")
        self.progress_label.setText(("Paused — " if self._state == "paused" else "") + text)

    def show_finished(self, text: str, complete: bool) -> None:
        if complete:
            self.progress.setValue(1000)
        self.progress_label.setText(text)
