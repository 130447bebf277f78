"""Hyperparameter search: grid, random or Bayesian (TPE) over the training form's settings.

    SEARCH_DIR/search.json          what is searched: fixed configs, the TOML space, method, objective
    SEARCH_DIR/journal.log          Optuna's journal-file storage: an append-only log that survives a
                                    crash and is shared safely by parallel processes, without a server
                                    (Optuna's FAQ advises against SQLite for parallel trials)
    SEARCH_DIR/trials/trial-NNNN/   one ordinary run directory per trial: any trial opens in the window
    SEARCH_DIR/results.csv          the trial table, rewritten when the search stops

Trials run in `jobs` spawned worker processes, each asking Optuna for the next trial under a file
lock (so exactly `trials` are run), training it with the normal Trainer, reporting the validation
loss after every epoch to a pruner (successive halving, or Hyperband, which beat the median pruner
in Optuna's benchmarks; Li et al. 2018) and telling the result. A trial that fails (NaN loss, out of
memory, a setting the model refuses) is recorded failed with its message and the search goes on.
Running `search` again on the same folder resumes it: trials interrupted by a crash or a cancel are
marked so and run again; finished ones are kept.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from app.core.config import DataConfig, ModelConfig, TrainConfig, from_dict, to_dict, validate
from app.core.errors import ConfigError
from app.core.search_space import SearchSpace, parse_space

METHODS = ("grid", "random", "bayes")
OBJECTIVES = {"val_loss": "minimize", "reconstruction_error": "minimize", "mig": "maximize",
              "anomaly_auc": "maximize", "probe_accuracy": "maximize"}
PRUNERS = ("hyperband", "halving", "none")
SPEC_FILE = "search.json"
JOURNAL = "journal.log"
TRIALS_DIR = "trials"
RESULTS = "results.csv"
PID_FILE = "search.pid"
ASK_LOCK = "ask.lock"
STUDY_NAME = "search"
SPEC_FORMAT = "latent-explorer-search"
MAX_WORKER_RESTARTS_PER_JOB = 2


@dataclass
class SearchSpec:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    space: str                     # the TOML text of the space
    method: str = "bayes"
    trials: int = 20
    jobs: int = 1
    objective: str = "val_loss"
    timeout_s: float = 0.0         # 0 = no limit; after it no new trial starts, running ones finish
    pruner: str = "hyperband"
    anomaly_classes: str = ""      # labels scored as anomalies (objective anomaly_auc)

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.objective]

    def parsed_space(self) -> SearchSpace:
        return parse_space(self.space, "search space")

    def to_json(self) -> dict:
        out = {k: getattr(self, k) for k in ("space", "method", "trials", "jobs", "objective", "timeout_s",
                                              "pruner", "anomaly_classes")}
        out.update(format=SPEC_FORMAT, data=to_dict(self.data), model=to_dict(self.model), train=to_dict(self.train))
        return out

    @classmethod
    def from_json(cls, blob: dict, where: str) -> "SearchSpec":
        if not isinstance(blob, dict) or blob.get("format") != SPEC_FORMAT:
            raise ConfigError(f"{where}: not a Latent Explorer search description")
        try:
            return cls(data=from_dict(DataConfig, blob["data"], strict=False),
                       model=from_dict(ModelConfig, blob["model"], strict=False),
                       train=from_dict(TrainConfig, blob["train"], strict=False),
                       **{k: blob[k] for k in ("space", "method", "trials", "jobs", "objective", "timeout_s",
                                               "pruner", "anomaly_classes")})
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{where}: incomplete search description ({exc})") from None

    def identity(self) -> dict:
        """What must agree for a search folder to be resumed (trials, jobs and timeout may change)."""
        blob = self.to_json()
        for key in ("trials", "jobs", "timeout_s"):
            blob.pop(key)
        return blob


def check_spec(spec: SearchSpec) -> SearchSpace:
    """Every setting of the search itself, before any process starts."""
    if spec.method not in METHODS:
        raise ConfigError(f"--method {spec.method!r} is not one of {', '.join(METHODS)}")
    if spec.objective not in OBJECTIVES:
        raise ConfigError(f"--objective {spec.objective!r} is not one of {', '.join(OBJECTIVES)}")
    if spec.pruner not in PRUNERS:
        raise ConfigError(f"--pruner {spec.pruner!r} is not one of {', '.join(PRUNERS)}")
    if not 1 <= spec.trials <= 100000 or not 1 <= spec.jobs <= 256:
        raise ConfigError(f"--trials ({spec.trials}) must be 1..100000 and --jobs ({spec.jobs}) 1..256")
    if spec.timeout_s < 0 or not math.isfinite(spec.timeout_s):
        raise ConfigError(f"--timeout {spec.timeout_s} must be a number of seconds >= 0")
    for cfg in (spec.data, spec.model, spec.train):
        validate(cfg)
    if spec.data.val_fraction <= 0:
        raise ConfigError("a search scores every trial on held-out data: set --val-fraction above 0")
    space = spec.parsed_space()
    if spec.method == "grid" and space.grid_size() < spec.trials:
        spec.trials = space.grid_size()   # a grid has no more points than this; more trials would repeat them
    return space


def check_data_fits_objective(spec: SearchSpec, data) -> None:
    """Objectives that need labels or factors say so before the first trial instead of failing each."""
    if spec.objective in ("probe_accuracy", "anomaly_auc") and data.y is None:
        raise ConfigError(f"--objective {spec.objective} needs labelled data; {data.name} has no labels "
                          f"(choose val_loss or reconstruction_error)")
    if spec.objective == "mig" and data.factors is None:
        raise ConfigError(f"--objective mig needs ground-truth factors; {data.name} has none (try --data shapes)")
    if spec.objective == "anomaly_auc":
        if not spec.anomaly_classes:
            raise ConfigError("--objective anomaly_auc needs --anomaly-classes: the labels that count as anomalies")
        from app.core.analysis.anomaly import parse_classes
        parse_classes(spec.anomaly_classes, data)


# ---------------------------------------------------------------------------------------------
# The search folder
# ---------------------------------------------------------------------------------------------
def read_spec(out: str | Path) -> SearchSpec:
    path = Path(out) / SPEC_FILE
    if not path.exists():
        raise ConfigError(f"{out}: holds no search ({SPEC_FILE} is missing); start one with main.py search ... --out {out}")
    try:
        blob = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: unreadable search description ({str(exc)[:120]})") from None
    return SearchSpec.from_json(blob, str(path))


def prepare_search_dir(out: str | Path, spec: SearchSpec | None) -> SearchSpec:
    """A new folder gets `spec`; an existing one is resumed and must describe the same search."""
    from app.core.atomic import atomic_write_text

    out = Path(out)
    if (out / SPEC_FILE).exists():
        stored = read_spec(out)
        if spec is None:
            spec = stored
        elif spec.identity() != stored.identity():
            differing = sorted(k for k in spec.identity() if spec.identity()[k] != stored.identity()[k])
            raise ConfigError(f"{out}: holds a different search ({', '.join(differing)} differ); resume it with the "
                              f"same settings, or choose another --out")
    elif spec is None:
        raise ConfigError(f"{out}: holds no search ({SPEC_FILE} is missing)")
    check_spec(spec)
    try:
        (out / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / SPEC_FILE, json.dumps(spec.to_json(), indent=2))
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the search folder ({exc.strerror or exc}); choose a writable --out") from None
    return spec


def open_study(out: str | Path, spec: SearchSpec, sampler=None, create: bool = True):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = str(Path(out) / JOURNAL)
    # The open-file lock works on every OS (the default symlink lock does not on Windows).
    storage = JournalStorage(JournalFileBackend(journal, lock_obj=JournalFileOpenLock(journal + ".lock")))
    if not create:
        return optuna.load_study(study_name=STUDY_NAME, storage=storage)
    return optuna.create_study(study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=make_pruner(spec),
                               direction=spec.direction, load_if_exists=True)


def make_sampler(spec: SearchSpec, space: SearchSpace, seed: int):
    import optuna

    if spec.method == "grid":
        return _GridSampler(space.grid(), seed=seed)
    if spec.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # TPE (Bergstra et al. 2011) after a few random start-up trials, fewer for short searches.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, spec.trials // 3)))


def _grid_sampler_class():
    import optuna

    class GridWithoutStop(optuna.samplers.GridSampler):
        def after_trial(self, study, trial, state, values) -> None:
            """Optuna's grid calls study.stop() when the grid is used up, which only works inside
            study.optimize(); our workers ask and tell, and stop on the trial count instead."""

    return GridWithoutStop


def _GridSampler(grid: dict, seed: int):
    return _grid_sampler_class()(grid, seed=seed)


def make_pruner(spec: SearchSpec):
    import optuna

    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    if spec.pruner == "halving":  # successive halving (Jamieson & Talwalkar 2016; ASHA, Li et al. 2020)
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    searched_epochs = "epochs" in spec.parsed_space().params
    return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3,
                                          max_resource="auto" if searched_epochs else spec.train.epochs)


def counts_toward_total(trial) -> bool:
    """Interrupted and cancelled trials are queued to run again (WAITING until a worker takes them),
    so neither they nor their queued copies use up the budget until they run."""
    return not trial.user_attrs.get("not_counted", False) and trial.state.name != "WAITING"


# ---------------------------------------------------------------------------------------------
# Progress, cancellation and the table
# ---------------------------------------------------------------------------------------------
@dataclass
class SearchProgress:
    total: int
    complete: int
    pruned: int
    failed: int
    running: int
    best_value: float | None
    best_trial: int | None
    elapsed_s: float
    eta_s: float | None

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed

    def line(self, objective: str) -> str:
        best = "" if self.best_value is None else f", best {objective} {self.best_value:.5g} (trial {self.best_trial})"
        eta = "" if self.eta_s is None else f", ETA {_clock(self.eta_s)}"
        return (f"trials {self.finished}/{self.total} ({self.complete} complete, {self.pruned} pruned, "
                f"{self.failed} failed, {self.running} running){best}, {_clock(self.elapsed_s)} elapsed{eta}")


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def trial_rows(study) -> list[dict]:
    """One row per trial: trial, state, objective value, seconds, epochs, each setting, message, run_dir."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = t.state.name.lower()
        if state == "fail" and t.user_attrs.get("not_counted"):
            state = t.user_attrs.get("reason", "interrupted")
        elif state == "fail":
            state = "failed"
        end = t.datetime_complete or (None if t.datetime_start is None else _now(t.datetime_start))
        seconds = None if t.datetime_start is None or end is None else (end - t.datetime_start).total_seconds()
        row = {"trial": t.number, "state": state, "value": t.value, "seconds": seconds,
               "epochs": len(t.intermediate_values)}
        row.update(t.params)
        row.update(message=t.user_attrs.get("message", ""), run_dir=t.user_attrs.get("run_dir", ""),
                   started=None if t.datetime_start is None else t.datetime_start.isoformat(timespec="seconds"))
        rows.append(row)
    return rows


