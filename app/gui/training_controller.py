"""Starts, pauses and stops training for the window, and feeds what the trainer reports into the
shared state: history rows, model snapshots, preview reconstructions and messages.

One TrainWorker at a time. Results from a worker whose model is no longer the window's current
one (its generation is stale) are dropped. The model being trained is kept in `record`, so it can
be saved, or offered for saving on close, however training ended.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.errors import LatentExplorerError
from app.core.run import Run, training_summary
from app.gui.state import ExplorerState
from app.gui.workers import TrainWorker, readable


class TrainingController(QObject):
    progressed = Signal(object)          # TrainProgress, forwarded for the progress bar and live curve
    epochEnded = Signal(object, int)     # EpochResult, epochs planned: the trainer reports progress only
                                         # within epochs longer than its interval, so short ones move the bar here
    runStateChanged = Signal(str)        # idle | running | paused
    trainingStopped = Signal(object)     # training_run.Finished (None after a crash), once the thread has ended

    def __init__(self, state: ExplorerState, parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.worker: TrainWorker | None = None
        self.record: Run | None = None      # the window's current model, trained here or opened
        self.device_name = ""
        self._finished = None   # the TrainFinished of the current worker, once it arrived
        self.autosave_session = None   # created at the first training; one folder per window session
        self.autosave_enabled = True

    def _autosave_dir(self, data):
        """Each epoch's weights go to ~/.cache/latent-explorer/autosave/<session>/ (two generations),
        so a crash loses at most one epoch; the window offers them back at the next start."""
        if not self.autosave_enabled:
            return None
        from app.core.autosave import AutosaveSession

        try:
            if self.autosave_session is None:
                self.autosave_session = AutosaveSession.create(label=f"{data.name}")
            return self.autosave_session.path
        except (OSError, LatentExplorerError) as exc:
            self.state.warn(f"Autosave is off for this run: {readable(exc)}")
            return None

    def close_autosave(self, clean: bool = True) -> None:
        if self.autosave_session is not None:
            self.autosave_session.close(clean=clean)
            self.autosave_session = None

    @property
    def run_state(self) -> str:
        if self.worker is None:
            return "idle"
        return "paused" if self.worker.paused else "running"

    @property
    def running(self) -> bool:
        return self.worker is not None

    # --- commands ----------------------------------------------------------------------------
    def start(self, data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig, prepared=None) -> bool:
        """Build a new model for the loaded data and train it on a worker thread. Problems (a
        setting that does not fit the data, no CUDA) become an error message; returns success.
        `prepared`: a training session made elsewhere, e.g. one continuing a run (app/gui/continue_training.py)."""
        from app.core.session import prepare_training

        state = self.state
        if self.worker is not None:
            state.warn("Training is already running; stop it before starting another")
            return False
        data = state.data
        if data is None:
            state.error("Load data before training (File > Open data…, or pick a built-in data set)")
            return False
        try:
            session = prepare_training(data_cfg, model_cfg, train_cfg, data=data) if prepared is None else prepared
        except LatentExplorerError as exc:
            state.error(f"Cannot start training: {exc}")
            return False
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory while building; never only on the console
            state.error(f"Cannot start training: {readable(exc)}")
            return False
        session.autosave_dir = self._autosave_dir(data)
        self.device_name = session.trainer.device_name
        state.set_history(session.history)   # empty, or the earlier epochs of a continued run
        self.record = session.run
        self._finished = None
        preview = data.x[state.preview_idx] if len(state.preview_idx) else None
        worker = TrainWorker(session, preview_x=preview, generation=state.next_generation(), modality=data.modality,
                             parent=self)
        worker.warned.connect(self.state.warn)
        state.data_cfg = data_cfg   # the split the analysis views must use for this model
        state.run_seed = train_cfg.seed   # the maps repeat exactly for this run (projection_view)
        worker.progressed.connect(self.progressed)
        worker.epochEnded.connect(self._epoch_ended)
        worker.snapshotTaken.connect(self._snapshot_taken)
        worker.trainingFinished.connect(self._training_finished)
        worker.errored.connect(self._errored)
        worker.finished.connect(self._thread_finished)
        self.worker = worker
        worker.start()
        state.info(f"{session.describe()[:1].upper()}{session.describe()[1:]} samples")
        self.runStateChanged.emit("running")
        return True

    def pause(self) -> None:
        if self.worker is not None and not self.worker.paused:
            self.worker.pause()
            self.state.info("Training paused")
            self.runStateChanged.emit("paused")

    def resume(self) -> None:
        if self.worker is not None and self.worker.paused:
            self.worker.resume()
            self.state.info("Training resumed")
            self.runStateChanged.emit("running")

    def toggle_pause(self) -> None:
        if self.run_state == "running":
            self.pause()
        elif self.run_state == "paused":
            self.resume()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.state.info("Stopping training after the current step…")

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Stop and wait for the worker (window closing). The model keeps the weights of the last
        finished step; returns False if the thread did not end in time."""
        worker = self.worker
        if worker is None:
            return True
        worker.stop()
        ended = worker.wait(timeout_ms)
        if ended and self.record is not None:
            # The trainer is done with the model; queued signals may still be on their way, so read
            # the outcome straight from the session.
            session = worker.session
            self.record.history = session.history
            self.record.metrics = training_summary(session.history, session.trainer.best_epoch, "cancelled")
        return ended

    # --- worker reports (queued onto the GUI thread) -------------------------------------------
    def _current(self) -> bool:
        return self.sender() is self.worker and self.worker is not None

    def _epoch_ended(self, epoch) -> None:
        if self._current():
            if self.record is not None:
                self.record.history.append(epoch.row)
            self.state.append_history(epoch.row)
            self.epochEnded.emit(epoch.result, epoch.epochs)

    def _snapshot_taken(self, snapshot, preview_recon) -> None:
        if not self._current() or snapshot.generation != self.state.generation:
            return   # another model became current meanwhile
        self.state.set_snapshot(snapshot)
        if preview_recon is not None:
            self.state.set_preview(preview_recon)

    def _training_finished(self, finished, snapshot) -> None:
        if not self._current():
            return
        self._finished = finished
        session = self.worker.session
        if self.record is not None:
            self.record.history = session.history
            self.record.metrics = session.metrics()
            self.record.training_state = session.trainer.training_state()   # so a saved run can be continued
        if snapshot.generation == self.state.generation:
            self.state.set_snapshot(snapshot)
        if finished.ok:
            self.state.info(f"Training {finished.reason.replace('_', ' ')}: {finished.message}")
        else:
            kept = (f"the model of epoch {finished.epochs_run} is kept" if finished.epochs_run
                    else "no epoch finished")
            self.state.error(f"Training {finished.reason}: {finished.message} ({kept})")

    def _errored(self, text: str) -> None:
        if self._current():
            self.state.error(f"Training failed: {text}")

    def _thread_finished(self) -> None:
        worker = self.sender()
        if worker is not self.worker:
            return
        self.worker = None
        finished, self._finished = self._finished, None
        worker.deleteLater()
        self.runStateChanged.emit("idle")
        self.trainingStopped.emit(finished)
