"""Training across processes, GPUs and machines with torchrun and torch.distributed.

    torchrun --nproc_per_node 2 main.py train --data digits --model vae --out runs/d --distributed

torchrun starts one process per rank and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT;
`init_from_env` joins the process group (nccl on CUDA, one GPU per local rank; gloo on the CPU)
with a timeout, so a rank that hangs stops the others after `timeout_s` instead of forever.

What each rank does (Trainer.shard / Trainer.distributed, app/core/data/streaming.py):
- the same seed, so every rank builds the same initial weights (rank 0's are broadcast anyway);
- each global batch is split between ranks like DistributedSampler (batch_size / world each), so
  the global batch size stays as set and one step of all ranks sees the samples one process would;
- before every optimizer step the gradients of that optimizer's parameters are averaged over the
  ranks in one flat all_reduce, then clipped: the arithmetic of DistributedDataParallel, done at
  the optimizer because the models' training_step runs up to three forward/backward phases with
  three optimizers (the AAE), which DDP's one-backward-per-wrapped-forward reducer cannot follow;
- a NaN/Inf loss on one rank poisons the next all_reduce, so every rank takes the same decision
  (skip the step, or stop with the last good weights);
- the epoch's loss means are averaged over ranks and rank 0's validation losses are used by all,
  so early stopping agrees; rank 0 alone writes the run directory (metrics, autosaves, weights).
A rank that dies breaks the others' next collective (gloo/nccl report the lost peer at once) and
torchrun stops the rest: they print one line saying so, and rank 0 saves the last good weights.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import signal
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from app.core.errors import ConfigError, TrainingError
from app.core.models.base import NonFiniteLoss

DEFAULT_TIMEOUT_S = float(os.environ.get("LATENT_EXPLORER_DIST_TIMEOUT", "60"))


@dataclass
class DistributedContext:
    rank: int
    world: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes the run directory."""
        return self.rank == 0

    def lost(self, exc: BaseException) -> TrainingError:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return TrainingError(f"rank {self.rank} of {self.world}: lost contact with another training process ({text}); "
                             f"a rank died, hung past the {DEFAULT_TIMEOUT_S:g} s timeout or its machine went away. "
                             f"Stopping: rank 0 keeps the last good weights")

    # ---- collectives the trainer calls at each epoch's end ------------------------------------
    def reduce_sums(self, sums: dict, counted: int) -> tuple[dict, int]:
        """Every rank's summed loss parts, averaged over ranks (equal batches: the global mean)."""
        if not sums:
            return sums, counted
        keys = sorted(sums)
        stacked = torch.stack([sums[k].detach().float().reshape(()) for k in keys]).to(self.device)
        try:
            dist.all_reduce(stacked)
        except Exception as exc:  # noqa: BLE001 - a dead peer surfaces as many error types
            raise self.lost(exc) from exc
        stacked /= self.world
        return {k: stacked[i].cpu() for i, k in enumerate(keys)}, counted

    def agree(self, value):
        """Rank 0's value on every rank (validation losses: one early-stopping decision)."""
        box = [value]
        try:
            dist.broadcast_object_list(box, src=0)
        except Exception as exc:  # noqa: BLE001
            raise self.lost(exc) from exc
        return box[0]