def _now(like):
    import datetime as _dt
    return _dt.datetime.now(like.tzinfo)


def progress_of(study, spec: SearchSpec, elapsed_s: float) -> SearchProgress:
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials if counts_toward_total(t)]
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL") and counts_toward_total(t)
            and t.datetime_start and t.datetime_complete]
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    best = None
    if complete:
        best = (min if spec.direction == "minimize" else max)(complete, key=lambda t: t.value)
    remaining = max(0, spec.trials - len(done) - states.count("RUNNING"))
    mean_s = (sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done) / len(done)) if done else None
    running = states.count("RUNNING")
    eta = None if mean_s is None else mean_s * (remaining + running * 0.5) / max(spec.jobs, 1)
    return SearchProgress(total=spec.trials, complete=states.count("COMPLETE"), pruned=states.count("PRUNED"),
                          failed=states.count("FAIL"), running=running, best_value=None if best is None else best.value,
                          best_trial=None if best is None else best.number, elapsed_s=elapsed_s, eta_s=eta)


def results_csv(rows: list[dict]) -> str:
    import csv
    import io

    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return out.getvalue()


def format_rows(rows: list[dict], objective: str) -> str:
    """A plain-text table for the terminal."""
    if not rows:
        return "no trials"
    not_settings = ("trial", "state", "value", "seconds", "epochs", "message", "run_dir", "started")
    settings = [k for k in rows[0] if k not in not_settings]
    for row in rows[1:]:
        settings += [k for k in row if k not in settings and k not in not_settings]
    header = ["trial", "state", objective, "seconds", "epochs", *settings]
    lines = [header]
    for r in rows:
        cells = [str(r["trial"]), r["state"], "" if r["value"] is None else f"{r['value']:.5g}",
                 "" if r["seconds"] is None else f"{r['seconds']:.1f}", str(r["epochs"])]
        cells += ["" if r.get(k) is None else (f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k])) for k in settings]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    failed = [f"  trial {r['trial']}: {r['message']}" for r in rows if r["state"] == "failed" and r["message"]]
    return "\n".join(text + (["failed trials:"] + failed if failed else []))


