"""A training session: everything around Trainer.run() that the CLI, the window and the tests share.

    session = TrainingRun(data_cfg, model_cfg, train_cfg, out="runs/digits-vae")
    for event in session.events():     # Progress, Epoch, TrainingWarning, Saved, Finished
        print(event)

The session prepares the data split, the model and the trainer; autosaves each epoch (two
generations); warns once when a VAE's posterior collapses; keeps the metrics rows and the summary
model.json records; and at the end writes the run directory, or rescues the model under the
autosave root when that folder refuses it. `cmd_train` prints these events, the window's
TrainWorker forwards them as signals: both get the same run directory (tests/core/test_training_run.py).

Pause and stop go through `control` (a TrainControl, thread-safe), checked between steps.
Without `out` the session saves nothing at the end: the window leaves that to File > Save run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from app.core.config import DataConfig, ModelConfig, TrainConfig, validate
from app.core.data import load_dataset
from app.core.data.dataset import Dataset
from app.core.errors import CheckpointError
from app.core.models.base import Autoencoder
from app.core.run import Run, training_summary
from app.core.trainer import EpochResult, TrainControl, Trainer, TrainFinished, TrainProgress


# ---- events --------------------------------------------------------------------------------------

@dataclass
class Progress:
    """Within an epoch, throttled by the trainer (about 10 per second)."""
    progress: TrainProgress


@dataclass
class Epoch:
    """One finished epoch: the trainer's result and its metrics row (what metrics.csv gets)."""
    result: EpochResult
    row: dict
    epochs: int                 # epochs planned in all


@dataclass
class TrainingWarning:
    """Shown to the user; training goes on (a setting that probably does nothing, a failed
    autosave, posterior collapse)."""
    text: str


@dataclass
class Saved:
    path: Path
    kind: str                   # autosave | final | rescued


@dataclass
class Finished:
    reason: str                 # completed | early_stopped | cancelled | diverged | failed
    message: str
    ok: bool                    # training itself ended well (the save may still have failed)
    epochs_run: int
    best_epoch: int | None
    saved_to: Path | None       # the run directory written (out, or the rescue folder), None if none
    save_error: str | None      # why the final save into `out` failed


TrainingEvent = Progress | Epoch | TrainingWarning | Saved | Finished


# ---- the session ---------------------------------------------------------------------------------

