"""The processes of a hyperparameter search (app/core/search.py describes the folder).

The supervisor (the `search` command's process, or a process the window starts) spawns the
workers, polls the journal for progress, enforces the timeout, turns Ctrl+C or a cancel into a
clean stop, and notices workers that died (the trial they held is recorded failed with the exit
code). Each worker asks for a trial under a file lock, trains it and tells Optuna the outcome.
A trial is the core training session (app/core/training_run.py, the one `main.py train` and the
window use) writing a normal run directory. A worker stops its trial between two steps when the
supervisor cancels or disappears (killed), so no trial keeps running on its own.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import LatentExplorerError
from app.core.search import (ASK_LOCK, RESULTS, TRIALS_DIR, MAX_WORKER_RESTARTS_PER_JOB, PID_FILE, SearchResult,
                             SearchSpec, best_row, counts_toward_total, machine_threads, make_sampler, open_study,
                             progress_of, read_spec, results_csv, trial_rows)


@dataclass
class TrialOutcome:
    state: str                 # complete | pruned | fail
    value: float | None
    message: str
    counted: bool = True       # False: cancelled, to be run again on resume


# ---------------------------------------------------------------------------------------------
# One trial
# ---------------------------------------------------------------------------------------------
def objective_value(spec: SearchSpec, prepared) -> float:
    """The objective on the held-out (validation) split of the trial's own data split."""
    import numpy as np

    from app.core.session import encode, encode_all

    model, data = prepared.model, prepared.data
    val_x = data.x[prepared.val_idx]
    if spec.objective == "val_loss":
        from app.core.evaluation import objective
        return objective(model, val_x)
    if spec.objective == "reconstruction_error":
        return float(encode_all(model, val_x).errors.mean())
    if spec.objective == "mig":
        from app.core.analysis.disentanglement import mig
        return mig(encode(model, val_x), data.factors[prepared.val_idx]).score
    if spec.objective == "probe_accuracy":
        from app.core.analysis.probes import linear_probe_accuracy
        train_idx = prepared.train_idx[:5000]
        return linear_probe_accuracy(encode(model, data.x[train_idx]), data.y[train_idx], encode(model, val_x),
                                     data.y[prepared.val_idx])
    from app.core.analysis.anomaly import anomaly_mask, detection_metrics, parse_classes
    is_anomaly = anomaly_mask(data.y[prepared.val_idx], parse_classes(spec.anomaly_classes, data))
    auc = detection_metrics(encode_all(model, val_x).errors, is_anomaly)["auc"]
    return float("nan") if auc is None else float(np.float64(auc))


def _train_trial(spec: SearchSpec, trial, session, cancelled) -> TrialOutcome:
    """The trial's TrainingRun (the CLI's and the window's training session) to its end, its
    validation loss reported to the pruner after each epoch; a trial the pruner stops is stopped
    through the session's control (before its next step) and saved like any run, marked pruned."""
    from app.core.training_run import Epoch, Finished, TrainingWarning

    session.summary_extra["search_trial"] = trial.number
    pruned_at = finished = None
    warnings: list[str] = []
    for event in session.events():
        if isinstance(event, Epoch):
            result = event.result
            value = result.val_loss if result.val_loss is not None else result.train_loss
            if math.isfinite(value):
                trial.report(value, result.epoch)
            if pruned_at is None and trial.should_prune():
                pruned_at = result.epoch
                session.summary_extra["finished"] = "pruned"
                session.control.stop()
        elif isinstance(event, TrainingWarning):
            warnings.append(event.text)
        elif isinstance(event, Finished):
            finished = event
    if warnings:
        trial.set_user_attr("warnings", warnings[:10])
    if finished.save_error is not None:
        return TrialOutcome("fail", None, f"the trial's run directory could not be saved: {finished.save_error}")
    if pruned_at:
        return TrialOutcome("pruned", None, f"pruned after epoch {pruned_at}: its validation loss was behind the others")
    if cancelled():
        return TrialOutcome("fail", None, "cancelled: the search was stopped while this trial ran", counted=False)
    if not finished.ok:
        return TrialOutcome("fail", None, finished.message)
    value = objective_value(spec, session)
    if value is None or not math.isfinite(value):
        return TrialOutcome("fail", None, f"the objective {spec.objective} could not be computed for this model "
                                          f"(got {value}); check the data has what it needs")
    return TrialOutcome("complete", float(value), finished.message)


