"""One long-lived, spawned process that computes projections for the session.

Why a process: UMAP's numba kernels hold the GIL, so in a thread they stall the window by up to
0.3 s at a time; a spawned child (not forked: forked processes can hang in OpenMP) keeps the
event loop at p99 0.2 ms. Why long-lived: the child's first UMAP fit compiles ~30 s of numba
code that only lives in that process, so the window keeps one child and warms it up while the
user is still training (docs/DESIGN.md, "Known traps").

The client has no threads. The window polls it from a QTimer::

    service = ProjectionService()
    service.start(); service.warmup()
    job = service.submit(codes, "umap", {"n_neighbors": 15})
    ...
    for event in service.poll():          # non-blocking
        kind, job_id = event[0], event[1]  # drop events whose job_id is stale
    service.close()

Events are small tuples:
    ("progress", job_id, fraction, text)
    ("done", job_id, embedding (N, 2) float32, seconds, trustworthiness or NaN, fit info)
where fit info is projections.FitInfo.as_dict(): {"method", "n_points", "fit_points",
"placed_with", "caption"} (str/int); "caption" is '' unless UMAP/t-SNE was fitted on a sample
of fit_max_points codes and placed the rest, e.g. "UMAP fitted on 20,000 of 1,000,000 codes (a
seeded sample); the rest placed with UMAP's transform". Read it as ``event[5] if len(event) > 5``.
    ("error", job_id, one-line message)
    ("cancelled", job_id)
Every job gets exactly one of done / error / cancelled, and progress only before it.

Cancelling (:meth:`ProjectionService.cancel`):
  * a job still waiting in line is skipped by the child;
  * openTSNE stops at its next callback (every 10 iterations), UMAP at its next layout epoch;
  * work that cannot be interrupted (UMAP's neighbour search and numba compilation,
    scikit-learn's t-SNE) is stopped by terminating the child: after CANCEL_GRACE_S for UMAP,
    at once for scikit-learn's t-SNE. A new child is spawned transparently, jobs still waiting
    are re-sent and, if a warm-up had been asked for, the new child warms up again.
If the child dies on its own, each unfinished job gets an "error" event and the next submit
starts a fresh child.

Codes travel to the child as ``.npy`` files in a private temporary folder, not through the
pipe: a pipe write of megabytes would block the GUI thread while the child is busy. Messages
are small tuples of str/int/float plus the (N, 2) result, over one-way pipes whose other ends
the parent closes, so a child that dies mid-message reads as EOF instead of hanging.

The child does not re-import the parent's ``__main__`` script (see ``_main_module_hidden``), so
it never loads Qt; ``child_info["qt_modules"]`` lets a test check that.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import types
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from app.core.errors import ProjectionError

log = logging.getLogger(__name__)

# How long a cancelled UMAP job may take to reach its next cancel point (a layout epoch) before
# the child is terminated; its neighbour search takes a few seconds on 10k codes once compiled.
CANCEL_GRACE_S = {"umap": 3.0, "tsne": 10.0, "pca": 10.0, "tsne-sklearn": 0.0}
# Slots in the shared list of cancelled job ids (a ring: only recent cancels matter).
_CANCEL_SLOTS = 64
# The child's warm-up, in order; a job that arrives meanwhile runs before the next step.
WARMUP_STEPS = ("import", "umap")
_QT_PREFIXES = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "superqt", "qtpy")

Event = tuple


def numba_cache_dir() -> Path:
    """Per-user folder for numba's on-disk cache (``NUMBA_CACHE_DIR`` wins when set).

    umap-learn and pynndescent compile many functions with ``cache=True``; numba's default is a
    ``__pycache__`` beside the installed package, which is read-only in many installs.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "latent-explorer" / "Cache"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "latent-explorer"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "latent-explorer"
    return base / "numba"


# --------------------------------------------------------------------------------------------
# The child
# --------------------------------------------------------------------------------------------


