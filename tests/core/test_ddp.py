"""Two gloo processes started by torchrun (app/core/distributed.py), on this CPU machine (issue 14).

Each test starts torchrun itself as a subprocess on a free port, with a timeout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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
# so the only differences are float summation orders. Measured: equal to 4 decimals; allowed 1e-4.
LOSS_RTOL = 1e-4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LATENT_EXPLORER_DIST_TIMEOUT": "30"}
    return subprocess.Popen([str(TORCHRUN), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                             "--master_port", str(_free_port()), str(ROOT / "main.py"), "train", *args,
                             "--distributed", "--quiet"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


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
