"""The training loop, as a generator of progress events.

`Trainer.run()` yields `TrainProgress` (throttled, for bars and live curves), `EpochResult` (one per
epoch, the rows of metrics.csv) and finally one `TrainFinished` saying why it ended. A CLI prints
them, the window's worker thread forwards them as signals, a test just iterates.

Pause and stop come through a `TrainControl` checked between steps, so the model is never left
half-updated: a step either happened completely or not at all. Closing the generator early is a
cancel too. The loop keeps the last good weights: a NaN/Inf loss is detected before its step, and
an epoch snapshot covers weights that went bad inside a finite-looking step.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from app.core.config import TrainConfig, validate
from app.core.data.streaming import batch_source, eval_source
from app.core.device import describe_device, is_out_of_memory, resolve_device
from app.core.errors import ConfigError, TrainingError
from app.core.models.base import Autoencoder, NonFiniteLoss, StepSettings
from app.core.training_state import TrainingState, capture_rng, restore_rng


class TrainControl:
    """Thread-safe pause/resume/stop flags, checked by the loop between steps."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused loop so it can see the stop

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def wait_while_paused(self) -> None:
        while not self._running.wait(0.1):
            pass


@dataclass
class TrainProgress:
    epoch: int                  # 1-based
    epochs: int
    step: int                   # steps done in total
    step_in_epoch: int
    steps_per_epoch: int
    parts: dict[str, float]     # running means of the loss parts over this epoch so far
    samples_per_second: float
    elapsed_s: float
    eta_s: float
    beta: float
    lr: float
    skipped_steps: int

    @property
    def fraction(self) -> float:
        total = self.epochs * self.steps_per_epoch
        return min(1.0, self.step / total) if total else 1.0


@dataclass
class EpochResult:
    epoch: int
    train: dict[str, float]                 # mean loss parts over the epoch's steps
    val: dict[str, float] | None            # loss parts on the validation split (None without one)
    seconds: float
    samples_per_second: float
    beta: float
    lr: float
    skipped_steps: int
    best_epoch: int | None

    @property
    def train_loss(self) -> float:
        return self.train["total"]

    @property
    def val_loss(self) -> float | None:
        return None if self.val is None else self.val["total"]


@dataclass
class TrainFinished:
    reason: str                      # completed | early_stopped | cancelled | diverged | failed
    message: str
    epochs_run: int
    best_epoch: int | None

    @property
    def ok(self) -> bool:
        return self.reason in ("completed", "early_stopped", "cancelled")


TrainEvent = TrainProgress | EpochResult | TrainFinished


def kl_weight(cfg: TrainConfig, epoch_position: float) -> float:
    """Annealing factor in [0, 1] for the KL term at a fractional epoch (0 = start).

    linear: warm-up over kl_warmup_epochs (Bowman et al. 2016). cyclical: repeated warm-ups,
    rising over the first half of each cycle and flat for the second (Fu et al. 2019)."""
    if cfg.kl_anneal == "linear":
        return min(1.0, epoch_position / cfg.kl_warmup_epochs)
    if cfg.kl_anneal == "cyclical":
        phase = (epoch_position % cfg.kl_warmup_epochs) / cfg.kl_warmup_epochs
        return min(1.0, phase / 0.5)
    return 1.0


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


@dataclass
class _LoopState:
    """What carries from one epoch of Trainer.run to the next."""
    shuffle: torch.Generator
    best_val: float
    patience_left: int
    last_good_state: dict
    base_beta: float
    best_state: dict | None = None
    start_epoch: int = 0
    step: int = 0
    t_start: float = 0.0
    last_report: float = 0.0


