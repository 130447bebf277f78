"""Two gloo processes started by torchrun (app/core/distributed.py), on this CPU machine (issue 14).

Each test starts torchrun itself as a subprocess on a free port, with a timeout: either the CLI
(`main.py train --distributed`) or this file as the ranks' program (`_rank_main` below), which
trains every model kind through DistributedDataParallel and reports what each rank saw."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import json
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from app.core.checkpoint import load_run, read_metrics
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.session import prepare_training
from app.core.trainer import train_to_end

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")
# Same global batch, same seed: the two ranks' steps see exactly the samples of one process's steps,
# so the only differences are float summation orders. Measured through DDP: within 2e-7 for every
# kind (test_two_ranks_follow_one_process); allowed 1e-4.
LOSS_RTOL = 1e-4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], program: list[str] | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LATENT_EXPLORER_DIST_TIMEOUT": "30"}
    program = program or [str(ROOT / "main.py"), "train", *args, "--distributed", "--quiet"]
    return subprocess.Popen([str(TORCHRUN), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                             "--master_port", str(_free_port()), *program], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    flags = ["--data", "digits", "--model", "ae", "--latent-dim", "4", "--epochs", "3", "--batch-size", "64"]
    proc = _torchrun([*flags, "--out", str(tmp_path / "ddp")])
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    ddp = [row["train_loss"] for row in read_metrics(tmp_path / "ddp" / "metrics.csv")]
    one = prepare_training(DataConfig(spec="digits"), ModelConfig(kind="ae", latent_dim=4),
                           TrainConfig(epochs=3, batch_size=64))
    assert train_to_end(one.trainer).reason == "completed"
    single = [h.train_loss for h in one.trainer.history]
    assert len(ddp) == 3
    assert np.allclose(ddp, single, rtol=LOSS_RTOL), (ddp, single)
    run = load_run(tmp_path / "ddp")   # rank 0 wrote a complete run directory that opens
    assert run.model.kind == "ae" and len(run.history) == 3
    assert "across 2 processes (gloo)" in out and out.count("saved ") == 1   # rank 1 wrote nothing
    assert "gloo, DistributedDataParallel)" in out   # the saved line names the engine that averaged


def test_aae_three_optimisers_distributed(tmp_path):
    proc = _torchrun(["--data", "digits", "--model", "aae", "--latent-dim", "2", "--epochs", "2",
                      "--batch-size", "64", "--out", str(tmp_path / "aae")])
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    rows = read_metrics(tmp_path / "aae" / "metrics.csv")
    assert len(rows) == 2 and all(np.isfinite(r["train_discriminator"]) for r in rows)
    assert load_run(tmp_path / "aae").model.kind == "aae"


def test_odd_batch_refused_with_the_fix(tmp_path):
    proc = _torchrun(["--data", "digits", "--epochs", "1", "--batch-size", "63", "--out", str(tmp_path / "odd")])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "use a multiple of 2" in out


def _rank_process(root: psutil.Process, rank: str) -> psutil.Process | None:
    for child in root.children(recursive=True):
        try:
            if child.environ().get("RANK") == rank and "main.py" in " ".join(child.cmdline()):
                return child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def test_a_dead_rank_stops_the_other_and_the_run_still_loads(tmp_path):
    run_dir = tmp_path / "dies"
    proc = _torchrun(["--data", "digits", "--model", "vae", "--epochs", "5000", "--batch-size", "64",
                      "--out", str(run_dir)])
    try:
        deadline = time.monotonic() + 120
        while not list((run_dir / "autosave").glob("gen-*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        victim = _rank_process(psutil.Process(proc.pid), "1")
        assert victim is not None, "rank 1 not found"
        victim.kill()
        killed_at = time.monotonic()
        out, _ = proc.communicate(timeout=60)
        stopped_after = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert stopped_after < 30, f"the other rank took {stopped_after:.1f} s to stop"
    assert "lost contact with another training process" in out or "stopped by torchrun" in out, out
    run = load_run(run_dir)      # rank 0 saved the last good weights before exiting
    assert run.model.kind == "vae" and len(run.history) >= 1


# ---- every kind through DistributedDataParallel: this file run by torchrun as the ranks' program ----
@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    """What `_rank_main` reports: per variant, both ranks' curves, wrappers and weights."""
    out = tmp_path_factory.mktemp("kinds")
    proc = _torchrun([], program=["-m", "tests.core.test_ddp", str(out)])
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)], text