def _configure_numba_cache() -> str:
    """Point numba at the user cache before anything imports it; '' if it cannot be created."""
    folder = numba_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return ""
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    return str(folder)


def _take_next_job(jobs: deque, umap_ready: bool) -> tuple:
    """The waiting job to run now: fastest first, so no map waits behind a slower one. PCA takes
    milliseconds; a compiled UMAP takes seconds, t-SNE tens of seconds; an uncompiled UMAP first
    spends up to a minute compiling, so then t-SNE goes ahead of it. Ties keep submission order."""
    rank = {"pca": 0, "umap": 1 if umap_ready else 3, "tsne": 2}
    best = min(range(len(jobs)), key=lambda i: (rank.get(jobs[i][2], 2), i))
    job = jobs[best]
    del jobs[best]
    return job


def _quality(projections, codes: np.ndarray, embedding: np.ndarray, params: dict) -> float:
    """Trustworthiness of a finished map, computed here in the child beside it: in the window's
    process its ~0.2 s of scikit-learn held the GIL and stalled the event loop. NaN if it cannot
    be computed (e.g. too few points); the map is still good."""
    seed = params.get("seed")
    try:
        return projections.trustworthiness(codes, embedding, seed=0 if seed is None else int(seed))
    except (ProjectionError, ValueError, MemoryError):
        return float("nan")


def _use_thread_lock_for_tqdm() -> None:
    """Give tqdm (UMAP's epoch bar) a thread lock before it makes its default one, which includes
    a multiprocessing RLock: a named semaphore registered with the parent's resource tracker.
    A child ended by force (a hard cancel, closing while busy) never unregistered it, and every
    exit of the app printed "resource_tracker: There appear to be 1 leaked semaphore objects"."""
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def _exit_now(*connections) -> None:
    """End the child at once. A normal interpreter exit after UMAP and openTSNE spends 3-4 s in
    C-level teardown (the idle app took 3.3-5.5 s to close); nothing here needs it: results were
    sent, numba writes its cache when it compiles, the temporary files are the parent's, and no
    semaphore is left to unlink (see _use_thread_lock_for_tqdm)."""
    for conn in connections:
        with contextlib.suppress(OSError):
            conn.close()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _run_warmup_step(step: str, send, projections) -> None:
    """One warm-up step in the child; reports ("warm", step, seconds, error or '')."""
    import warnings

    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            projections.import_umap()   # numba's disk cache on for its kernels, before any compile
            if step == "import":  # the other methods' libraries too: a few seconds each
                import openTSNE  # noqa: F401
                import sklearn.decomposition  # noqa: F401
            else:
                # 300 x 8 float32 like real codes, through the very path a job takes (exact
                # neighbours, seeded serial layout), so numba compiles the same signatures,
                # or loads them from its cache after the first run on this machine.
                data = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
                projections.project(data, "umap", {"seed": 0})
    except Exception as exc:
        send(("warm", step, time.perf_counter() - start, f"{type(exc).__name__}: {exc}".splitlines()[0]))
    else:
        send(("warm", step, time.perf_counter() - start, ""))