def run_trial(out: Path, spec: SearchSpec, space, trial, data_cache: dict, current: list, cancelled) -> TrialOutcome:
    """Settings from the sampler, then a TrainingRun written into trials/trial-NNNN (a normal run
    directory, followed live by the window like any run), then the objective. `current[0]` gets
    the session's control, which the watcher thread stops on a cancel."""
    from app.core.search_space import apply_settings, suggest
    from app.core.training_run import TrainingRun

    run_dir = out / TRIALS_DIR / f"trial-{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir.relative_to(out)))
    try:
        settings = suggest(trial, space, spec.method)
        model_cfg, train_cfg = apply_settings(spec.model, spec.train, settings)
        if "data" not in data_cache:
            from app.core.data import load_dataset
            data_cache["data"] = load_dataset(spec.data)
        session = TrainingRun(spec.data, model_cfg, train_cfg, data=data_cache["data"], out=run_dir)
    except LatentExplorerError as exc:
        return TrialOutcome("fail", None, f"refused: {exc}")
    # No autosaves: a trial interrupted by a crash runs again from its start on resume, so they
    # would never be read (the live checkpoints in the run directory still let the window follow it).
    session.autosave_dir = None
    current[0] = session.control
    try:
        return _train_trial(spec, trial, session, cancelled)
    except LatentExplorerError as exc:
        return TrialOutcome("fail", None, str(exc))
    except Exception as exc:  # noqa: BLE001 - OOM, a model bug: recorded for this trial, the search goes on
        return TrialOutcome("fail", None, f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        current[0] = None


def tell(study, trial, outcome: TrialOutcome) -> None:
    import optuna

    trial.set_user_attr("message", outcome.message)
    if not outcome.counted:
        trial.set_user_attr("not_counted", True)
        trial.set_user_attr("reason", "cancelled")
        _run_again(study, trial.params)
    state = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED,
             "fail": optuna.trial.TrialState.FAIL}[outcome.state]
    study.tell(trial, outcome.value if outcome.state == "complete" else None, state=state)


# ---------------------------------------------------------------------------------------------
# The worker process
# ---------------------------------------------------------------------------------------------
def _watch(stop_new, cancel, current: list, done: threading.Event) -> None:
    """Stop the running trial when the supervisor cancels or is gone (killed)."""
    parent = multiprocessing.parent_process()
    while not done.wait(0.2):
        orphaned = parent is not None and not parent.is_alive()
        if cancel.is_set() or orphaned:
            if orphaned:
                stop_new.set()
                cancel.set()
            if current and current[0] is not None:
                current[0].stop()


def worker_main(out: str, index: int, stop_new, cancel, threads: int) -> None:
    from optuna.storages.journal import JournalFileOpenLock

    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl+C reaches the supervisor, which cancels cleanly
    import torch
    torch.set_num_threads(threads)
    out_path = Path(out)
    spec = read_spec(out_path)
    space = spec.parsed_space()
    seen = len(open_study(out_path, spec).get_trials(deepcopy=False))
    # A different seed per worker and per resume, so parallel or resumed workers do not repeat draws.
    study = open_study(out_path, spec, sampler=make_sampler(spec, space, spec.train.seed + 7919 * index + seen))
    lock = JournalFileOpenLock(str(out_path / ASK_LOCK))
    data_cache: dict = {}
    current: list = [None]
    done = threading.Event()
    threading.Thread(target=_watch, args=(stop_new, cancel, current, done), daemon=True).start()
    try:
        while not stop_new.is_set() and not cancel.is_set():
            lock.acquire()
            try:
                if sum(counts_toward_total(t) for t in study.get_trials(deepcopy=False)) >= spec.trials:
                    break
                trial = study.ask()
                trial.set_user_attr("worker_pid", os.getpid())
            finally:
                lock.release()
            outcome = run_trial(out_path, spec, space, trial, data_cache, current, cancel.is_set)
            tell(study, trial, outcome)
    finally:
        done.set()