def test_every_kind_trains_through_ddp(every_kind):
    (rank0, rank1), text = every_kind
    from tests.core.test_models import VARIANTS
    assert set(rank0["kinds"]) == set(VARIANTS)
    for variant, got in rank0["kinds"].items():
        other = rank1["kinds"][variant]
        assert got["reason"] == other["reason"] == "completed", (variant, got)
        assert got["wrappers"] and all(w == "DistributedDataParallel" for w in got["wrappers"].values()), variant
        assert "DistributedDataParallel" in got["device_name"], got["device_name"]
        # Different half batches on each rank, yet identical weights: DDP averaged the gradients.
        assert got["weights"] == other["weights"], variant
        assert len(got["losses"]) == 2 and np.isfinite(got["losses"]).all(), variant
    assert rank0["kinds"]["aae"]["wrappers"].keys() == {"autoencoder", "generator"}
    assert rank0["aae_weight_0"]["reason"] == rank1["aae_weight_0"]["reason"] == "completed"
    assert rank0["aae_weight_0"]["weights"] == rank1["aae_weight_0"]["weights"]
    assert np.allclose(rank0["aae_weight_0"]["losses"], rank0["aae_weight_0"]["one_process"], rtol=LOSS_RTOL)
    assert "find_unused_parameters=True was specified" not in text   # no phase leaves a wrapped parameter out


def test_two_ranks_follow_one_process(every_kind):
    """Same global batch, same seed, the noise drawn for the global batch: the AAE's three optimisers,
    the contractive penalty's double backward, the VAE's sampled codes all match one process
    (measured: within 2e-7). Every loss here is a mean of per-sample values, so the average of
    two half-batch gradients is the full batch's; beta-tcvae too with its default weights
    (alpha = beta = gamma = 1, where MI + TC + dim-KL telescope to E[log q(z|x) - log p(z)]);
    with other weights its minibatch estimator sees each rank's half batch and would not match."""
    (rank0, _), _ = every_kind
    for variant, got in rank0["kinds"].items():
        assert np.allclose(got["losses"], got["one_process"], rtol=LOSS_RTOL), (variant, got)


def test_nan_on_one_rank_is_one_decision_for_all(every_kind):
    """A NaN in rank 1's half batch only: both ranks raise NonFiniteLoss before stepping (rank 1
    naming its parts, rank 0 the other rank), the weights stay the last good ones on both, and
    the next step trains on both: the collective was joined, nothing hangs."""
    ranks, _ = every_kind
    for rank, report in enumerate(ranks):
        for variant, case in report["nan"].items():
            assert case["raised"], (rank, variant, case)
            assert case["weights_kept"] and case["next_step_finite"], (rank, variant, case)
            assert ("another rank" in case["message"]) == (rank == 0), (rank, variant, case["message"])
    assert ranks[0]["nan"]["vae"]["weights_after"] == ranks[1]["nan"]["vae"]["weights_after"]
    assert ranks[0]["nan"]["aae"]["weights_after"] == ranks[1]["nan"]["aae"]["weights_after"]


