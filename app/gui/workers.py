"""Background work for the window: the training thread, and `Task`, the one primitive every other
background computation uses (loading, encoding, saving, the analysis tabs).

Signals are named in the past tense as in superqt (`progressed`, `finished`, `errored`). Tests
wait on them with qtbot.waitSignal; nothing here sleeps or spins processEvents().
"""

from __future__ import annotations

import threading
import time
import traceback
import weakref
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QThread, QThreadPool, Signal

from app.core.errors import LatentExplorerError
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch-backed: imported where used, so the window appears before torch loads
    from app.core.snapshot import ModelSnapshot
    from app.core.training_run import TrainingRun


def readable(exc: BaseException) -> str:
    """One line for the user; our own errors are already worded, others get their type."""
    if isinstance(exc, LatentExplorerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class TrainWorker(QThread):
    """Runs a core training session (app/core/training_run.py) on its own thread and forwards its
    events as signals: the session owns autosave, the collapse check and the metrics summary.

    At each epoch end (and every `snapshot_interval_s` within long epochs) it freezes a CPU copy of
    the model and reconstructs the preview samples, still on this thread, so the window only ever
    receives numpy arrays and snapshots that no one is modifying."""

    progressed = Signal(object)                   # TrainProgress
    epochEnded = Signal(object)                   # training_run.Epoch (the result and its metrics row)
    snapshotTaken = Signal(object, object)        # ModelSnapshot, preview reconstructions (ndarray or None)
    trainingFinished = Signal(object, object)     # training_run.Finished, final ModelSnapshot
    errored = Signal(str)
    warned = Signal(str)                          # posterior collapse, a failed autosave: shown, training goes on

    def __init__(self, session: TrainingRun, preview_x: np.ndarray | None, generation: int, modality: str,
                 snapshot_interval_s: float = 3.0, parent: QObject | None = None):
        super().__init__(parent)
        self.session = session
        self.trainer = session.trainer
        self.control = session.control
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

    def run(self) -> None:  # noqa: D401 - QThread entry point
        from app.core.snapshot import ModelSnapshot
        from app.core.training_run import Epoch, Finished, Progress, TrainingWarning

        last_snapshot = time.perf_counter()
        try:
            for event in self.session.events():
                if isinstance(event, Progress):
                    self.progressed.emit(event.progress)
                    if time.perf_counter() - last_snapshot > self.snapshot_interval_s:
                        self._snapshot(event.progress.epoch - 1)
                        last_snapshot = time.perf_counter()
                elif isinstance(event, Epoch):
                    self.epochEnded.emit(event)
                    self._snapshot(event.result.epoch)
                    last_snapshot = time.perf_counter()
                elif isinstance(event, TrainingWarning):
                    self.warned.emit(event.text[:1].upper() + event.text[1:])
                elif isinstance(event, Finished):
                    snap = ModelSnapshot.of(self.trainer.model, self.generation, event.epochs_run, self.modality)
                    self.trainingFinished.emit(event, snap)
        except Exception as exc:  # noqa: BLE001 - must reach the user, never the console only
            traceback.print_exc()
            self.errored.emit(readable(exc))


class TaskState:
    """What a background function sees: `should_stop()` (checked between chunks; the analysis API
    raises Cancelled when it turns True), `progress(done, total, text)` and `partial(obj)` for a
    result that arrives piece by piece. Thread-safe: the flag is a threading.Event."""

    def __init__(self, signals: "_TaskSignals"):
        self._stop = threading.Event()
        self._signals = signals

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def cancel(self) -> None:
        self._stop.set()

    def progress(self, done: int, total: int, text: str = "") -> None:
        if not self._stop.is_set():
            self._signals.progressed.emit(int(done), int(total), text)

    def partial(self, value: Any) -> None:
        if not self._stop.is_set():
            self._signals.yielded.emit(value)


class _TaskSignals(QObject):
    progressed = Signal(int, int, str)
    yielded = Signal(object)


class Task(QObject):
    """One slot of background work for the window, on superqt's FunctionWorker (Qt's global thread
    pool). Starting a task supersedes the slot's previous one, as Orange's ConcurrentMixin does: the
    old one is told to stop (TaskState.should_stop) and whatever it still reports is dropped. The
    one staleness key is the task's serial number: a report is delivered only while its task is the
    slot's current one, so callers cancel() when what a result depends on changed (the data, the
    model) instead of comparing tokens afterwards."""

    progressed = Signal(int, int, str)   # done, total, text: from the current task only
    yielded = Signal(object)             # TaskState.partial values of the current task
    runningChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None, text: str = ""):
        super().__init__(parent)
        self.text = text              # what the window's busy indicator says while this runs
        self._serial = 0
        self._state: TaskState | None = None
        self._signals = _TaskSignals(self)
        self._signals.progressed.connect(self.progressed)
        self._signals.yielded.connect(self.yielded)
        _live_tasks.add(self)

    @property
    def running(self) -> bool:
        return self._state is not None

    def start(self, work: Callable[[TaskState], Any], on_done: Callable[[Any], None] | None = None,
              on_error: Callable[[str], None] | None = None, on_cancelled: Callable[[], None] | None = None,
              text: str | None = None) -> None:
        """Run work(state) on the pool; on_done(result) or on_error(readable message) on the GUI
        thread if this is still the current task; on_cancelled() if work raised Cancelled."""
        from superqt.utils import FunctionWorker

        if text is not None:
            self.text = text
        was_running = self.running
        if self._state is not None:
            self._state.cancel()
        self._serial += 1
        serial, state = self._serial, TaskState(self._signals)
        self._state = state
        worker = FunctionWorker(work, state)
        worker.returned.connect(lambda result: self._returned(serial, result, on_done))
        worker.errored.connect(lambda exc: self._errored(serial, exc, on_error, on_cancelled))
        worker.start()
        if not was_running:
            self.runningChanged.emit(True)

    def cancel(self) -> bool:
        """Tell the current task to stop and drop whatever it still reports; returns whether one ran."""
        if self._state is None:
            return False
        self._state.cancel()
        self._finish()
        return True

    def _finish(self) -> None:
        self._serial += 1
        self._state = None
        self.runningChanged.emit(False)

    def _returned(self, serial: int, result: Any, on_done) -> None:
        if serial != self._serial:
            return
        self._finish()
        if on_done is not None:
            on_done(result)

    def _errored(self, serial: int, exc: BaseException, on_error, on_cancelled) -> None:
        if serial != self._serial:
            return
        from app.core.analysis.api import Cancelled

        self._finish()
        if isinstance(exc, Cancelled):
            if on_cancelled is not None:
                on_cancelled()
            return
        if not isinstance(exc, LatentExplorerError):
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        if on_error is not None:
            on_error(readable(exc))


_live_tasks: "weakref.WeakSet[Task]" = weakref.WeakSet()


def cancel_all_tasks() -> None:
    """Ask every running task to stop (the window is closing)."""
    for task in list(_live_tasks):
        try:
            task.cancel()
        except RuntimeError:      # its Qt side was already deleted
            continue


def wait_for_tasks(timeout_ms: int = 10_000) -> bool:
    """Called on close, after cancel_all_tasks: let running work reach its next stop check so no
    thread outlives the window."""
    return QThreadPool.globalInstance().waitForDone(timeout_ms)
