"""`Run`: one trained (or being trained) model with everything that explains it.

A Run is what a run directory holds (docs/DESIGN.md, "The run directory contract"): the weights
(the live `model`), its description (the three configs, the data it was trained on, model.json's
fields in `meta`) and its metrics rows. Loading a run directory returns one (checkpoint.load_run),
a training session builds one (training_run.TrainingRun.run), and saving writes one (Run.save).
The CLI, the window and the search all pass this one type around.

History is always metrics rows: dicts with the columns of metrics.csv (epoch, train_loss,
val_loss, train_<part>, val_<part>, seconds, beta, lr, skipped_steps). What the trainer reports
is turned into a row once, by checkpoint.epoch_row, so no reader needs to know where a row came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.config import DataConfig, ModelConfig, TrainConfig

# The run directory's file names (docs/DESIGN.md, "The run directory contract"), here rather than in
# app.core.checkpoint so the window can recognise and follow a run without importing torch.
META = "model.json"
METRICS = "metrics.csv"
MAX_JSON_BYTES = 4 * 1024 * 1024   # a model.json larger than this is refused unread

if TYPE_CHECKING:  # torch-backed: the window names this type before torch has loaded
    from app.core.data.dataset import Dataset
    from app.core.models.base import Autoencoder


@dataclass
class Run:
    model: Autoencoder
    data_cfg: DataConfig
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    modality: str
    data_info: dict = field(default_factory=dict)   # name, n, sample_shape, labels, factors, normalisation
    history: list[dict] = field(default_factory=list)   # metrics rows, one per epoch
    metrics: dict = field(default_factory=dict)     # the summary model.json keeps (training_summary)
    meta: dict = field(default_factory=dict)        # model.json as read; empty until saved or loaded
    path: Path | None = None                        # where it was last saved or opened from
    training_state: object = None                   # Trainer.training_state(): lets `train --resume` continue it
    data: Dataset | None = None                     # its data, when loaded with it (open_with_data)
    data_error: str | None = None                   # why its data could not be loaded (the model still is)

    @property
    def epochs_trained(self) -> int:
        return len(self.history)

    @property
    def unsaved(self) -> bool:
        """Trained here for at least one epoch and not written anywhere since."""
        return self.path is None and self.epochs_trained > 0

    def save(self, run_dir: str | Path) -> Path:
        """Write this run as a run directory; CheckpointError with the reason when it cannot. The
        run then remembers where it lives."""
        from app.core.checkpoint import save_run

        path = save_run(run_dir, self.model, data_cfg=self.data_cfg, train_cfg=self.train_cfg,
                        modality=self.modality, data_info=self.data_info, history=self.history,
                        metrics=self.metrics, training_state=self.training_state)
        self.path = Path(path)
        return self.path


def training_summary(history: list[dict], best_epoch: int | None, finished_reason: str | None) -> dict:
    """The metrics summary model.json keeps: the last epoch's row, the best epoch and why training
    ended. The CLI, the window and the autosaves all write this one."""
    summary: dict = dict(history[-1]) if history else {}
    if history:
        summary["best_epoch"] = best_epoch
    if finished_reason is not None:
        summary["finished"] = finished_reason
    return summary


def open_with_data(run_dir: str | Path) -> Run:
    """load_run, then its own data prepared as the model expects it; a run whose data is gone
    still opens, with the reason in `data_error`."""
    from app.core.checkpoint import load_run
    from app.core.errors import LatentExplorerError
    from app.core.session import load_data_for_run

    run = load_run(run_dir)
    try:
        run.data = load_data_for_run(run)
    except LatentExplorerError as exc:
        run.data_error = str(exc)
    except OSError as exc:
        run.data_error = f"{run.data_cfg.spec}: cannot be read ({exc})"
    return run