def test_every_phase_trains_exactly_the_modules_ddp_wraps():
    """One process, no torchrun: each phase's backward puts gradients on every parameter of its
    phase_modules (DDP runs without find_unused_parameters) and on nothing outside them except
    what the step then drops (the AAE's generator phase reaches the discriminator, which it wraps
    too), so no gradient that a step uses escapes the averaging."""
    import torch

    from app.core.models import StepSettings
    from tests.core.test_models import VARIANTS, make

    for variant in VARIANTS:
        torch.manual_seed(0)
        model, data = make(variant)
        model.train()
        for phase in model.phases:
            model.zero_grad(set_to_none=True)
            model.phase_losses(data[:16], phase, StepSettings(l1_weight=1e-4))["total" if phase == "autoencoder"
                                                                              else "adversarial"].backward()
            wrapped = {id(p) for m in model.phase_modules(phase) for p in m.parameters()}
            touched = {id(p) for p in model.parameters() if p.grad is not None}
            assert touched == wrapped, (variant, phase)


def _weights_sum(model) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters()))


def _train_variant(variant: str, ctx, **overrides) -> dict:
    import torch

    from app.core.distributed import attach
    from app.core.trainer import Trainer
    from tests.core.test_models import make

    cfg = TrainConfig(epochs=2, batch_size=64, lr=3e-3)
    torch.manual_seed(0)
    model, data = make(variant, **overrides)
    trainer = Trainer(model, data.numpy(), None, cfg)
    attach(trainer, ctx)
    finished = train_to_end(trainer)
    report = {"reason": finished.reason, "losses": [h.train_loss for h in trainer.history],
              "device_name": trainer.device_name, "weights": _weights_sum(model),
              "wrappers": {phase: type(w).__name__ for phase, w in model.steps.wrappers.items()}}
    if ctx.rank == 0:   # the same run in one process, for the curves to compare
        torch.manual_seed(0)
        single, _ = make(variant, **overrides)
        one = Trainer(single, data.numpy(), None, cfg)
        train_to_end(one)
        report["one_process"] = [h.train_loss for h in one.history]
    return report


def _nan_case(variant: str, ctx) -> dict:
    """One good step, then a step whose batch holds a NaN on rank 1 only, then a good step."""
    import torch

    from app.core.distributed import attach
    from app.core.models import NonFiniteLoss, StepSettings
    from app.core.trainer import Trainer
    from tests.core.test_models import make

    torch.manual_seed(0)
    model, data = make(variant)
    trainer = Trainer(model, data.numpy(), None, TrainConfig(batch_size=64))
    attach(trainer, ctx)
    optimizers = model.make_optimizers(trainer.cfg)
    model.train()
    mine = data[ctx.rank::ctx.world]
    model.training_step(mine[:32], optimizers, StepSettings())
    before = _weights_sum(model)
    bad = mine[32:64].clone()
    if ctx.rank == 1:
        bad[3] = float("nan")
    case = {"raised": False, "message": ""}
    try:
        model.training_step(bad, optimizers, StepSettings())
    except NonFiniteLoss as exc:
        case.update(raised=True, message=str(exc))
    case["weights_kept"] = _weights_sum(model) == before
    parts = model.training_step(mine[64:96], optimizers, StepSettings())
    case["next_step_finite"] = bool(torch.isfinite(parts["total"]))
    case["weights_after"] = _weights_sum(model)
    return case


def _rank_main(out_dir: str) -> None:
    """One rank (torchrun -m tests.core.test_ddp OUT): every variant for 2 epochs of 4 steps,
    then the NaN cases; writes OUT/rank<r>.json."""
    import torch

    from app.core.distributed import init_from_env, shutdown
    from tests.core.test_models import VARIANTS

    torch.set_num_threads(1)
    ctx = init_from_env()
    report = {"kinds": {v: _train_variant(v, ctx) for v in VARIANTS},
              "nan": {v: _nan_case(v, ctx) for v in ("vae", "aae")},
              # no generator step: its loss is only reported, and the ranks agree on it by an all_reduce
              "aae_weight_0": _train_variant("aae", ctx, adversarial_weight=0.0)}
    Path(out_dir, f"rank{ctx.rank}.json").write_text(json.dumps(report))
    shutdown()


if __name__ == "__main__":
    _rank_main(sys.argv[1])
