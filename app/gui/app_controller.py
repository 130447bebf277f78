"""The application controller: what the window does, without a widget (a QObject).

It owns the current data and its DataConfig (`state.data_cfg`, the one copy), the current model
(`training.record`, the one copy: trained here or opened from a run directory), loading data and
runs, encoding the explored samples, saving, training through the TrainingController, and the
autosave recovery (finding a crashed session's autosave, reopening it, marking it as offered).
Each kind of background work has one Task (app/gui/workers.py): a new request supersedes the
previous one of its kind, and a change of data or model cancels what depended on the old one.
The window (app/gui/main_window.py) only shows what this reports.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.core.config import DataConfig
from app.core.errors import LatentExplorerError
from app.core.run import Run, open_with_data
from app.gui.run_io import is_run_dir
from app.gui.state import ExplorerState
from app.gui.training_controller import TrainingController
from app.gui.workers import Task, cancel_all_tasks, wait_for_tasks

NO_RECOVERY_ENV = "LATENT_EXPLORER_NO_RECOVERY"
PROGRESS_INTERVAL_S = 0.25   # the encoding reports its progress at most this often (one block is 1,024 samples)


_FROZEN_AT: set[str] = set()   # the moments of this process keep_long_lived_out_of_gc has frozen at


def keep_long_lived_out_of_gc(moment: str) -> None:
    """gc.freeze() once per `moment` ("data": the first data set is open; "training": the first
    training starts; "encoded": a model and its views are up): what exists then (the modules of
    torch, pyqtgraph and scikit-learn, the widgets; ~250,000 objects) stays out of Python's full
    collections, which traversed all of it on the GUI thread or, holding the GIL, on a worker:
    200-420 ms each, the window's worst stall while the maps computed (issue 12). Once per moment and process: objects frozen are never
    collected as cycles, so freezing at every encoding would keep each replaced map's items alive."""
    if moment not in _FROZEN_AT:
        _FROZEN_AT.add(moment)
        gc.freeze()


def progress_text(what: str, done: int, total: int, elapsed_s: float) -> str:
    """'Encoding 1,000,000 samples: 35 %, about 40 s left': the ETA extrapolates the rate so far."""
    text = f"{what}: {100.0 * done / total:.0f} %" if total > 0 else what
    if 0 < done < total and elapsed_s > 0:
        left = elapsed_s / done * (total - done)
        text += f", about {left:.0f} s left" if left < 120 else f", about {left / 60:.0f} min left"
    return text


def shape_text(shape) -> str:
    return "x".join(map(str, shape))


