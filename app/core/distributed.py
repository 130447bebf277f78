"""Training across processes, GPUs and machines with torchrun and DistributedDataParallel.

    torchrun --nproc_per_node 2 main.py train --data digits --model vae --out runs/d --distributed

torchrun starts one process per rank and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT;
`init_from_env` joins the process group (nccl on CUDA, one GPU per local rank; gloo on the CPU)
with a timeout, so a rank that hangs stops the others after `timeout_s` instead of forever.

What each rank does (`attach`, Trainer.shard, app/core/data/streaming.py):
- the same seed, so every rank builds the same initial weights; DDP's constructor broadcasts
  rank 0's parameters and buffers anyway;
- each global batch is split between ranks like DistributedSampler (batch_size / world each, rank
  r taking rows r, r + world, ...), so the global batch size stays as set, and the models' noise
  (sampled codes, denoising noise, the AAE's prior draws) is drawn for the global batch and
  sliced the same way (Autoencoder.noise_like): a 2-rank run follows the one-process run;
- the gradients are averaged by torch.nn.parallel.DistributedDataParallel. A training step is
  phases (Autoencoder.phase_losses: one for most kinds; two forwards for the AAE, the first
  serving its reconstruction and discriminator phases, the second its generator phase). Each
  phase has its own DDP wrapper of a PhaseLosses adapter over the modules it trains
  (Autoencoder.phase_modules: the whole model, or the AAE's encoder and discriminator), and each
  forward through it is followed by its one backward, during which that wrapper's reducer
  all-reduces the gradients in buckets, overlapped with the backward. A reducer ignores the
  backward of another wrapper's forward, so overlapping wrappers do not interfere. Options:
  find_unused_parameters stays off (every phase uses every parameter it wraps; on, it would walk
  the graph each step and warn); static_graph is not set (correctness does not need it, and
  its speed-up was not measured); buffers are DDP's default, rank 0's broadcast at each forward, and no kind has
  buffers or BatchNorm today, so SyncBatchNorm is not used. The contractive penalty's
  torch.autograd.grad(create_graph=True) inside the forward is taken with respect to the input
  only, so it fires no parameter hook; the one backward through the double-backward graph does,
  once per parameter (tests/core/test_ddp.py: its curve matches one process);
- clipping runs after that backward, on the averaged gradients, before the step;
- a NaN/Inf loss on one rank is still back-propagated (times NaN), so it joins the all-reduce and
  every rank's averaged gradients are non-finite: every rank then raises NonFiniteLoss before
  stepping and takes the same decision (skip the step, or stop with the last good weights);
- the epoch's loss means are averaged over ranks and rank 0's validation losses are used by all,
  so early stopping agrees; rank 0 alone writes the run directory (metrics, autosaves, weights).
A rank that dies breaks the others' next collective (gloo/nccl report the lost peer at once) and
torchrun stops the rest: they print one line saying so, and rank 0 saves the last good weights.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from app.core.errors import ConfigError, TrainingError
from app.core.models.base import LocalSteps, NonFiniteLoss, check_finite

DEFAULT_TIMEOUT_S = float(os.environ.get("LATENT_EXPLORER_DIST_TIMEOUT", "60"))


@dataclass
class DistributedContext:
    rank: int
    world: int
    local_rank: int
    backend: str
    device: torch.device
    peers_alive: bool = True   # False once a collective failed: nobody to meet at shutdown's barrier

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes the run directory."""
        return self.rank == 0

    def lost(self, exc: BaseException) -> TrainingError:
        self.peers_alive = False
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
    model = trainer.model
    model.to(trainer.device)
    try:
        steps = DDPSteps(model, ctx)   # its constructor broadcasts rank 0's weights and buffers
    except Exception as exc:  # noqa: BLE001 - a dead peer surfaces as many error types
        raise ctx.lost(exc) from exc
    model.use_steps(steps)             # a plain attribute: the class and state dict stay the model's
    model.batch_shard = trainer.shard
    trainer.device_name = f"{trainer.device_name} (rank {ctx.rank} of {ctx.world}, {ctx.backend}, {steps.wrapper})"


class PhaseLosses(nn.Module):
    """What DDP wraps for one phase: its parameters are those of the phase's modules, and
    forward(x, phase, settings) is the model's phase_losses (the model itself is not registered,
    so a phase that trains part of the model hands DDP only that part)."""

    def __init__(self, model, phase: str):
        super().__init__()
        self.trained = nn.ModuleList(model.phase_modules(phase))
        self.__dict__["model"] = model

    def forward(self, x: torch.Tensor, phase: str, settings) -> dict[str, torch.Tensor]:
        return self.model.phase_losses(x, phase, settings)