def _worker_main(requests, results, cancelled) -> None:
    """The child's loop. ``requests``/``results`` are one-way pipe ends, ``cancelled`` a RawArray."""
    cache = _configure_numba_cache()
    _use_thread_lock_for_tqdm()
    from app.core import projections  # after the cache is configured; imports nothing heavy

    parent = multiprocessing.parent_process()
    qt = sorted(name for name in sys.modules if name.split(".")[0] in _QT_PREFIXES)

    def send(message: tuple) -> None:
        results.send(message)  # BrokenPipeError when the parent is gone: the child just ends

    def is_cancelled(job_id: int) -> bool:
        return job_id in cancelled[:] or (parent is not None and not parent.is_alive())

    def run_job(job_id: int, path: str, method: str, params: dict) -> None:
        if is_cancelled(job_id):
            send(("cancelled", job_id))
            return
        send(("progress", job_id, 0.0, f"starting {projections.LABELS.get(method, method)}"))
        start = time.perf_counter()

        def progress(fraction: float, text: str) -> None:
            send(("progress", job_id, float(fraction), str(text)))

        try:
            codes = np.load(path, allow_pickle=False)
        except OSError:  # the parent cancelled it and removed the file just as it started
            send(("cancelled", job_id))
            return
        try:
            embedding, info = projections.project_with_info(codes, method, params, progress,
                                                            lambda: is_cancelled(job_id))
        except projections.ProjectionCancelled:
            send(("cancelled", job_id))
        except ProjectionError as exc:
            send(("error", job_id, str(exc)))
        except (BrokenPipeError, EOFError):
            raise
        except Exception as exc:  # a bug or a library failure: tell the user, keep the child
            traceback.print_exc()
            label = projections.LABELS.get(method, method)
            send(("error", job_id, f"{label} failed: {type(exc).__name__}: {exc}".splitlines()[0]))
        else:
            seconds = time.perf_counter() - start
            send(("done", job_id, embedding, seconds, _quality(projections, codes, embedding, params),
                  info.as_dict()))

    try:
        send(("ready", os.getpid(), qt, cache))
        jobs: deque = deque()
        warm_steps: deque = deque()
        while True:
            # Read everything waiting before working, so jobs overtake pending warm-up steps.
            if not (jobs or warm_steps) or requests.poll(0):
                try:
                    message = requests.recv()  # blocks only when idle
                except (EOFError, OSError):
                    _exit_now(requests, results)  # the parent closed or died
                kind = message[0]
                if kind == "stop":
                    _exit_now(requests, results)
                if kind == "project":
                    jobs.append(message[1:])
                elif kind == "warmup":
                    warm_steps.extend(step for step in WARMUP_STEPS if step not in warm_steps)
                continue
            if jobs:
                run_job(*_take_next_job(jobs, projections._umap_has_run))
            else:
                _run_warmup_step(warm_steps.popleft(), send, projections)
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        _exit_now(requests, results)


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


@dataclass
class _Job:
    job_id: int
    method: str
    params: dict
    path: str
    started: bool = False
    cancel_requested: bool = False
    cancel_deadline: float = float("inf")


@dataclass
class _Child:
    process: Any
    requests: Any  # parent's write end
    results: Any  # parent's read end
    cancelled: Any  # RawArray('q') shared with the child
    cancel_slot: int = 0
    finalizer: Any = field(default=None, repr=False)

    def mark_cancelled(self, job_id: int) -> None:
        self.cancelled[self.cancel_slot % _CANCEL_SLOTS] = job_id
        self.cancel_slot += 1


