"""Run directories from the window's side: the model it currently explores (trained here or
opened from disk), saving it, and opening a run together with its data.

These functions are plain Python run on the worker pool (run_job); they take and return core
objects, never widgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.errors import LatentExplorerError
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch-backed: imported where used, so the window appears before torch loads
    from app.core.checkpoint import LoadedRun
    from app.core.data.dataset import Dataset
    from app.core.models.base import Autoencoder

META = "model.json"   # app.core.checkpoint.META, without importing torch to recognise a run folder


@dataclass
class ModelRecord:
    """The window's current model and everything save_run needs to write it as a run."""
    model: Autoencoder
    data_cfg: DataConfig
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    modality: str
    data_info: dict
    history: list = field(default_factory=list)    # EpochResults (trained here) or metrics rows (opened)
    metrics: dict = field(default_factory=dict)
    saved_to: Path | None = None                   # where it was last saved or opened from
    training_state: object = None                  # Trainer.training_state(): lets `train --resume` continue it

    @property
    def epochs_trained(self) -> int:
        return len(self.history)

    @property
    def unsaved(self) -> bool:
        """Trained here for at least one epoch and not written anywhere since."""
        return self.saved_to is None and self.epochs_trained > 0

    @classmethod
    def from_run(cls, run: LoadedRun) -> "ModelRecord":
        return cls(model=run.model, data_cfg=run.data_cfg, model_cfg=run.model_cfg, train_cfg=run.train_cfg,
                   modality=run.modality, data_info=dict(run.meta.get("data_info") or {}),
                   history=list(run.history), metrics=dict(run.meta.get("metrics") or {}), saved_to=run.path)


def training_metrics(history: list, best_epoch: int | None, finished_reason: str | None) -> dict:
    """The summary model.json keeps (the same fields the CLI writes)."""
    metrics: dict = {}
    if history:
        last = history[-1]
        from app.core.checkpoint import epoch_row

        metrics = dict(last) if isinstance(last, dict) else epoch_row(last)
        metrics["best_epoch"] = best_epoch
    if finished_reason is not None:
        metrics["finished"] = finished_reason
    return metrics


def save_record(record: ModelRecord, run_dir: str | Path) -> Path:
    """Write `record` as a run directory; CheckpointError with the reason when it cannot."""
    from app.core.checkpoint import save_run

    return save_run(run_dir, record.model, data_cfg=record.data_cfg, train_cfg=record.train_cfg,
                    modality=record.modality, data_info=record.data_info, history=record.history,
                    metrics=record.metrics, training_state=record.training_state)


def is_run_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / META).is_file()


@dataclass
class OpenedRun:
    run: LoadedRun
    data: Dataset | None        # the run's own data, prepared as the model expects it
    data_error: str | None      # why the data could not be loaded (the model is still usable)


def open_run_with_data(run_dir: str | Path) -> OpenedRun:
    """load_run, then its data; a run whose data is gone still opens, with the reason."""
    from app.core.session import load_data_for_run

    from app.core.checkpoint import load_run

    run = load_run(run_dir)
    try:
        data = load_data_for_run(run)
    except LatentExplorerError as exc:
        return OpenedRun(run, None, str(exc))
    except OSError as exc:
        return OpenedRun(run, None, f"{run.data_cfg.spec}: cannot be read ({exc})")
    return OpenedRun(run, data, None)