class DDPSteps(LocalSteps):
    """The phases of a training step as one rank: each phase's forward goes through its own
    DistributedDataParallel wrapper, whose reducer averages the phase's gradients during the
    backward that follows; one finiteness decision for all ranks.

    A reducer only acts on a backward after its own wrapper's forward (it ignores its hooks
    otherwise), so wrappers of overlapping parameter sets (the AAE's encoder) do not interfere,
    and each phase uses every parameter it wraps: find_unused_parameters (an extra graph walk
    each step, and a warning) is not needed."""

    def __init__(self, model, ctx: DistributedContext):
        self.ctx = ctx
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        self.wrappers = {phase: DistributedDataParallel(PhaseLosses(model, phase), device_ids=ids)
                         for phase in model.phases}
        self.wrapper = "DistributedDataParallel" + (f" x{len(self.wrappers)} (one per phase)"
                                                    if len(self.wrappers) > 1 else "")
        self._synced: list = []   # the parameters the last forward's backward averages

    def losses(self, model, x, phase, settings):
        wrapper = self.wrappers[phase]
        self._synced = list(wrapper.parameters())
        try:
            return wrapper(x, phase, settings)
        except Exception as exc:  # noqa: BLE001
            if self._peer_lost(exc):
                raise self.ctx.lost(exc) from exc
            raise

    def backward(self, objective, parts) -> None:
        bad_here = not bool(torch.isfinite(objective.detach()))
        if bad_here:   # still join the all-reduce, with NaN gradients that reach every rank
            objective = objective * float("nan")
        try:
            objective.backward()
        except Exception as exc:  # noqa: BLE001
            if self._peer_lost(exc):
                raise self.ctx.lost(exc) from exc
            raise
        # The averaged gradients are the same on every rank, so every rank decides the same way.
        # A NaN loss reaches at least the output layer's bias (its gradient is a sum of NaNs).
        grads = [p.grad for p in self._synced if p.grad is not None]
        if grads and not bool(torch.isfinite(nn.utils.get_total_norm(grads))):
            if bad_here:
                check_finite(parts)
            raise NonFiniteLoss({"total (on another rank)": float("nan")})

    def check(self, parts) -> None:
        flag = torch.tensor([0.0 if bool(torch.isfinite(parts["total"])) else 1.0], device=self.ctx.device)
        try:
            dist.all_reduce(flag)
        except Exception as exc:  # noqa: BLE001
            raise self.ctx.lost(exc) from exc
        if float(flag) > 0:
            check_finite(parts)
            raise NonFiniteLoss({"total (on another rank)": float("nan")})

    @staticmethod
    def _peer_lost(exc: BaseException) -> bool:
        """A collective's failure inside DDP's forward/backward means a lost peer; anything else
        (out of memory, a bug) keeps its own type and message."""
        return isinstance(exc, dist.DistError) or any(w in str(exc) for w in COLLECTIVE_FAILURES)


# Words gloo and nccl put in the errors of a collective whose peer went away or timed out.
COLLECTIVE_FAILURES = ("gloo", "Gloo", "NCCL", "nccl", "Connection closed", "Connection reset", "peer",
                       "Timed out", "timed out", "ProcessGroup")


def on_terminate(ctx: DistributedContext, control) -> None:
    """torchrun stops the surviving ranks with SIGTERM when one fails: say so and stop between steps."""
    def handler(_signum, _frame):
        print(f"rank {ctx.rank}: stopped by torchrun because another rank failed; "
              f"{'saving the last good weights' if ctx.is_writer else 'exiting'}", file=sys.stderr, flush=True)
        control.stop()

    signal.signal(signal.SIGTERM, handler)


def shutdown(peers_alive: bool = True) -> None:
    """End the process group explicitly, every rank together. Left to the interpreter's exit, the
    group was torn down while rank 0 was still saving the run: rank 1 aborted in gloo's destructor
    ("terminate called without an active exception", exit code -6) and torchrun reported the job
    failed (1 test run in 3 here). The barrier holds each rank until rank 0 has saved; after a lost
    peer there is nobody to wait for."""
    if not dist.is_initialized():
        return
    try:
        if peers_alive:
            dist.barrier()
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
