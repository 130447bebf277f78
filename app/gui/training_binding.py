"""The training panel, the Training menu's actions and the status bar's device line, bound to the
application controller: what the buttons start, and what the panel shows while a model trains."""

from __future__ import annotations

from PySide6.QtCore import QObject

from app.core.config import DataConfig
from app.core.errors import LatentExplorerError


class TrainingBinding(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.app, self.panel, self.controller = window.app, window.training_panel, window.app.training
        panel, training = self.panel, self.controller
        panel.trainRequested.connect(window.start_training)
        panel.pauseRequested.connect(training.pause)
        panel.resumeRequested.connect(training.resume)
        panel.stopRequested.connect(training.stop)
        training.progressed.connect(panel.show_progress)
        training.progressed.connect(window.loss_view.add_progress)
        training.epochEnded.connect(panel.show_epoch)
        training.runStateChanged.connect(self._run_state_changed)
        training.trainingStopped.connect(self._training_stopped)
        for form in (panel.model_form, panel.train_form, panel.data_form):
            form.changed.connect(self.update_actions)
        window.state.dataChanged.connect(self._data_changed)
        self.app.runOpened.connect(self._run_opened)

    def split(self) -> DataConfig:
        """The form's split settings (its defaults while a field holds something invalid)."""
        try:
            return self.panel.data_form.values()
        except LatentExplorerError:
            return DataConfig()

    def _data_changed(self) -> None:
        data = self.window.state.data
        self.panel.set_data_shape(tuple(data.sample_shape), data.spec)
        self.update_actions()

    def _run_opened(self, _path: str) -> None:
        record = self.app.record
        self.window.loss_view.clear_live()
        split = DataConfig(val_fraction=record.data_cfg.val_fraction, split_seed=record.data_cfg.split_seed)
        self.panel.set_configs(split, record.model_cfg, record.train_cfg)
        self.update_actions()

    def retrain(self, normal: str) -> None:
        """The Anomalies tab's retrain: the form's settings, trained on the normal classes only."""
        if self.window.start_training(normal_classes=normal):
            self.window.state.info(f"Training on the normal classes {normal} only; the validation split keeps "
                                   "every class")

    def start(self, normal_classes: str | None = None) -> bool:
        """Train a new model with the panel's settings (normal_classes: those classes only)."""
        try:
            split, model_cfg, train_cfg = self.panel.configs()
        except LatentExplorerError as exc:
            self.window.state.error(f"Cannot start training: {exc}")
            return False
        if normal_classes is None:   # the data panel's setting, unless the Anomalies tab names classes
            normal_classes = self.window.data_panel.form.value("normal_classes")
        self.panel.reset_progress()
        self.window.loss_view.clear_live()
        if not self.app.start_training(split, model_cfg, train_cfg, normal_classes):
            self.panel.show_finished("Not training", complete=False)
            return False
        self.show_device(self.controller.device_name)
        return True

    def _run_state_changed(self, run_state: str) -> None:
        self.panel.set_run_state(run_state)
        self.window.data_panel.set_enabled_for_training(run_state == "idle")
        self.update_actions()

    def _training_stopped(self, finished) -> None:
        if finished is not None:
            done = finished.epochs_run
            self.panel.show_finished(f"{finished.reason.replace('_', ' ').capitalize()} after {done} "
                                     f"epoch{'s' if done != 1 else ''}: {finished.message}",
                                     complete=finished.reason == "completed")
        else:
            self.panel.show_finished("Training failed; see Messages", complete=False)
        self.show_device(None)
        self.update_actions()

    def show_device(self, training_on: str | None) -> None:
        """'Training on: X' while training, 'Device: X' (what training would use) otherwise."""
        if training_on is not None:
            self.window.device_label.setText(f"Training on: {training_on}")
            return
        from app.core.device import describe_device, resolve_device
        self.window.device_label.setText(f"Device: {describe_device(resolve_device('auto'))}")

    def update_actions(self, *_args) -> None:
        w, idle = self.window, not self.controller.running
        w.train_action.setEnabled(self.panel.train_button.isEnabled())
        w.pause_action.setEnabled(not idle)
        w.stop_action.setEnabled(not idle)
        for action in (w.open_file_action, w.open_folder_action, w.open_run_action, *w.builtin_actions):
            action.setEnabled(idle)
        w.save_run_action.setEnabled(idle and self.app.record is not None)
        w.pause_action.setText("Resume" if self.controller.run_state == "paused" else "Pause")
