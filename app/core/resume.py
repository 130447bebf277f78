"""Continuing a run (`train --resume`) and warm-starting a new one from another (`--init-from`).

Resume rebuilds the run's model, data split and trainer from model.json, then hands the trainer the
training state saved beside the weights (app/core/training_state.py): optimizer moments, epoch
counter (which also fixes the KL-annealing position, a function of the epoch), best validation
loss, patience and the random generators. Training 10 epochs and resuming to 20 therefore gives
the same weights as 20 at once on the CPU (tests/core/test_resume.py).

Warm-start copies every tensor of another run whose name and shape match the new model: the
encoder (required: a warm start that takes no encoder tensor is refused) and the decoder where
the shapes agree, and reports which were taken and why the others were not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from app.core.checkpoint import load_run
from app.core.run import Run
from app.core.errors import ConfigError
from app.core.models.base import Autoencoder
from app.core.training_state import optimizer_param_shapes, read_training_state

# Tensor-name prefixes of the decoding side (and the AAE's critic); the rest is the encoder.
_NOT_ENCODER = ("decoder", "from_code", "code_to_state", "to_output", "discriminator")


@dataclass
class ResumePlan:
    run: Run
    prepared: object                 # training_run.TrainingRun, its trainer primed with the saved state
    earlier_history: list[dict]      # metrics.csv rows of the epochs already done
    epochs_done: int

    @property
    def data_cfg(self):
        return self.run.data_cfg

    @property
    def model_cfg(self):
        return self.run.model_cfg

    @property
    def train_cfg(self):
        return self.prepared.trainer.cfg

    def full_history(self) -> list[dict]:
        """Rows for metrics.csv: the earlier epochs, then this session's."""
        return self.prepared.history


def prepare_resume(run_dir: str | Path, epochs: int, device: str | None = None) -> ResumePlan:
    """A trainer that continues `run_dir` up to `epochs` epochs in total."""
    from app.core.session import prepare_training

    run = load_run(run_dir)
    shapes = optimizer_param_shapes(run.model.make_optimizers(run.train_cfg))
    state = read_training_state(run.path, run.meta["weights_sha256"], shapes)
    if epochs <= state.epochs_done:
        raise ConfigError(f"{run.path} has already trained {state.epochs_done} epochs; --epochs is the total, so "
                          f"give more than {state.epochs_done} (e.g. --epochs {state.epochs_done * 2})")
    changes = {"epochs": epochs}
    if device:
        changes["device"] = device
    train_cfg = dataclasses.replace(run.train_cfg, **changes)
    earlier = []
    for row in run.history:
        if row.get("epoch") is not None and row["epoch"] <= state.epochs_done:
            earlier.append({**row, "epoch": int(row["epoch"])})
    # The session's rows start with the earlier epochs: the curves and the saved CSV keep them.
    prepared = prepare_training(run.data_cfg, run.model_cfg, train_cfg, model=run.model, earlier_history=earlier)
    prepared.trainer.resume_state = state
    return ResumePlan(run=run, prepared=prepared, earlier_history=earlier, epochs_done=state.epochs_done)


@dataclass
class WarmStart:
    source: Path
    taken: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (tensor name, why)

    @property
    def encoder_taken(self) -> list[str]:
        return [n for n in self.taken if not n.startswith(_NOT_ENCODER)]

    @property
    def decoder_taken(self) -> list[str]:
        return [n for n in self.taken if n.startswith(_NOT_ENCODER)]

    def summary(self) -> str:
        lines = [f"warm start from {self.source}: took {len(self.encoder_taken)} encoder and "
                 f"{len(self.decoder_taken)} decoder tensor(s)"]
        lines += [f"  taken   {name}" for name in self.taken]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


def warm_start(model: Autoencoder, source_dir: str | Path) -> WarmStart:
    """Copy into `model` every tensor of the run at source_dir whose name and shape match."""
    import torch

    source = load_run(source_dir)
    theirs = source.model.state_dict()
    mine = model.state_dict()
    report = WarmStart(source=source.path)
    update = {}
    for name, tensor in mine.items():
        other = theirs.get(name)
        if other is None:
            report.skipped.append((name, f"the {source.meta['kind']} run has no such tensor"))
        elif tuple(other.shape) != tuple(tensor.shape):
            report.skipped.append((name, f"shape {list(other.shape)} there, {list(tensor.shape)} here"))
        else:
            update[name] = other.to(dtype=tensor.dtype)
            report.taken.append(name)
    if not report.encoder_taken:
        raise ConfigError(f"--init-from {source.path}: none of its encoder tensors fits this model (it is a "
                          f"{source.meta['kind']} with input {source.meta['input_shape']}); warm-start from a run "
                          f"of the same kind, hidden sizes and input shape")
    with torch.no_grad():
        for name, value in update.items():
            mine[name].copy_(value)
    return report