def init_from_env(timeout_s: float = DEFAULT_TIMEOUT_S) -> DistributedContext:
    """Join the process group torchrun set up; ConfigError when not started by torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ConfigError("--distributed needs torchrun to start the processes: torchrun --nproc_per_node N "
                          "main.py train ... --distributed (or drop --distributed to train in one process)")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        backend, device = "nccl", torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        backend, device = "gloo", torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistributedContext(rank, world, local_rank, backend, device)


def attach(trainer, ctx: DistributedContext) -> None:
    """Make `trainer` one rank of a distributed run (before trainer.run())."""
    trainer.shard = (ctx.rank, ctx.world)
    trainer.distributed = ctx
    if ctx.device.type == "cuda":
        trainer.device = ctx.device
        trainer.device_name = f"{trainer.device_name} (rank {ctx.rank} of {ctx.world}, {ctx.backend})"
    model = trainer.model
    model.to(trainer.device)
    try:
        for tensor in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(tensor.data, src=0)
    except Exception as exc:  # noqa: BLE001
        raise ctx.lost(exc) from exc
    sync = GradientAverager(ctx)
    original = model.training_step

    def training_step(x, optimizers, settings):
        sync.begin(optimizers, settings.grad_clip)
        try:   # clipping happens after averaging, in the step hook, as with DDP
            return original(x, optimizers, dataclasses.replace(settings, grad_clip=0.0))
        except NonFiniteLoss:
            sync.poison(optimizers)
            raise

    model.training_step = training_step   # an instance attribute: the class stays the saved kind


class GradientAverager:
    """Averages each optimizer's gradients over the ranks just before it steps."""

    def __init__(self, ctx: DistributedContext):
        self.ctx = ctx
        self.hooked: set[int] = set()
        self.next_index = 0
        self.grad_clip = 0.0
        self.optimizers: list = []

    def begin(self, optimizers, grad_clip: float) -> None:
        self.optimizers, self.grad_clip, self.next_index = list(optimizers), grad_clip, 0
        for opt in optimizers:
            if id(opt) not in self.hooked:
                opt.register_step_pre_hook(self._before_step)
                self.hooked.add(id(opt))

    def _before_step(self, opt, _args, _kwargs) -> None:
        self.next_index += 1
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        flat = torch._utils._flatten_dense_tensors([p.grad for p in params])
        self._all_reduce(flat)
        if not bool(torch.isfinite(flat).all()):
            raise NonFiniteLoss({"total": float("nan")})   # some rank's loss was NaN/Inf: nobody steps
        for p, g in zip(params, torch._utils._unflatten_dense_tensors(flat, [p.grad for p in params])):
            p.grad.copy_(g)
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)

    def poison(self, optimizers) -> None:
        """This rank's loss was NaN/Inf: join the all_reduce the others are in, with NaNs."""
        if self.next_index >= len(optimizers):
            return
        opt = optimizers[self.next_index]
        size = sum(p.numel() for group in opt.param_groups for p in group["params"] if p.requires_grad)
        device = next(p.device for group in opt.param_groups for p in group["params"])
        self._all_reduce(torch.full((size,), float("nan"), device=device))

    def _all_reduce(self, flat: torch.Tensor) -> None:
        try:
            dist.all_reduce(flat)
        except Exception as exc:  # noqa: BLE001 - a dead peer surfaces as many error types
            raise self.ctx.lost(exc) from exc
        flat /= self.ctx.world


def on_terminate(ctx: DistributedContext, control) -> None:
    """torchrun stops the surviving ranks with SIGTERM when one fails: say so and stop between steps."""
    def handler(_signum, _frame):
        print(f"rank {ctx.rank}: stopped by torchrun because another rank failed; "
              f"{'saving the last good weights' if ctx.is_writer else 'exiting'}", file=sys.stderr, flush=True)
        control.stop()

    signal.signal(signal.SIGTERM, handler)


def shutdown() -> None:
    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - a broken group cannot be torn down cleanly; the process ends anyway
            return


def distributed_events(session, ctx: DistributedContext):
    """The session's events on one rank: only rank 0 writes (run directory, autosaves); a lost
    peer ends training as failed and rank 0 still saves the last good weights."""
    from app.core.errors import LatentExplorerError
    from app.core.trainer import TrainFinished

    attach(session.trainer, ctx)
    if not ctx.is_writer:
        session.out = None
        session.autosave_dir = None
    on_terminate(ctx, session.control)
    try:
        yield from session.train_events()
    except LatentExplorerError as exc:
        session.trainer._restore_if_bad(session.model.state_dict())
        session.finished = TrainFinished("failed", str(exc), len(session.trainer.history), session.trainer.best_epoch)
    yield from session.finish_events()