@dataclass
class SearchResult:
    rows: list[dict]
    progress: SearchProgress
    cancelled: bool = False
    best: dict | None = None
    messages: list[str] = field(default_factory=list)


def read_search(out: str | Path) -> tuple[SearchSpec, list[dict]]:
    """The spec and trial table of a search folder, running or not (the window polls this)."""
    spec = read_spec(out)
    if not (Path(out) / JOURNAL).exists():
        return spec, []
    try:
        study = open_study(out, spec, create=False)
    except KeyError:  # the journal exists but the study was not created yet
        return spec, []
    return spec, trial_rows(study)


def progress_from_rows(rows: list[dict], spec: SearchSpec) -> SearchProgress:
    """Progress of a search another process runs, from its trial table (the window follows it)."""
    counted = [r for r in rows if r["state"] in ("complete", "pruned", "failed", "running")]
    states = [r["state"] for r in counted]
    finished = [r for r in counted if r["state"] != "running" and r["seconds"] is not None]
    best = best_row(rows, spec.direction)
    running = states.count("running")
    remaining = max(0, spec.trials - len(counted))
    mean_s = sum(r["seconds"] for r in finished) / len(finished) if finished else None
    elapsed = _elapsed_since_first_start(counted)
    return SearchProgress(total=spec.trials, complete=states.count("complete"), pruned=states.count("pruned"),
                          failed=states.count("failed"), running=running,
                          best_value=None if best is None else best["value"],
                          best_trial=None if best is None else best["trial"], elapsed_s=elapsed,
                          eta_s=None if mean_s is None else mean_s * (remaining + running * 0.5) / max(spec.jobs, 1))


