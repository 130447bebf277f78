"""The projection view's client of the ProjectionService: one child process, one job per method.

It starts the child lazily (and asks it to warm UMAP up, so numba compiles while the user is still
training), keeps at most one wanted job per method (a new request replaces and cancels the old
one), polls the child on a timer only while something runs, and turns the service's event tuples
into Qt signals. Deciding whether a finished result is still wanted for the model now shown is
the view's business: each result comes with the job that asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from app.gui.workers import readable

POLL_INTERVAL_MS = 50
CHILD_NICENESS = 10   # the maps compute at a lower CPU priority than the window (issue 12's stalls)


def lower_priority(pid: int | None, niceness: int = CHILD_NICENESS) -> bool:
    """Run process `pid` behind the window: on a busy 2-core machine the projection child's
    threads (t-SNE uses every core) took the CPU from the GUI thread, and drawing a finished map
    stalled the window for 270-360 ms. The child only loses time when the window wants the CPU.
    False where the OS refuses (the maps still compute, at the usual priority)."""
    if pid is None:
        return False
    try:
        import psutil

        process = psutil.Process(pid)
        if hasattr(psutil, "BELOW_NORMAL_PRIORITY_CLASS"):   # Windows has classes, not nice values
            process.nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)
        else:
            process.nice(max(process.nice(), niceness))
        return True
    except Exception:  # noqa: BLE001 - gone already, or not permitted: keep the default priority
        return False


@dataclass
class ProjectionJob:
    job_id: int
    method: str
    generation: int            # the state's generation when submitted
    codes: np.ndarray          # the exact array submitted: a result for other codes is stale
    fitted_on: int | None = None   # set when done: the codes the map was fitted on, if fewer than all
    fit_caption: str = ""          # set when done: the service's line saying so ("" when fitted on all)


def fit_info(event: tuple) -> tuple[int | None, str]:
    """(fit sample size, caption) of a finished map: the size is None and the caption '' when the
    map was fitted on every code. Reads the fit info the projection service sends with "done"
    (app/core/projection_service.py: projections.FitInfo.as_dict(), keys "n_points",
    "fit_points", "caption"); an event without it (an older service) means fitted on all."""
    info = event[5] if len(event) > 5 else None
    if not isinstance(info, dict):
        return None, ""
    try:
        fit, total = int(info["fit_points"]), int(info["n_points"])
    except (KeyError, TypeError, ValueError):
        return None, ""
    return (fit, str(info.get("caption") or "")) if fit < total else (None, "")


class ProjectionRunner(QObject):
    progressed = Signal(str, float, str)       # method, fraction in [0, 1], text
    finished = Signal(object, object, float, float)   # ProjectionJob, embedding (N, 2) float64, seconds,
                                                      # trustworthiness (NaN if not computed)
    failed = Signal(str, str)                  # method, readable message
    cancelled = Signal(str)                    # method: the child stopped it on our request

    def __init__(self, warm_up: bool = True, parent: QObject | None = None):
        super().__init__(parent)
        self.warm_up = warm_up
        self.error = ""                         # why the process could not start, if it could not
        self._service = None
        self._lifeline = _Lifeline()
        self._jobs: dict[int, ProjectionJob] = {}   # unfinished jobs we still want, by id
        self._current: dict[str, int] = {}          # method -> id of its wanted job
        self._closed = False
        self._niced_pid: int | None = None   # the child whose priority was lowered (it restarts on a hard cancel)
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.timeout.connect(self.poll)
        # The child must not outlive its owner, even when no one calls close().
        self.destroyed.connect(self._lifeline.end)

    @property
    def service(self):
        return self._service

    @property
    def alive(self) -> bool:
        """False once closed or destroyed; late callbacks check this before touching widgets."""
        return not self._closed and self._lifeline.alive

    @property
    def warm(self) -> bool:
        return self._service is not None and bool(getattr(self._service, "warm", False))

    def start(self) -> bool:
        """Start the child process if it is not running; False (and `error` set) if it cannot."""
        if self._closed:
            self.error = "the projections were shut down"
            return False
        if self._service is not None:
            return True
        from app.core.projection_service import ProjectionService

        service = ProjectionService()
        try:
            service.start()
            if self.warm_up:
                service.warmup()   # UMAP's numba compilation happens now, while the user trains
        except Exception as exc:  # noqa: BLE001 - no process, no projections: say why, keep the window
            self.error = f"The projection process could not start: {readable(exc)}"
            _close_quietly(service)
            return False
        self.error = ""
        self._service = self._lifeline.service = service
        self._keep_behind_window()
        return True

    def _keep_behind_window(self) -> None:
        """Lower the priority of the service's current child, once per child process."""
        pid = self._service.pid if self._service is not None else None
        if pid is not None and pid != self._niced_pid:
            self._niced_pid = pid
            lower_priority(pid)

    def submit(self, method: str, codes: np.ndarray, params: dict, generation: int) -> bool:
        """Project `codes` with `method`, replacing the method's running job. False (and `failed`
        emitted) when it could not even be queued."""
        self.cancel(method)
        if not self.start():
            self.failed.emit(method, self.error)
            return False
        array = np.ascontiguousarray(codes, dtype=np.float32)
        try:
            job_id = self._service.submit(array, method, params)
        except Exception as exc:  # noqa: BLE001 - the service reports most problems as events
            self.failed.emit(method, f"Could not start {method}: {readable(exc)}")
            return False
        self._jobs[job_id] = ProjectionJob(job_id, method, generation, codes)
        self._current[method] = job_id
        self._timer.start()
        return True

    def cancel(self, method: str) -> bool:
        """Stop `method`'s job; True if one was running. Its late events are ignored."""
        job_id = self._current.pop(method, None)
        if job_id is None:
            return False
        self._jobs.pop(job_id, None)
        if self._service is not None:
            try:
                self._service.cancel(job_id)
            except Exception:  # noqa: BLE001 - the process is gone; nothing left to cancel
                pass
        return True

    def cancel_all(self) -> None:
        for method in list(self._current):
            self.cancel(method)

    def running(self) -> list[str]:
        return sorted(self._current)

    def job(self, method: str) -> ProjectionJob | None:
        job_id = self._current.get(method)
        return None if job_id is None else self._jobs[job_id]

    def poll(self) -> None:
        """Turn the child's events into signals; called by the timer while jobs are running."""
        if self._service is None or not self.alive:
            self._timer.stop()
            return
        for event in self._service.poll(0):
            self._handle(event)
        self._keep_behind_window()   # a hard cancel restarts the child: the new one runs behind too
        if not self._jobs:
            self._timer.stop()

    def _handle(self, event: tuple) -> None:
        kind, job_id = event[0], event[1]
        job = self._jobs.get(job_id)
        if job is None:
            return   # a job we cancelled or replaced
        if kind == "progress":
            self.progressed.emit(job.method, float(event[2]), str(event[3]))
            return
        del self._jobs[job_id]
        del self._current[job.method]
        if kind == "done":
            trust = float(event[4]) if len(event) > 4 else float("nan")
            job.fitted_on, job.fit_caption = fit_info(event)
            self.finished.emit(job, np.asarray(event[2], dtype=np.float64), float(event[3]), trust)
        elif kind == "error":
            self.failed.emit(job.method, str(event[2]))
        elif kind == "cancelled":
            self.cancelled.emit(job.method)

    def close(self) -> None:
        """Cancel everything and end the child process; the runner cannot start again."""
        self._closed = True
        self._timer.stop()
        self.cancel_all()
        service, self._service, self._lifeline.service = self._service, None, None
        _close_quietly(service)


def _close_quietly(service) -> None:
    if service is None:
        return
    try:
        service.close()
    except Exception:  # noqa: BLE001 - closing on the way out must not raise
        pass


class _Lifeline:
    """The part that outlives the runner's C++ object: its destroyed() handler closes the
    service and marks the runner dead, so late callbacks touch no deleted widget."""

    def __init__(self) -> None:
        self.service = None
        self.alive = True

    def end(self, *_args) -> None:
        self.alive = False
        service, self.service = self.service, None
        _close_quietly(service)