class Trainer:
    def __init__(self, model: Autoencoder, train_x: np.ndarray, val_x: np.ndarray | None, cfg: TrainConfig,
                 report_interval_s: float = 0.1):
        validate(cfg)
        if len(train_x) == 0:
            raise TrainingError("there are no training samples; lower the validation fraction or add data")
        # Things the caller should tell the user (the CLI prints them, the window logs them).
        self.warnings: list[str] = []
        if len(train_x) < cfg.batch_size:
            # Small tables (100-300 rows) are common in anomaly detection: train with one full batch.
            self.warnings.append(f"only {len(train_x)} training samples but the batch size is {cfg.batch_size}: "
                                 f"training with batches of {len(train_x)} (the whole training split)")
            cfg = dataclasses.replace(cfg, batch_size=len(train_x))
        if cfg.patience > 0 and (val_x is None or len(val_x) == 0):
            raise ConfigError("early stopping (patience > 0) needs a validation split: set a validation fraction above 0")
        self.cfg = cfg
        self.model = model
        self.device = resolve_device(cfg.device)
        self.device_name = describe_device(self.device)
        self.report_interval_s = report_interval_s
        self.history: list[EpochResult] = []
        self.best_epoch: int | None = None
        self.skipped_steps = 0
        self._train_x = train_x
        self._val_x = val_x
        model.note_training_size(len(train_x))   # beta-TCVAE's estimator needs the data set size
        # Resume (app/core/resume.py): the state to continue from, and the state after the last
        # finished epoch, which training_state() hands to checkpoint.save_run.
        self.resume_state = None
        self._resumed_steps = 0
        self._epoch_end: tuple | None = None
        self._optimizers: list = []
        # Distributed training (app/core/distributed.py sets these): (rank, world) and its context.
        self.shard: tuple[int, int] | None = None
        self.distributed = None

    @property
    def train_x(self) -> np.ndarray:
        """The training samples this trainer iterates over."""
        return self._train_x

    @property
    def validation_x(self) -> np.ndarray | None:
        """The held-out samples it validates on (None without a validation split)."""
        return self._val_x

    # ------------------------------------------------------------------------------------------
    def run(self, control: TrainControl | None = None) -> Iterator[TrainEvent]:
        control = control or TrainControl()
        cfg = self.cfg
        try:
            self.model.to(self.device)
            # In memory: the set moves to the device once; memory-mapped: batches stream from disk
            # (app/core/data/streaming.py). shard splits each global batch between DDP ranks.
            train = batch_source(self._train_x, self.device, cfg.batch_size, self.shard)
            val = eval_source(self._val_x, self.device)
            optimizers = self.model.make_optimizers(cfg)
        except Exception as exc:  # noqa: BLE001 - turned into a readable message
            yield self._failed(exc, 0)
            return
        loop = self._start_loop(train, optimizers)
        for epoch in range(loop.start_epoch + 1, cfg.epochs + 1):
            trained = yield from self._train_epoch(epoch, loop, train, optimizers, control)
            if trained is None:
                return   # stopped, diverged or failed: _train_epoch yielded the TrainFinished
            ended = yield from self._end_epoch(epoch, loop, val, optimizers, *trained)
            if ended:
                return
        if cfg.patience > 0 and loop.best_state is not None:
            self.model.load_state_dict(loop.best_state)
        yield self._finish("completed", f"trained {cfg.epochs} epochs on {self.device_name}", cfg.epochs)

    def _start_loop(self, train, optimizers) -> "_LoopState":
        """Seed, shuffle generator and counters at the first epoch, or where a resumed run left off."""
        cfg = self.cfg
        seed_everything(cfg.seed)
        loop = _LoopState(shuffle=torch.Generator(device="cpu").manual_seed(cfg.seed), best_val=math.inf,
                          patience_left=cfg.patience, last_good_state=copy.deepcopy(self.model.state_dict()),
                          base_beta=float(getattr(self.model.cfg, "beta", 1.0)))
        self._optimizers = optimizers
        if self.resume_state is not None:
            loop.start_epoch, loop.best_val, loop.patience_left = self._resume(self.resume_state, optimizers,
                                                                                loop.shuffle)
            loop.step = self._resumed_steps = loop.start_epoch * train.steps_per_epoch
        loop.t_start = time.perf_counter()
        # The report clock runs across epochs: epochs shorter than the interval (digits) still
        # report every interval instead of never.
        loop.last_report = loop.t_start - self.report_interval_s
        return loop

    def _train_epoch(self, epoch: int, loop: "_LoopState", train, optimizers, control: TrainControl):
        """One epoch's steps, yielding throttled TrainProgress. Returns (sums, counted, beta, seconds),
        or None after yielding the TrainFinished of a stop, a divergence or a failure."""
        cfg = self.cfg
        steps_per_epoch = train.steps_per_epoch
        self.model.train()
        t_epoch = time.perf_counter()
        sums: dict[str, torch.Tensor] = {}
        counted = 0
        batches = train.epoch(torch.randperm(len(train), generator=loop.shuffle))
        beta = loop.base_beta
        for i in range(steps_per_epoch):
            if control.paused:
                paused_at = time.perf_counter()
                control.wait_while_paused()
                pause_len = time.perf_counter() - paused_at
                loop.t_start += pause_len
                t_epoch += pause_len
            if control.stop_requested:
                yield self._finish("cancelled", f"stopped by the user during epoch {epoch}", epoch - 1)
                return None
            batch = next(batches)
            beta = loop.base_beta * kl_weight(cfg, epoch - 1 + i / steps_per_epoch)
            settings = StepSettings(beta=beta, l1_weight=cfg.l1_weight, grad_clip=cfg.grad_clip)
            try:
                parts = self.model.training_step(batch, optimizers, settings)
            except NonFiniteLoss as bad:
                if cfg.nan_policy == "skip" and self.skipped_steps < 100:
                    self.skipped_steps += 1
                    for opt in optimizers:
                        for group in opt.param_groups:
                            group["lr"] *= 0.5
                    continue
                self._restore_if_bad(loop.last_good_state)
                lr = optimizers[0].param_groups[0]["lr"]
                yield self._finish(
                    "diverged",
                    f"the loss became NaN/Inf at epoch {epoch}, step {i + 1} ({bad}); training stopped and "
                    f"the last good weights are kept. Try a lower learning rate (now {lr:g}), gradient "
                    f"clipping, or nan_policy=skip", epoch - 1)
                return None
            except Exception as exc:  # noqa: BLE001 - OOM and friends become messages
                self._restore_if_bad(loop.last_good_state)
                yield self._failed(exc, epoch - 1)
                return None
            for k, v in parts.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
            counted += 1
            loop.step += 1
            now = time.perf_counter()
            if now - loop.last_report >= self.report_interval_s:
                loop.last_report = now
                yield self._progress(epoch, loop.step, i + 1, steps_per_epoch, sums, counted, now - loop.t_start,
                                     beta, optimizers)
        return sums, counted, beta, time.perf_counter() - t_epoch

    def _end_epoch(self, epoch: int, loop: "_LoopState", val, optimizers, sums, counted: int, beta: float,
                   seconds: float):
        """Validation, early stopping and the snapshots; yields the EpochResult (and a TrainFinished
        when training ends here). Returns whether it ended."""
        cfg = self.cfg
        if counted == 0:  # nan_policy=skip skipped every step: nothing was learned, say so
            self._restore_if_bad(loop.last_good_state)
            yield self._finish(
                "diverged",
                f"every step of epoch {epoch} had a NaN/Inf loss and was skipped ({self.skipped_steps} skipped "
                f"in all); training stopped and the last good weights are kept. Check the data for NaN/Inf "
                f"values, or lower the learning rate", epoch - 1)
            return True
        if self.distributed is not None:   # every rank's means, averaged (app/core/distributed.py)
            sums, counted = self.distributed.reduce_sums(sums, counted)
        train_parts = {k: float(v) / max(counted, 1) for k, v in sums.items()}
        val_parts = self.evaluate(val, beta=loop.base_beta) if val is not None else None
        if self.distributed is not None:
            val_parts = self.distributed.agree(val_parts)
        monitored = val_parts["total"] if val_parts is not None else train_parts.get("total", math.inf)
        if monitored < loop.best_val:
            loop.best_val = monitored
            self.best_epoch = epoch
            loop.patience_left = cfg.patience
            if cfg.patience > 0:
                loop.best_state = copy.deepcopy(self.model.state_dict())
        else:
            loop.patience_left -= 1
        if self._weights_finite():
            loop.last_good_state = copy.deepcopy(self.model.state_dict())
        result = EpochResult(
            epoch=epoch, train=train_parts, val=val_parts, seconds=seconds,
            samples_per_second=counted * cfg.batch_size / max(seconds, 1e-9), beta=beta,
            lr=optimizers[0].param_groups[0]["lr"], skipped_steps=self.skipped_steps, best_epoch=self.best_epoch)
        self.history.append(result)
        self._epoch_end = (epoch, loop.best_val, loop.patience_left, capture_rng(), loop.shuffle.get_state())
        yield result
        if cfg.patience > 0 and loop.patience_left <= 0:
            if loop.best_state is not None:
                self.model.load_state_dict(loop.best_state)
            yield self._finish("early_stopped", f"validation loss did not improve for {cfg.patience} epochs; "
                               f"restored the best weights (epoch {self.best_epoch})", epoch)
            return True
        return False

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, data: torch.Tensor, beta: float) -> dict[str, float]:
        """Loss parts on held-out data, sample-weighted, with z sampled as in the VAE paper."""
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, float] = {}
        batch = max(self.cfg.batch_size, 1024)
        for start in range(0, len(data), batch):
            x = data[start:start + batch]
            out = self.model(x, sample=True)
            for k, v in self.model.loss(x, out, beta=beta).items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(x)
        self.model.train(was_training)
        return {k: v / len(data) for k, v in sums.items()}

    def _progress(self, epoch, step, step_in_epoch, steps_per_epoch, sums, counted, elapsed, beta, optimizers):
        parts = {k: float(v) / max(counted, 1) for k, v in sums.items()}
        total_steps = self.cfg.epochs * steps_per_epoch
        rate = (step - self._resumed_steps) / elapsed if elapsed > 0 else 0.0
        return TrainProgress(
            epoch=epoch, epochs=self.cfg.epochs, step=step, step_in_epoch=step_in_epoch,
            steps_per_epoch=steps_per_epoch, parts=parts, samples_per_second=rate * self.cfg.batch_size,
            elapsed_s=elapsed, eta_s=(total_steps - step) / rate if rate > 0 else math.inf, beta=beta,
            lr=optimizers[0].param_groups[0]["lr"], skipped_steps=self.skipped_steps)

    def _finish(self, reason: str, message: str, epochs_run: int) -> TrainFinished:
        self.model.eval()
        return TrainFinished(reason=reason, message=message, epochs_run=epochs_run, best_epoch=self.best_epoch)

    def _failed(self, exc: BaseException, epochs_run: int) -> TrainFinished:
        if is_out_of_memory(exc):
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            message = (f"out of memory on {self.device_name} with batch size {self.cfg.batch_size}: lower the batch "
                       f"size, the hidden sizes or the latent size, or train on the CPU")
        else:
            message = f"training failed: {type(exc).__name__}: {exc}"
        return self._finish("failed", message, epochs_run)

    def _resume(self, state, optimizers, shuffle) -> tuple[int, float, int]:
        """Continue after state.epochs_done epochs: optimizer moments, generators, counters."""
        for opt, saved in zip(optimizers, state.optimizers):
            opt.load_state_dict(saved)
        restore_rng(state, shuffle)
        self.best_epoch = state.best_epoch
        self.skipped_steps = state.skipped_steps
        self._epoch_end = (state.epochs_done, state.best_val, state.patience_left, capture_rng(), shuffle.get_state())
        return state.epochs_done, state.best_val, state.patience_left

    def training_state(self):
        """The position after the last finished epoch (None before the first), for an exact resume.
        Stopped mid-epoch, the weights saved are newer than this position: resuming then repeats
        the unfinished epoch from those weights, close to but not bit-equal with an unbroken run."""
        if self._epoch_end is None or not self._optimizers:
            return None
        epoch, best_val, patience_left, (torch_rng, numpy_rng, cuda_rng), shuffle_state = self._epoch_end
        return TrainingState(
            epochs_done=epoch, best_val=best_val, best_epoch=self.best_epoch, patience_left=patience_left,
            skipped_steps=self.skipped_steps, optimizers=[opt.state_dict() for opt in self._optimizers],
            torch_rng=torch_rng, shuffle_rng=shuffle_state, numpy_rng=numpy_rng, cuda_rng=cuda_rng)

    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def _restore_if_bad(self, last_good_state: dict) -> None:
        if not self._weights_finite():
            self.model.load_state_dict(last_good_state)


def train_to_end(trainer: Trainer, control: TrainControl | None = None) -> TrainFinished:
    """Run without watching (tests, scripts); returns the final event."""
    finished = None
    for event in trainer.run(control):
        if isinstance(event, TrainFinished):
            finished = event
    assert finished is not None
    return finished
