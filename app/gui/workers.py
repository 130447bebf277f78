"""Background work for the window: the training thread and one-shot function jobs.

Signals are named in the past tense as in superqt (`progressed`, `finished`, `errored`). Tests
wait on them with qtbot.waitSignal; nothing here sleeps or spins processEvents().
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

from app.core.errors import LatentExplorerError
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch-backed: imported where used, so the window appears before torch loads
    from app.core.snapshot import ModelSnapshot
    from app.core.trainer import Trainer


def readable(exc: BaseException) -> str:
    """One line for the user; our own errors are already worded, others get their type."""
    if isinstance(exc, LatentExplorerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class TrainWorker(QThread):
    """Runs Trainer.run() on its own thread and forwards its events as signals.

    At each epoch end (and every `snapshot_interval_s` within long epochs) it freezes a CPU copy of
    the model and reconstructs the preview samples, still on this thread, so the window only ever
    receives numpy arrays and snapshots that no one is modifying."""

    progressed = Signal(object)                   # TrainProgress
    epochEnded = Signal(object)                   # EpochResult
    snapshotTaken = Signal(object, object)        # ModelSnapshot, preview reconstructions (ndarray or None)
    trainingFinished = Signal(object, object)     # TrainFinished, final ModelSnapshot
    errored = Signal(str)
    warned = Signal(str)                          # posterior collapse, a failed autosave: shown, training goes on

    def __init__(self, trainer: Trainer, preview_x: np.ndarray | None, generation: int, modality: str,
                 snapshot_interval_s: float = 3.0, autosaver=None, parent: QObject | None = None):
        super().__init__(parent)
        self.trainer = trainer
        # Autosave runs here, between steps, where the weights are never half-updated.
        self.autosaver = autosaver
        self._collapse_warned = False
        from app.core.trainer import TrainControl

        self.control = TrainControl()
        self.preview_x = preview_x
        self.generation = generation
        self.modality = modality
        self.snapshot_interval_s = snapshot_interval_s

    # Called from the GUI thread; TrainControl is thread-safe.
    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        self.control.stop()

    @property
    def paused(self) -> bool:
        return self.control.paused

    def _snapshot(self, epoch: int) -> ModelSnapshot:
        from app.core.snapshot import ModelSnapshot

        snap = ModelSnapshot.of(self.trainer.model, self.generation, epoch, self.modality)
        recon = snap.reconstruct(self.preview_x) if self.preview_x is not None and len(self.preview_x) else None
        self.snapshotTaken.emit(snap, recon)
        return snap

    def _autosave_failed(self, message: str) -> None:
        self.warned.emit(f"Autosave failed, training continues: {message}")

    def _check_collapse(self, epoch: int) -> None:
        """Warn once per run when a VAE's code stops carrying information (posterior collapse)."""
        if self._collapse_warned or not self.trainer.model.variational:
            return
        from app.core.collapse import check_posterior_collapse, warmup_epochs_for

        x = self.trainer._val_x if self.trainer._val_x is not None else self.trainer._train_x
        warning = check_posterior_collapse(self.trainer.model, x, epoch, warmup_epochs_for(self.trainer.cfg))
        if warning:
            self._collapse_warned = True
            self.warned.emit(warning)

    def run(self) -> None:  # noqa: D401 - QThread entry point
        from app.core.snapshot import ModelSnapshot
        from app.core.trainer import EpochResult, TrainFinished, TrainProgress

        last_snapshot = time.perf_counter()
        try:
            for event in self.trainer.run(self.control):
                if self.autosaver is not None:
                    self.autosaver.on_event(event, self.trainer.model, self.trainer.history)
                if isinstance(event, TrainProgress):
                    self.progressed.emit(event)
                    if time.perf_counter() - last_snapshot > self.snapshot_interval_s:
                        self._snapshot(event.epoch - 1)
                        last_snapshot = time.perf_counter()
                elif isinstance(event, EpochResult):
                    self.epochEnded.emit(event)
                    self._check_collapse(event.epoch)
                    self._snapshot(event.epoch)
                    last_snapshot = time.perf_counter()
                elif isinstance(event, TrainFinished):
                    snap = ModelSnapshot.of(self.trainer.model, self.generation, event.epochs_run, self.modality)
                    self.trainingFinished.emit(event, snap)
        except Exception as exc:  # noqa: BLE001 - must reach the user, never the console only
            traceback.print_exc()
            self.errored.emit(readable(exc))


class _JobSignals(QObject):
    succeeded = Signal(object)
    failed = Signal(str)


class FunctionJob(QRunnable):
    """Run fn(*args) on Qt's thread pool; deliver the result or a readable error by signal."""

    def __init__(self, fn: Callable[..., Any], *args: Any):
        super().__init__()
        self.fn = fn
        self.args = args
        self.signals = _JobSignals()

    def run(self) -> None:
        try:
            result = self.fn(*self.args)
        except Exception as exc:  # noqa: BLE001 - delivered as a message
            if not isinstance(exc, LatentExplorerError):
                traceback.print_exc()
            self.signals.failed.emit(readable(exc))
            return
        self.signals.succeeded.emit(result)


def run_job(fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[str], None] | None = None) -> FunctionJob:
    """Start a job on the global pool. Keep the returned object alive until it reports."""
    job = FunctionJob(fn, *args)
    if on_done is not None:
        job.signals.succeeded.connect(on_done)
    if on_error is not None:
        job.signals.failed.connect(on_error)
    job.setAutoDelete(False)
    _live_jobs.add(job)
    job.signals.succeeded.connect(lambda _=None, j=job: _live_jobs.discard(j))
    job.signals.failed.connect(lambda _=None, j=job: _live_jobs.discard(j))
    QThreadPool.globalInstance().start(job)
    return job


_live_jobs: set[FunctionJob] = set()


def wait_for_jobs(timeout_ms: int = 10_000) -> bool:
    """Called on close: let running jobs finish so no thread outlives the window."""
    return QThreadPool.globalInstance().waitForDone(timeout_ms)