class TrainingRun:
    def __init__(self, data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig, *,
                 data: Dataset | None = None, model: Autoencoder | None = None, out: str | Path | None = None,
                 autosave_dir: str | Path | None = None, earlier_history: list[dict] | None = None):
        """Load (or reuse) the data, split it, build (or continue) the model and a trainer.
        out: the run directory written at the end (autosaves go to out/autosave unless
        autosave_dir says otherwise); earlier_history: metrics rows of epochs done before (resume)."""
        from app.core.data.splits import fit_standardisation, split_for_config
        from app.core.session import make_model

        validate(data_cfg)
        validate(train_cfg)
        self.data_cfg, self.model_cfg, self.train_cfg = data_cfg, model_cfg, train_cfg
        self.data = data if data is not None else load_dataset(data_cfg)
        # Normal classes only in training (anomaly work); a table's scale fitted on training rows only.
        self.train_idx, self.val_idx = split_for_config(self.data, data_cfg)
        fit_standardisation(self.data, self.train_idx)
        self.model = model if model is not None else make_model(model_cfg, self.data, train_cfg.seed)
        from app.core.data.mmap import take_rows  # memory-mapped data stays on disk (a lazy view)

        self.trainer = Trainer(self.model, take_rows(self.data.x, self.train_idx),
                               take_rows(self.data.x, self.val_idx) if len(self.val_idx) else None, train_cfg)
        self.out = Path(out) if out is not None else None
        self.autosave_dir = Path(autosave_dir) if autosave_dir is not None else (
            self.out / "autosave" if self.out is not None else None)
        self.earlier_history = list(earlier_history or [])
        self.control = TrainControl()
        self.finished: TrainFinished | None = None
        self.autosaver = None
        self._pending: list[TrainingEvent] = []
        self._collapse_warned = False
        self.live = None            # a LiveWriter while training into `out` (app/core/live_writer.py)
        # Added to the metrics summary model.json keeps: a search trial's number and its outcome
        # ("finished": "pruned" for a trial the pruner stopped through `control`).
        self.summary_extra: dict = {}

    def write_to(self, out: str | Path, autosave_dir: str | Path | None = None) -> None:
        """Save into `out` at the end (autosaves into out/autosave unless autosave_dir is given)."""
        self.out = Path(out)
        self.autosave_dir = Path(autosave_dir) if autosave_dir is not None else self.out / "autosave"

    # -- what the session knows ---------------------------------------------------------------
    @property
    def validation_x(self) -> np.ndarray:
        """The samples the collapse check encodes: the validation split, else the training data."""
        return self.trainer.validation_x if self.trainer.validation_x is not None else self.trainer.train_x

    def describe(self) -> str:
        return (f"training {self.model.kind} ({sum(p.numel() for p in self.model.parameters()):,} parameters) on "
                f"{self.trainer.device_name}: {len(self.train_idx):,} train / {len(self.val_idx):,} validation")

    @property
    def history(self) -> list[dict]:
        """Every epoch's metrics row: the earlier ones (resume), then this session's."""
        from app.core.checkpoint import metrics_rows

        return self.earlier_history + metrics_rows(self.trainer.history)

    def metrics(self) -> dict:
        return {**training_summary(self.history, self.trainer.best_epoch,
                                   self.finished.reason if self.finished is not None else None), **self.summary_extra}

    @property
    def run(self) -> Run:
        """The model as a Run (weights, description, rows) as it stands now."""
        from app.core.session import data_info

        return Run(model=self.model, data_cfg=self.data_cfg, model_cfg=self.trainer.model.cfg,
                   train_cfg=self.train_cfg, modality=self.data.modality, data_info=data_info(self.data),
                   history=self.history, metrics=self.metrics(), training_state=self.trainer.training_state())

    def notes(self) -> list[str]:
        """Said before training starts: settings that build but probably do not do what was meant."""
        from app.core.models import model_warnings

        return (model_warnings(self.trainer.model.cfg, self.data.sample_shape)
                + list(self.trainer.warnings))

    # -- the events ---------------------------------------------------------------------------
    def events(self) -> Iterator[TrainingEvent]:
        """Train, then save: every event of the session."""
        yield from self.train_events()
        yield from self.finish_events()

    def _live_warnings(self, texts: list[str]) -> Iterator[TrainingEvent]:
        for text in texts:
            yield TrainingWarning(text)

    def train_events(self) -> Iterator[TrainingEvent]:
        """Iterate the trainer; a Ctrl+C inside a step ends training as cancelled."""
        for text in self.notes():
            yield TrainingWarning(text)
        self.autosaver = self._make_autosaver()
        if self.out is not None:    # others may follow the run while it trains (issue 14)
            from app.core.live_writer import LiveWriter

            self.live = LiveWriter(self.out, len(self.earlier_history) + self.train_cfg.epochs)
            yield from self._live_warnings(self.live.start(len(self.earlier_history)))
        try:
            for event in self.trainer.run(self.control):
                yield from self._handle(event)
        except KeyboardInterrupt:
            yield TrainingWarning("interrupted: saving the model trained so far")
            self.finished = TrainFinished("cancelled", "interrupted", len(self.history), self.trainer.best_epoch)

    def _handle(self, event) -> Iterator[TrainingEvent]:
        if self.autosaver is not None:
            saved = self.autosaver.on_event(event, self.model, self.history)
            if saved is not None:
                yield Saved(saved, "autosave")
        yield from self._drain()
        if isinstance(event, TrainProgress):
            yield Progress(event)
        elif isinstance(event, EpochResult):
            from app.core.checkpoint import epoch_row

            if self.live is not None:   # before the Epoch event: whoever hears it finds the files written
                yield from self._live_warnings(self.live.epoch_done(self, len(self.history)))
            yield Epoch(event, epoch_row(event), self.train_cfg.epochs)
            warning = self._collapse_warning(event.epoch)
            if warning:
                yield TrainingWarning(warning)
        elif isinstance(event, TrainFinished):
            self.finished = event

    def _drain(self) -> Iterator[TrainingEvent]:
        pending, self._pending = self._pending, []
        yield from pending

    def _make_autosaver(self):
        if self.autosave_dir is None:
            return None
        from app.core.autosave import Autosaver
        from app.core.session import data_info

        reported: set[str] = set()

        def failed(message: str) -> None:
            if message not in reported:   # once per distinct reason; training goes on
                reported.add(message)
                self._pending.append(TrainingWarning(f"autosave failed, training continues: {message}"))

        return Autosaver(self.autosave_dir, data_cfg=self.data_cfg, train_cfg=self.train_cfg,
                         modality=self.data.modality, data_info=data_info(self.data), on_error=failed)

    def _collapse_warning(self, epoch: int) -> str | None:
        """Posterior collapse (app/core/collapse.py), said once per session."""
        if self._collapse_warned or not self.model.variational:
            return None
        from app.core.collapse import check_posterior_collapse, warmup_epochs_for

        warning = check_posterior_collapse(self.model, self.validation_x, epoch, warmup_epochs_for(self.train_cfg))
        self._collapse_warned = warning is not None
        return warning

    def finish_events(self) -> Iterator[TrainingEvent]:
        """The final save into `out` (or its rescue) and the Finished event."""
        finished = self.finished or TrainFinished("cancelled", "interrupted", 0, self.trainer.best_epoch)
        self.finished = finished
        saved_to, save_error = None, None
        if self.out is not None:
            run = self.run
            try:
                saved_to = run.save(self.out)
                yield Saved(saved_to, "final")
            except CheckpointError as exc:
                save_error = str(exc)
                yield TrainingWarning(f"error: {exc}")
                run.training_state = None   # the rescue folder is not a run to resume in place
                saved_to = yield from self._rescue(run)
        if self.live is not None:   # a failed final save leaves "failed": the checkpoint there is older
            yield from self._live_warnings(self.live.finish(finished.reason, finished.ok and save_error is None,
                                                            len(self.history)))
        yield Finished(finished.reason, finished.message, finished.ok, finished.epochs_run, finished.best_epoch,
                       saved_to, save_error)

    def _rescue(self, run: Run) -> Iterator[TrainingEvent]:
        """The final save failed (disk full, read-only folder): keep the trained model elsewhere."""
        from app.core.autosave import default_autosave_root

        target = default_autosave_root() / f"rescued-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            path = run.save(target)
        except CheckpointError as exc:
            latest = self.autosaver.saved[-1] if self.autosaver is not None and self.autosaver.saved else None
            where = f"; the last autosave is {latest}" if latest else ""
            yield TrainingWarning(f"error: could not save it elsewhere either ({exc}){where}")
            return None
        yield Saved(path, "rescued")
        return path

