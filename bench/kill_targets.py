"""Crash-safety harness: processes that save checkpoints non-stop, killed with SIGKILL at random.

Two kinds of victims:

* save-loop children of a fork server. The server imports the core once, then forks one child per
  kill; the child saves a small model in a tight loop, rotating between (a) saving over the same
  run directory, (b) an Autosaver generation and (c) a fresh run directory of its own. Forking
  makes hundreds of kills cheap, and every kill lands somewhere in the atomic-write path.
  Each save writes a random marker into both a weight and model.json's metrics, so the checker
  can prove that the weights it loads are the ones that model.json describes.
* real CLI trainings (`main.py train` with many one-tenth-of-a-second epochs and autosave).

`check_tree(root)` then opens every run directory and generation below `root`: each must load
completely (load_run) or raise CheckpointError saying it holds no finished checkpoint. Anything
else (another message, another exception type, marker mismatch) is a failure.

Run as `python -m bench.kill_targets fork-server WORKDIR` (the server; see KillHarness).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNFINISHED = "no finished checkpoint"


# ---------------------------------------------------------------------------------------------
# The victim side

def _serve(workdir: Path) -> None:
    import torch
    torch.set_num_threads(1)   # no OpenMP pool in the parent: forked children must not inherit one

    from app.core.autosave import Autosaver
    from app.core.checkpoint import save_run
    from app.core.config import DataConfig, ModelConfig, TrainConfig
    from app.core.models import build_model

    data_cfg, train_cfg = DataConfig(spec="digits"), TrainConfig(epochs=1)
    model = build_model(ModelConfig(kind="ae", latent_dim=4, hidden=(32,)), (1, 8, 8), "image", "bce")
    marker_param = next(p for name, p in model.named_parameters() if name.endswith("bias"))
    workdir.mkdir(parents=True, exist_ok=True)
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "spawn":
            pid = os.fork()
            if pid == 0:  # child: save forever (or 60 s), never return into the server loop
                try:
                    devnull = os.open(os.devnull, os.O_RDWR)
                    os.dup2(devnull, 0)
                    os.dup2(devnull, 1)
                    _save_loop(workdir, arg, model, marker_param, data_cfg, train_cfg, Autosaver, save_run)
                finally:
                    os._exit(0)
            print(f"pid {pid}", flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(arg), 0)
            print(f"reaped {arg} {status}", flush=True)
        elif command == "quit":
            break


def _save_loop(workdir, fresh_name, model, marker_param, data_cfg, train_cfg, autosaver_cls, save_run):
    import torch

    rng = random.Random(os.getpid())
    saver = autosaver_cls(workdir / "autosave", data_cfg=data_cfg, train_cfg=train_cfg, modality="image")
    deadline = time.monotonic() + 60
    i = 0
    while time.monotonic() < deadline:
        marker = float(torch.tensor(rng.random(), dtype=torch.float32))
        with torch.no_grad():
            marker_param.fill_(marker)
        metrics = {"marker": marker}
        which = i % 3
        if which == 0:
            save_run(workdir / "overwrite", model, data_cfg=data_cfg, train_cfg=train_cfg, modality="image",
                     history=[{"epoch": i, "train_loss": marker}], metrics=metrics)
        elif which == 1:
            saver.save(model, [{"epoch": i, "train_loss": marker, "marker": marker}], epoch=i)
            if saver.errors:
                raise SystemExit(saver.errors[-1])
        else:
            save_run(workdir / fresh_name, model, data_cfg=data_cfg, train_cfg=train_cfg, modality="image",
                     metrics=metrics)
        i += 1


# ---------------------------------------------------------------------------------------------
# The checking side

@dataclass
class TreeReport:
    loaded: int = 0                  # run directories that loaded completely
    from_previous: int = 0           # ... of which through the kept previous weights (save killed mid-way)
    unfinished: int = 0              # ... that said they hold no finished checkpoint
    failures: list[str] = field(default_factory=list)   # anything else: the promise is broken


def _is_run_dir(path: Path) -> bool:
    if path.name.startswith("."):
        return False   # .gen-N.partial / .gen-N.old: never read by anyone
    if path.name.startswith("gen-"):
        return True
    return any((path / name).exists() for name in ("model.json", "model.safetensors", "metrics.csv"))


def check_run_dir(path: Path, report: TreeReport) -> None:
    from app.core.checkpoint import load_run
    from app.core.errors import CheckpointError

    try:
        run = load_run(path)
    except CheckpointError as exc:
        if UNFINISHED in str(exc):
            report.unfinished += 1
        else:
            report.failures.append(f"{path}: CheckpointError without '{UNFINISHED}': {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - this is exactly what must never happen
        report.failures.append(f"{path}: {type(exc).__name__}: {exc}")
        return
    marker = run.meta.get("metrics", {}).get("marker")
    if marker is None:
        hist = run.history[-1] if run.history else {}
        marker = hist.get("marker")
    if marker is not None:
        state = run.model.state_dict()
        name = next(k for k in state if k.endswith("bias"))
        if float(state[name][0]) != float(marker):
            report.failures.append(f"{path}: weights carry marker {float(state[name][0])} but model.json says {marker}")
            return
    report.loaded += 1
    import hashlib
    if hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest() != run.meta["weights_sha256"]:
        report.from_previous += 1


def check_tree(root: Path, report: TreeReport | None = None) -> TreeReport:
    """Check every run directory and autosave generation below root."""
    from app.core.autosave import generations, latest_autosave

    report = report or TreeReport()
    for folder in sorted({p.parent for p in root.rglob("*") if p.is_file()} | {p for p in root.rglob("gen-*")}):
        if _is_run_dir(folder):
            check_run_dir(folder, report)
    for autosave_dir in {p.parent for p in root.rglob("gen-*")}:
        gens = generations(autosave_dir)
        if gens and latest_autosave(autosave_dir) != gens[0]:
            report.failures.append(f"{autosave_dir}: the newest generation {gens[0].name} does not load")
        if len(gens) > 2:
            report.failures.append(f"{autosave_dir}: {len(gens)} generations kept, expected at most 2")
    return report


# ---------------------------------------------------------------------------------------------
# The killer

class KillHarness:
    """Drives a fork server: `kill_save_loop()` forks a saving child and SIGKILLs it after a
    uniform random delay."""

    def __init__(self, workdir: Path, max_delay_s: float = 0.3, seed: int = 0):
        self.workdir = Path(workdir)
        self.max_delay_s = max_delay_s
        self.rng = random.Random(seed)
        self.kills = 0
        self.server = subprocess.Popen([sys.executable, "-m", "bench.kill_targets", "fork-server", str(self.workdir)],
                                       cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.server.stdout.readline().strip()
        if line != "ready":
            self.close()
            raise RuntimeError(f"fork server did not start: {line!r}")

    def kill_save_loop(self, fresh_name: str | None = None) -> float:
        fresh_name = fresh_name or f"fresh-{self.kills}"
        self.server.stdin.write(f"spawn {fresh_name}\n")
        reply = self.server.stdout.readline().split()
        pid = int(reply[1])
        delay = self.rng.uniform(0.0, self.max_delay_s)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        self.server.stdin.write(f"reap {pid}\n")
        reaped = self.server.stdout.readline().split()
        status = int(reaped[2])
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            raise RuntimeError(f"save loop {pid} ended by itself (status {status}) before the kill: it failed")
        self.kills += 1
        return delay

    def close(self) -> None:
        if self.server.poll() is None:
            try:
                self.server.stdin.write("quit\n")
                self.server.stdin.close()
                self.server.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.server.kill()
                self.server.wait()


def kill_cli_training(out: Path, rng: random.Random, max_after_first_save_s: float = 1.5,
                      start_timeout_s: float = 60.0) -> str:
    """Start a real `main.py train` with autosave and SIGKILL it at a random moment after its first
    autosave appeared. Returns what the process was doing ('after N generations')."""
    args = [sys.executable, "main.py", "train", "--data", "digits", "--limit", "400", "--model", "vae",
            "--hidden", "16", "--latent-dim", "2", "--batch-size", "100", "--epochs", "100000", "--quiet",
            "--out", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + start_timeout_s
        while not (out / "autosave" / "gen-1").exists():
            if proc.poll() is not None:
                raise RuntimeError(f"training ended before its first autosave: {proc.stderr.read().decode()[-500:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("training wrote no autosave in time")
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, max_after_first_save_s))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    from app.core.autosave import generations
    gens = generations(out / "autosave")
    return f"killed at generation {gens[0].name if gens else 'none'}"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "fork-server":
        _serve(Path(sys.argv[2]))
    else:
        sys.exit("usage: python -m bench.kill_targets fork-server WORKDIR")