def _elapsed_since_first_start(rows: list[dict]) -> float:
    import datetime as _dt

    """Wall time from the first trial's start to now, or to the last trial's end once none runs."""
    timed = [(_dt.datetime.fromisoformat(r["started"]), r) for r in rows if r.get("started")]
    if not timed:
        return 0.0
    first = min(start for start, _ in timed)
    if any(r["state"] == "running" for _, r in timed):
        end = _dt.datetime.now(first.tzinfo)
    else:
        end = max(start + _dt.timedelta(seconds=r["seconds"] or 0.0) for start, r in timed)
    return max(0.0, (end - first).total_seconds())


def best_row(rows: list[dict], direction: str) -> dict | None:
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    if not done:
        return None
    return (min if direction == "minimize" else max)(done, key=lambda r: r["value"])


def run_search(out: str | Path, spec: SearchSpec | None = None, on_progress: Callable[[SearchProgress], None] | None = None,
               cancel=None, poll_s: float = 0.5) -> SearchResult:
    """Run (or resume) the search in `out` with spec.jobs worker processes; returns the table.
    `cancel`: a threading.Event; setting it (or Ctrl+C) stops running trials between steps and
    keeps the finished ones. Trials interrupted that way are run again when the search resumes."""
    from app.core.search_workers import supervise

    spec = prepare_search_dir(out, spec)
    from app.core.data import load_dataset
    check_data_fits_objective(spec, load_dataset(spec.data))
    return supervise(Path(out), spec, on_progress=on_progress, cancel=cancel, poll_s=poll_s)


def spec_from_settings(data: DataConfig, model: ModelConfig, train: TrainConfig, space_text: str, **options) -> SearchSpec:
    """The one constructor the CLI, the window and the tests use."""
    unknown = set(options) - {f.name for f in dataclasses.fields(SearchSpec)}
    if unknown:
        raise ConfigError(f"unknown search option(s): {', '.join(sorted(unknown))}")
    return SearchSpec(data=data, model=model, train=train, space=space_text, **options)


def machine_threads(jobs: int) -> int:
    """Torch threads per worker so that the workers together use the machine's cores once."""
    return max(1, (os.cpu_count() or 1) // max(jobs, 1))