# ---------------------------------------------------------------------------------------------
# The supervisor
# ---------------------------------------------------------------------------------------------
def _claim_folder(out: Path) -> None:
    """One supervisor per search folder; a pid file left by a killed one is taken over."""
    import psutil

    from app.core.errors import ConfigError

    pid_path = out / PID_FILE
    try:
        pid = int(pid_path.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid and pid != os.getpid() and psutil.pid_exists(pid):
        raise ConfigError(f"{out}: a search is already running there (process {pid}); follow it in the window, "
                          f"or stop it before resuming")
    pid_path.write_text(str(os.getpid()))


def _mark_interrupted(study, who: str, only_pids: set | None = None, counted: bool = False) -> int:
    """Trials left RUNNING by a process that is gone: failed, and run again unless `counted`."""
    import optuna

    marked = 0
    for t in study.get_trials(deepcopy=False):
        if t.state != optuna.trial.TrialState.RUNNING:
            continue
        if only_pids is not None and t.user_attrs.get("worker_pid") not in only_pids:
            continue
        storage = study._storage   # Optuna has no public way to fail another process's trial
        storage.set_trial_user_attr(t._trial_id, "message", who)
        if not counted:
            storage.set_trial_user_attr(t._trial_id, "not_counted", True)
            storage.set_trial_user_attr(t._trial_id, "reason", "interrupted")
        storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        if not counted:
            _run_again(study, t.params)
        marked += 1
    return marked


def _run_again(study, params: dict) -> None:
    """Queue an interrupted trial's settings, so a resumed search runs exactly them (a grid's
    sampler counts a failed point as visited and would otherwise never return to it)."""
    if params:
        study.enqueue_trial(params, user_attrs={"rerun": True})


def _start_worker(ctx, out: Path, index: int, stop_new, cancel, threads: int):
    process = ctx.Process(target=worker_main, args=(str(out), index, stop_new, cancel, threads),
                          name=f"search-worker-{index}", daemon=True)
    process.start()
    return process


def _reap(study, workers: list, ctx, out: Path, spec: SearchSpec, stop_new, cancel, restarts: list) -> list:
    """Workers that died: fail their trial with the exit code and start a replacement."""
    alive = []
    for index, process in workers:
        if process.is_alive():
            alive.append((index, process))
            continue
        if process.exitcode not in (0, None):
            _mark_interrupted(study, f"the worker process died (exit code {process.exitcode}; killed for memory?)",
                              only_pids={process.pid}, counted=True)
            left = spec.trials - sum(counts_toward_total(t) for t in study.get_trials(deepcopy=False))
            if left > 0 and not stop_new.is_set() and restarts[0] < MAX_WORKER_RESTARTS_PER_JOB * spec.jobs:
                restarts[0] += 1
                alive.append((index, _start_worker(ctx, out, index, stop_new, cancel, machine_threads(spec.jobs))))
    return alive


def supervise(out: Path, spec: SearchSpec, on_progress=None, cancel=None, poll_s: float = 0.5) -> SearchResult:
    from app.core.atomic import atomic_write_text

    _claim_folder(out)
    try:
        study = open_study(out, spec)
        resumed = _mark_interrupted(study, "interrupted: the search stopped before this trial finished; run again")
        ctx = multiprocessing.get_context("spawn")
        stop_new, cancel_all = ctx.Event(), ctx.Event()
        threads = machine_threads(spec.jobs)
        workers = [(i, _start_worker(ctx, out, i, stop_new, cancel_all, threads)) for i in range(spec.jobs)]
        restarts, t0, cancelled = [0], time.monotonic(), False
        try:
            while workers:
                if spec.timeout_s and time.monotonic() - t0 > spec.timeout_s:
                    stop_new.set()
                if cancel is not None and cancel.is_set() and not cancel_all.is_set():
                    cancelled = True
                    cancel_all.set()
                    stop_new.set()
                workers = _reap(study, workers, ctx, out, spec, stop_new, cancel_all, restarts)
                if on_progress is not None:
                    on_progress(progress_of(study, spec, time.monotonic() - t0))
                time.sleep(poll_s)
        except KeyboardInterrupt:
            cancelled = True
            cancel_all.set()
            stop_new.set()
        finally:
            _stop_workers(workers)
        rows = trial_rows(study)
        atomic_write_text(out / RESULTS, results_csv(rows))
        messages = [f"resumed: {resumed} interrupted trial(s) will run again"] if resumed else []
        return SearchResult(rows=rows, progress=progress_of(study, spec, time.monotonic() - t0), cancelled=cancelled,
                            best=best_row(rows, spec.direction), messages=messages)
    finally:
        (out / PID_FILE).unlink(missing_ok=True)


def _stop_workers(workers: list, grace_s: float = 60.0) -> None:
    """Workers stop between two training steps once cancelled; one that hangs is terminated."""
    deadline = time.monotonic() + grace_s
    for _, process in workers:
        while process.is_alive() and time.monotonic() < deadline:
            try:
                process.join(timeout=0.5)
            except KeyboardInterrupt:   # a second Ctrl+C: stop waiting
                deadline = 0
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