@contextlib.contextmanager
def _main_module_hidden():
    """Start a spawned child without re-running the parent's ``__main__`` script in it.

    multiprocessing re-imports the main script in a spawned child so that pickled references to
    it resolve. Our child needs nothing from it (its target lives in this module), and the
    script may import Qt or start work without an ``if __name__ == "__main__":`` guard. With a
    bare stand-in as ``__main__`` while the child is launched, there is nothing to re-import.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _stop_process(process, requests, results, timeout: float) -> None:
    """End a child for sure: ask, wait ``timeout``, terminate, kill. Used by close and finalizers."""
    if timeout > 0 and process.is_alive():
        try:
            requests.send(("stop",))
        except (OSError, ValueError):
            pass
        # Keep reading (and dropping) results meanwhile: a child blocked writing a large
        # result to a full pipe would never see the stop.
        deadline = time.monotonic() + timeout
        while process.is_alive() and (remaining := deadline - time.monotonic()) > 0:
            ready = multiprocessing.connection.wait([results, process.sentinel], remaining)
            if results in ready:
                try:
                    results.recv()
                except (EOFError, OSError):
                    process.join(remaining)
                    break
    if process.is_alive():
        process.terminate()
        process.join(2.0)
    if process.is_alive():
        process.kill()
        process.join(2.0)
    for conn in (requests, results):
        try:
            conn.close()
        except OSError:
            pass


class ProjectionService:
    """Client of the projection child process; see the module docstring. Not thread-safe:
    call it from one thread (the GUI thread)."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._child: _Child | None = None
        self._jobs: dict[int, _Job] = {}  # unfinished jobs, in submission order
        self._events: deque[Event] = deque()
        self._next_id = 1
        self._warmup_wanted = False
        self._warm_steps_done: set[str] = set()
        self._tmpdir: str | None = None
        self._tmp_finalizer: Any = None
        self._closed = False
        self.child_info: dict[str, Any] = {}  # pid, qt_modules, numba_cache_dir (after "ready")

    # -- state ---------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True while a child process is running."""
        return self._child is not None and self._child.process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._child.process.pid if self._child is not None else None

    @property
    def warm(self) -> bool:
        """True once the current child finished its UMAP warm-up. Reads the child's messages first:
        a warm-up that ended while nothing else polled must count (UMAP once queued behind t-SNE
        because this said False long after the warm-up had finished)."""
        if not set(WARMUP_STEPS) <= self._warm_steps_done:
            self._drain()
        return set(WARMUP_STEPS) <= self._warm_steps_done

    @property
    def warming(self) -> bool:
        return self._warmup_wanted and not self.warm and self.alive

    @property
    def pending(self) -> list[int]:
        """Ids of jobs that have not finished yet, oldest first."""
        return list(self._jobs)

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the child if none is running (submit and warmup call this themselves)."""
        if self._closed:
            raise ProjectionError("the projection service was closed; open a new one")
        if self.alive:
            return
        if self._child is not None:
            self._drain()  # reports the death to unfinished jobs
            self._reap_child()
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="latent-explorer-projections-")
            self._tmp_finalizer = weakref.finalize(self, shutil.rmtree, self._tmpdir, True)
        request_read, request_write = self._ctx.Pipe(duplex=False)
        result_read, result_write = self._ctx.Pipe(duplex=False)
        cancelled = self._ctx.RawArray("q", _CANCEL_SLOTS)
        process = self._ctx.Process(
            target=_worker_main,
            args=(request_read, result_write, cancelled),
            name="latent-explorer-projections",
            daemon=True,  # multiprocessing ends it if the app exits without close()
        )
        try:
            with _main_module_hidden():
                process.start()
        except Exception as exc:
            for conn in (request_read, request_write, result_read, result_write):
                conn.close()
            raise ProjectionError(f"could not start the projection process: {exc}") from None
        # Close our copies of the child's ends: a dead child then reads as EOF, not silence.
        request_read.close()
        result_write.close()
        child = _Child(process, request_write, result_read, cancelled)
        child.finalizer = weakref.finalize(self, _stop_process, process, request_write, result_read, 0.0)
        self._child = child
        self._warm_steps_done = set()
        self.child_info = {}
        if self._warmup_wanted:
            self._send(("warmup",))

    def warmup(self) -> None:
        """Ask the child to import UMAP and compile its kernels in the background (~45 s of CPU
        on a cold 2-core machine). Projections submitted meanwhile run between warm-up steps."""
        if self._warmup_wanted and self.alive:
            return  # this child was asked already (start() asks every new child)
        self._warmup_wanted = True
        if self.alive:
            self._send(("warmup",))
        else:
            self.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the child (politely, then by force) and delete the temporary files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # Only an idle child is asked to stop; one inside a job or the warm-up (which may not
        # reach a cancel point for seconds) is terminated at once, the app is closing.
        busy = self.warming or any(job.started for job in self._jobs.values())
        self._warmup_wanted = False
        child, self._child = self._child, None
        if child is not None:
            for job in self._jobs.values():
                child.mark_cancelled(job.job_id)
            child.finalizer.detach()
            _stop_process(child.process, child.requests, child.results, 0.0 if busy else timeout)
        self._jobs.clear()
        self._events.clear()
        if self._tmp_finalizer is not None:
            self._tmp_finalizer()  # removes the temporary folder

    def __enter__(self) -> "ProjectionService":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- jobs ----------------------------------------------------------------------------------

    def submit(self, codes: np.ndarray, method: str, params: Mapping[str, Any] | None = None) -> int:
        """Queue a projection; returns its job id at once. Problems arrive as an "error" event."""
        from app.core.projections import _check_method

        job_id = self._next_id
        self._next_id += 1
        try:
            method = _check_method(method)
            self.start()
            path = os.path.join(self._tmpdir, f"codes-{job_id}.npy")
            array = np.asarray(codes)
            if array.dtype.kind in "biuf":
                array = array.astype(np.float32, copy=False)
            np.save(path, array, allow_pickle=False)
        except ProjectionError as exc:
            self._events.append(("error", job_id, str(exc)))
            return job_id
        except (OSError, ValueError, TypeError) as exc:
            self._events.append(("error", job_id, f"could not hand the codes to the projection process: {exc}"))
            return job_id
        job = _Job(job_id, method, dict(params or {}), path)
        self._jobs[job_id] = job
        self._send(("project", job_id, path, method, job.params))
        return job_id

    def cancel(self, job_id: int) -> None:
        """Stop a job; it then reports "cancelled" (or "done"/"error" if it finished first)."""
        self._drain()
        job = self._jobs.get(job_id)
        if job is None or job.cancel_requested:
            return
        job.cancel_requested = True
        if self._child is not None:
            self._child.mark_cancelled(job_id)
        if not job.started:
            # Still in line: the child will skip it; report it now so the window need not wait
            # for the jobs ahead of it. Anything the child says about it later is dropped.
            self._finish(job, ("cancelled", job_id))
            return
        job.cancel_deadline = time.monotonic() + CANCEL_GRACE_S.get(job.method, 0.0)
        self._enforce_cancel_deadlines()

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """Events since the last call (possibly none). With ``timeout`` > 0, wait up to that long
        for the first one; never waits when nothing is pending."""
        self._drain()
        if not self._events and timeout > 0 and self._child is not None and self._jobs:
            deadline = time.monotonic() + timeout
            while not self._events and self._child is not None and self._jobs:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # Wake for a message, the child's death, or the next cancel deadline.
                wait = min(remaining, max(0.0, self._next_deadline() - time.monotonic()) + 0.01)
                multiprocessing.connection.wait([self._child.results, self._child.process.sentinel], wait)
                self._drain()
        events = list(self._events)
        self._events.clear()
        return events

    def run_sync(
        self,
        codes: np.ndarray,
        method: str,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        progress: Callable[[float, str], None] | None = None,
    ) -> np.ndarray:
        """Submit and wait (CLI, tests): the (N, 2) embedding, or ProjectionError.

        Events of other jobs that arrive meanwhile are kept for the next :meth:`poll`.
        """
        job_id = self.submit(codes, method, params)
        deadline = None if timeout is None else time.monotonic() + timeout
        timed_out = False
        others: list[Event] = []
        try:
            while True:
                events = self.poll(timeout=0.2)
                for event in events:
                    if event[1] != job_id:
                        others.append(event)
                    elif event[0] == "progress" and progress is not None:
                        progress(event[2], event[3])
                    elif event[0] == "done":
                        return event[2]
                    elif event[0] == "error":
                        raise ProjectionError(event[2])
                    elif event[0] == "cancelled":
                        if timed_out:
                            raise ProjectionError(f"{method} projection did not finish within {timeout:g} s")
                        raise ProjectionError(f"{method} projection was cancelled")
                if job_id not in self._jobs:  # cannot happen: its last event was in `events`
                    raise ProjectionError(f"{method} projection ended without a result")
                if deadline is not None and not timed_out and time.monotonic() > deadline:
                    timed_out = True
                    self.cancel(job_id)
        finally:
            self._events.extendleft(reversed(others))

    # -- internals -----------------------------------------------------------------------------

    def _send(self, message: tuple) -> None:
        try:
            self._child.requests.send(message)
        except (OSError, ValueError):
            self._drain()  # the child is gone: _drain reports it and fails the jobs

    def _drain(self) -> None:
        """Read every complete message the child sent; notice its death; enforce cancel deadlines."""
        child = self._child
        if child is None:
            return
        died = False
        try:
            while child.results.poll():
                self._handle(child.results.recv())
        except (EOFError, OSError):
            died = True
        if died or not child.process.is_alive():
            self._on_child_died(child)
            return
        self._enforce_cancel_deadlines()

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            _, pid, qt_modules, cache = message
            self.child_info = {"pid": pid, "qt_modules": list(qt_modules), "numba_cache_dir": cache}
            if qt_modules:
                log.warning("the projection process imported Qt (%s): app.core must never import it",
                            ", ".join(qt_modules[:3]))
            return
        if kind == "warm":
            _, step, seconds, error = message
            self._warm_steps_done.add(step)
            if error:   # logged; UMAP itself will then fail with the same message
                self._warm_steps_done.update(WARMUP_STEPS)  # no point in the other steps
                log.warning("UMAP warm-up failed: %s", error)
            else:
                log.info("UMAP warm-up step %s took %.1f s", step, seconds)
            return
        job = self._jobs.get(message[1])
        if job is None:
            return  # a job already finished here (e.g. cancelled by terminating its child)
        if kind == "progress":
            job.started = True
            self._events.append(message)
            return
        self._finish(job, message)

    def _finish(self, job: _Job, event: Event) -> None:
        self._jobs.pop(job.job_id, None)
        try:
            os.remove(job.path)
        except OSError:
            pass
        self._events.append(event)

    def _next_deadline(self) -> float:
        return min((job.cancel_deadline for job in self._jobs.values() if job.started), default=float("inf"))

    def _enforce_cancel_deadlines(self) -> None:
        if self._child is None:
            return
        now = time.monotonic()
        overdue = [job for job in self._jobs.values() if job.started and job.cancel_requested and job.cancel_deadline <= now]
        if overdue:
            self._terminate_and_restart(overdue[0])

    def _terminate_and_restart(self, job: _Job) -> None:
        """Cancel ``job`` the hard way: end the child, report "cancelled", re-send the rest."""
        child, self._child = self._child, None
        child.finalizer.detach()
        child.process.kill()
        child.process.join(5.0)
        # Messages sent before it died are complete or read as EOF; a "done" that raced the
        # kill wins over the cancel.
        try:
            while child.results.poll():
                self._handle(child.results.recv())
        except (EOFError, OSError):
            pass
        _stop_process(child.process, child.requests, child.results, 0.0)
        if job.job_id in self._jobs:
            self._finish(job, ("cancelled", job.job_id))
        for other in list(self._jobs.values()):
            if other.cancel_requested:
                self._finish(other, ("cancelled", other.job_id))
            else:  # never started, or started just before the kill: run it again from scratch
                other.started = False
        if self._jobs or self._warmup_wanted:
            self.start()
            for other in self._jobs.values():
                self._send(("project", other.job_id, other.path, other.method, other.params))

    def _on_child_died(self, child: _Child) -> None:
        code = child.process.exitcode
        if code is None:
            child.process.join(1.0)
            code = child.process.exitcode
        child.finalizer.detach()
        _stop_process(child.process, child.requests, child.results, 0.0)
        self._child = None
        self._warm_steps_done = set()
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how += f", {signal.Signals(-code).name}"
            except ValueError:
                pass
        message = f"the projection process stopped unexpectedly ({how}); it restarts with the next projection"
        for job in list(self._jobs.values()):
            self._finish(job, ("error", job.job_id, message))

    def _reap_child(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.finalizer.detach()
            _stop_process(child.process, child.requests, child.results, 0.0)