class AppController(QObject):
    dataLoaded = Signal()            # a requested data set became state.data
    dataLoadFailed = Signal(str)     # the readable reason; the previous data is kept
    runOpened = Signal(str)          # a run directory became the current model
    runOpenFailed = Signal(str)
    runSaved = Signal(str)           # the run directory written
    encodingFinished = Signal()      # state.encoded now matches the current model and data
    recoveryFound = Signal(object)   # the newest Recoverable autosave of a crashed session
    busyChanged = Signal(str)        # what the background work is doing now, "" when idle
    encodingProgressed = Signal(int, int, str)   # done, total, text with the ETA; (0, 0, "") when it ends
    loadingChanged = Signal(str)     # a data or run load started ("Loading digits…") or ended ("")

    def __init__(self, state: ExplorerState, parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.training = TrainingController(state, self)
        self.closed = False
        # One Task per kind of work: a newer request of the kind supersedes the older one.
        self._loading = Task(self)     # data sets and runs: the newest request wins
        self._encoding = Task(self, "Encoding…")
        self._saving = Task(self)
        self._scanning = Task(self, "Looking for autosaves…")
        for task in (self._loading, self._encoding, self._saving, self._scanning):
            task.runningChanged.connect(self._busy_changed)
        self._encoding.progressed.connect(self._encoding_progressed)
        self._encoding.runningChanged.connect(lambda running: running or self.encodingProgressed.emit(0, 0, ""))
        state.dataChanged.connect(self._encoding.cancel)        # codes of the old data are of no use
        state.snapshotChanged.connect(self._encoding.cancel)    # nor those of the old model
        self.training.trainingStopped.connect(lambda _finished: self.encode_explored())
        from app.gui.live_run import LiveRun   # opening a run still training follows it (issue 14)
        self.live = LiveRun(self)

    # --- what is current ------------------------------------------------------------------------
    @property
    def record(self) -> Run | None:
        """The model being explored, for saving (trained here or opened)."""
        return self.training.record

    @property
    def busy(self) -> bool:
        return bool(self.busy_text)

    @property
    def busy_text(self) -> str:
        running = [t.text for t in (self._saving, self._loading, self._encoding, self._scanning) if t.running]
        return running[0] if running else ""

    def _busy_changed(self, _running: bool = False) -> None:
        self.busyChanged.emit(self.busy_text)

    def blocked_by_training(self, what: str) -> bool:
        if self.training.running:
            self.state.warn(f"Stop training before {what}")
            return True
        return False

    # --- data -----------------------------------------------------------------------------------
    def open_path(self, path: str, split: DataConfig | None = None) -> None:
        """A run directory opens as a run; anything else (a built-in name, a file, a folder) as data."""
        if is_run_dir(path):
            self.open_run(path)
        else:
            self.open_data(path, split)

    def open_data(self, spec: str, split: DataConfig | None = None) -> None:
        """Load `spec` in the background with the settings of `split` (every field but the spec: the
        data panel's reading settings and the training form's split, DataPanel.load_config). On
        failure the current data and model stay."""
        if self.closed or self.blocked_by_training("opening other data"):
            return
        cfg = dataclasses.replace(split or DataConfig(), spec=spec)
        name = Path(spec).name or spec
        from app.core.data import load_dataset

        self._loading.start(lambda _task: load_dataset(cfg), text=f"Loading {name}…",
                            on_done=lambda data: self._data_loaded(data, cfg),
                            on_error=lambda message: self._data_failed(message, spec))
        self.loadingChanged.emit(f"Loading {name}…")

    def _data_failed(self, message: str, spec: str) -> None:
        self.loadingChanged.emit("")
        kept = f" The current data ({self.state.data.name}) is kept." if self.state.data is not None else ""
        self.state.error(f"Could not open {spec}: {message.rstrip('.')}.{kept}")
        self.dataLoadFailed.emit(message)

    def _data_loaded(self, data, cfg: DataConfig) -> None:
        self.loadingChanged.emit("")
        self.state.info(f"Loaded {data.summary()}")   # first, so a warning about the model shows after it
        self.set_data(data, cfg)
        keep_long_lived_out_of_gc("data")
        if data.skipped:
            self.state.warn(f"{len(data.skipped)} files in {data.name} were skipped (see the Data panel)")
        self.dataLoaded.emit()

    def set_data(self, data, cfg: DataConfig) -> None:
        """Make `data` current. The one place a data change clears what belonged to the old data: the
        state clears selection, hover and encodings (ExplorerState.set_data); a model that no longer
        fits is put aside here, with its loss curves, so no view pairs it with data of another shape."""
        snapshot, record = self.state.snapshot, self.record
        fits = snapshot is not None and data.fits(snapshot.model)
        if snapshot is not None and not fits:
            self.state.set_snapshot(None)
            self.state.set_history([])
            self.state.warn(f"The current model expects samples of {shape_text(snapshot.info['input_shape'])} but "
                            f"{data.name} has {shape_text(data.sample_shape)}: train a new model"
                            + (" (save the current one first with File > Save run as…)"
                               if record is not None and record.unsaved else ""))
        elif fits and record is not None:
            # The model still explores this data: analyses keep using the split it was trained with.
            cfg = dataclasses.replace(cfg, val_fraction=record.data_cfg.val_fraction,
                                      split_seed=record.data_cfg.split_seed,
                                      normal_classes=record.data_cfg.normal_classes)
        self.state.set_data(data, cfg, seed=cfg.split_seed)
        if fits:
            self.encode_explored()

    # --- encoding -------------------------------------------------------------------------------
    def encode_explored(self) -> None:
        """Encode data.x[view_idx] with the current snapshot in the background, a block at a time
        (session.ExploredRows: no copy of all explored samples), reporting progress with an ETA
        (encodingProgressed, and the status bar's busy text). A newer encoding, new data, a new model
        or cancel_encoding() stops it at the next block (so what arrives always matches the state)."""
        snapshot, data = self.state.snapshot, self.state.data
        if self.closed or snapshot is None or data is None or not data.fits(snapshot.model):
            return
        from app.core.session import ExploredRows

        generation = self.state.generation
        view_idx = self.state.view_idx
        rows = ExploredRows(data.x, None if len(view_idx) == data.n else view_idx)   # all of them: x itself
        what = f"Encoding {len(rows):,} samples"

        def work(task):
            from app.core.analysis.api import encode

            start, last = time.perf_counter(), [0.0]

            def progress(done: int, total: int) -> None:
                now = time.perf_counter()
                if done >= total or now - last[0] >= PROGRESS_INTERVAL_S:
                    last[0] = now
                    task.progress(done, total, progress_text(what, done, total, now - start))

            encoded = encode(snapshot.model, rows, task.should_stop, progress)
            # The views' per-dimension statistics, here rather than on the GUI thread when the codes
            # arrive (kept by latent.dimension_stats for these arrays: ~1 s at 1,000,000 codes).
            from app.core.latent import dimension_stats

            dimension_stats(encoded.codes, encoded.logvar)
            return encoded

        def done(encoded) -> None:
            if self.state.set_encoded(encoded, generation):
                keep_long_lived_out_of_gc("encoded")
                self.encodingFinished.emit()

        self._encoding.start(work, text=f"{what}…", on_done=done,
                             on_error=lambda message: self.state.error(f"Could not encode the data: {message}"))
        self.encodingProgressed.emit(0, len(rows), f"{what}…")

    def _encoding_progressed(self, done: int, total: int, text: str) -> None:
        self._encoding.text = text
        self._busy_changed()
        self.encodingProgressed.emit(done, total, text)

    @property
    def encoding(self) -> bool:
        return self._encoding.running

    def cancel_encoding(self) -> bool:
        """Stop the running encoding at its next block; the views keep showing no codes until the
        next encoding (a smaller number explored, Encode in the Data panel, a new model)."""
        if not self._encoding.cancel():
            return False
        self.state.info("Encoding cancelled: the maps and analyses wait for codes (press Encode in the Data "
                        "panel, or explore fewer samples)")
        return True

    def set_explore_limit(self, limit: int) -> None:
        """Explore at most `limit` samples (state.EXPLORE_ALL: all): the seeded subset is drawn again and,
        when the model fits the data, encoded (after training while a model trains)."""
        if not self.state.set_explore_limit(limit):
            return
        if not self.training.running:
            self.encode_explored()

    # --- training -------------------------------------------------------------------------------
    def start_training(self, split: DataConfig, model_cfg, train_cfg, normal_classes: str | None = None) -> bool:
        """Train a new model on the current data with the form's settings; `normal_classes` (e.g.
        "0,1,2") trains on those classes only (the Anomalies tab's retrain)."""
        if self.training.running or self.closed:
            return False
        if self.state.data is None or self.state.data_cfg is None:
            self.state.error("Load data before training (File > Open data…, or pick a built-in data set)")
            return False
        data_cfg = dataclasses.replace(self.state.data_cfg, val_fraction=split.val_fraction,
                                       split_seed=split.split_seed,
                                       normal_classes=split.normal_classes if normal_classes is None
                                       else normal_classes)
        keep_long_lived_out_of_gc("training")   # the views and torch are loaded by now
        if not self.training.start(data_cfg, model_cfg, train_cfg):
            return False
        self.state.data_cfg = data_cfg    # the split the analyses use for this model
        return True

    # --- runs -----------------------------------------------------------------------------------
    def open_run(self, path: str) -> None:
        """Open a run directory and its data in the background; the data is optional."""
        if self.closed or self.blocked_by_training("opening a run"):
            return
        self._loading.start(lambda _task: open_with_data(path), text=f"Opening {Path(path).name}…",
                            on_done=self._run_opened, on_error=lambda message: self._run_failed(message, path))

    def _run_failed(self, message: str, path: str) -> None:
        self.loadingChanged.emit("")      # a data load it superseded may have left the indicator on
        self.state.error(f"Could not open the run {path}: {message}")
        self.runOpenFailed.emit(message)

    def _run_opened(self, run: Run) -> None:
        from app.core.snapshot import ModelSnapshot

        if self.training.running:
            self.state.warn(f"Ignored the run {run.path}: training started meanwhile")
            return
        data = run.data
        self.loadingChanged.emit("")
        self.state.set_snapshot(None)   # no view may pair the new model with the old data or back
        if data is not None:
            self.state.set_data(data, run.data_cfg, seed=run.data_cfg.split_seed)
        elif self.state.data is not None:
            self.state.data_cfg = dataclasses.replace(self.state.data_cfg or DataConfig(),
                                                      val_fraction=run.data_cfg.val_fraction,
                                                      split_seed=run.data_cfg.split_seed)
        epochs = len(run.history) or int((run.meta.get("metrics") or {}).get("epoch") or 0)
        self.training.record = run
        self.state.run_seed = run.train_cfg.seed   # the maps repeat exactly for this run
        self.state.set_snapshot(ModelSnapshot.of(run.model, self.state.next_generation(), epochs, run.modality))
        self.state.set_history(run.history)
        self.state.info(f"Opened the run {run.path}: {run.model_cfg.kind}, latent size {run.model.latent_dim}, "
                        f"{epochs} epochs")
        if run.data_error:
            self._explain_missing_data(run, run.data_error)
        self.encode_explored()
        self.runOpened.emit(str(run.path))

    def _explain_missing_data(self, run, error: str) -> None:
        here = self.state.data
        fits = here is not None and here.fits(run.model)
        kept = (f"; exploring it with the data already open ({here.name})" if fits else
                "; its history and traversals are shown, but nothing can be encoded until you open data "
                "of the same shape")
        self.state.error(f"Opened the model from {run.path}, but its data could not be loaded: {error}{kept}")

    def save_run_to(self, path: str) -> None:
        """Write the current model as a run directory in the background."""
        record = self.record
        if record is None:
            self.state.warn("There is no model to save yet: train one or open a run")
            return
        if self.training.running:
            self.state.warn("Stop training before saving, so the saved weights are those of a finished step")
            return

        def saved(run_dir) -> None:
            self.state.info(f"Saved the run to {run_dir}")
            self.runSaved.emit(str(run_dir))

        self._saving.start(lambda _task: record.save(path), text=f"Saving {Path(path).name}…",
                           on_done=saved, on_error=lambda message: self.state.error(f"Could not save the run: {message}"))

    def save_now(self, record: Run, path: str) -> bool:
        """Save on this thread (the window is about to close); False with the reason shown on failure."""
        try:
            record.save(path)
        except LatentExplorerError as exc:
            self.state.error(f"Could not save the run: {exc}")
            return False
        return True

    # --- recovery after a crash -----------------------------------------------------------------
    def look_for_recovery(self) -> None:
        """If an earlier window died while training, report its last autosave (recoveryFound);
        each candidate is test-loaded in the background."""
        if os.environ.get(NO_RECOVERY_ENV) == "1" or self.closed:
            return
        from app.core.autosave import find_recoverable, prune_sessions

        def scan(_task):
            prune_sessions()
            return find_recoverable()

        self._scanning.start(scan, on_done=lambda found: found and not self.closed and self.recoveryFound.emit(found[0]),
                             on_error=lambda message: self.state.warn(f"Could not look for autosaves: {message}"))

    def reopen_autosave(self, found) -> None:
        """Open a crashed session's autosave, and mark the session so it is offered only once."""
        from app.core.atomic import atomic_write_text
        from app.core.autosave import CLEAN_EXIT

        self.open_run(str(found.checkpoint))
        atomic_write_text(Path(found.session_dir) / CLEAN_EXIT, "reopened\n")

    def discard_autosave(self, found) -> None:
        from app.core.autosave import discard_session

        discard_session(found.session_dir)

    # --- closing --------------------------------------------------------------------------------
    def shutdown_training(self, timeout_ms: int) -> bool:
        """Stop training and wait for its thread; False if it did not end in time."""
        return not self.training.running or self.training.shutdown(timeout_ms)

    def close(self, timeout_ms: int = 10_000) -> None:
        """The window closes normally: stop all background work promptly, and write the autosave's
        clean-exit marker (nothing to offer next time)."""
        self.closed = True
        cancel_all_tasks()
        wait_for_tasks(timeout_ms)
        self.training.close_autosave(clean=True)
