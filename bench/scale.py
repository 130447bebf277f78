"""Issue 14 figures: data larger than memory, training across processes (H8), and a million points
in the maps (H5's functions, added beside these). Prints each figure and one last JSON line.

    python bench/scale.py              # everything
    python bench/scale.py --only mmap,ddp

mmap_train_rss_mb: resident memory above the idle process (torch and the app imported) at its peak
    while training on a generated 2,000,000 x 28 x 28 uint8 .npy (1.5 GB, written in chunks to
    /tmp), memory-mapped, for `--mmap-seconds`.
mmap_throughput_ratio: samples/s of the in-memory path / the memory-mapped path on the MNIST test
    set converted by main.py convert (784-400-20 VAE, batch 128, epochs 2-3 averaged; <= 1.2 wanted).
ddp_speedup: epoch time of one process (all cores) / two gloo processes under torchrun (one thread
    each), same global batch, MNIST 10k, VAE 784-400-20, batch 256.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import MNIST_DIR, ROOT, machine_line  # noqa: E402

BIG_N = 2_000_000


def _generate_big(path: Path) -> None:
    import numpy as np

    if path.exists() and path.stat().st_size > BIG_N * 784:
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(BIG_N, 28, 28))
    rng = np.random.default_rng(0)
    for start in range(0, BIG_N, 100_000):   # chunked: never the whole array in memory
        out[start:start + 100_000] = rng.integers(0, 256, (100_000, 28, 28), dtype=np.uint8)
    out.flush()
    del out


_RSS_CHILD = r"""
import sys, threading, time, psutil
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.session import prepare_training
from app.core.trainer import TrainControl, EpochResult, TrainProgress
proc = psutil.Process()
idle = proc.memory_info().rss
peak = [idle]
def watch():
    while True:
        peak[0] = max(peak[0], proc.memory_info().rss); time.sleep(0.05)
threading.Thread(target=watch, daemon=True).start()
s = prepare_training(DataConfig(spec=sys.argv[1], memory_map="on", val_fraction=0.01),
                     ModelConfig(kind="vae", latent_dim=20, hidden=(400,)), TrainConfig(epochs=1, batch_size=256))
control = TrainControl(); t0 = time.perf_counter(); samples = 0
for ev in s.trainer.run(control):
    if isinstance(ev, TrainProgress):
        samples = ev.step * 256
        if time.perf_counter() - t0 > float(sys.argv[2]): control.stop()
print("RESULT", (peak[0] - idle) / 2**20, idle / 2**20, samples, samples / (time.perf_counter() - t0))
"""


def mmap_rss(seconds: float) -> dict:
    path = Path(tempfile.gettempdir()) / "latent-explorer-2m.npy"
    t = time.perf_counter()
    _generate_big(path)
    print(f"generated {path} ({path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t:.1f} s")
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), str(seconds)], cwd=ROOT, capture_output=True,
                         text=True, timeout=seconds + 300)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    if not line:
        raise RuntimeError(out.stderr[-2000:])
    above, idle, samples, rate = map(float, line[0].split()[1:])
    print(f"mmap training on 2,000,000 x 28 x 28 uint8: peak resident {above:.0f} MB above idle ({idle:.0f} MB), "
          f"{samples:,.0f} samples in {seconds:.0f} s ({rate:,.0f} samples/s)")
    return {"mmap_train_rss_mb": round(above, 1), "mmap_idle_rss_mb": round(idle, 1),
            "mmap_2m_samples_per_s": round(rate)}


def mmap_throughput(repeats: int = 2) -> dict:
    from app.core.config import DataConfig, ModelConfig, TrainConfig
    from app.core.convert import convert
    from app.core.session import prepare_training
    from app.core.trainer import train_to_end

    npy = Path(tempfile.gettempdir()) / "latent-explorer-mnist.npy"
    convert(DataConfig(spec=str(MNIST_DIR)), npy)
    rates = {"off": [], "on": []}
    for _ in range(repeats):           # alternate, so drift on a shared machine hits both
        for mode in ("off", "on"):
            s = prepare_training(DataConfig(spec=str(npy), memory_map=mode), ModelConfig(kind="vae", latent_dim=20),
                                 TrainConfig(epochs=3, batch_size=128))
            train_to_end(s.trainer)
            rates[mode] += [h.samples_per_second for h in s.trainer.history[1:]]
    memory, mapped = (sum(v) / len(v) for v in (rates["off"], rates["on"]))
    print(f"MNIST 8k train: in memory {memory:,.0f} samples/s, memory-mapped {mapped:,.0f} samples/s, "
          f"ratio {memory / mapped:.3f}")
    return {"mmap_throughput_ratio": round(memory / mapped, 3), "inmemory_samples_per_s": round(memory),
            "mmap_samples_per_s": round(mapped)}


def _epoch_seconds(run_dir: Path) -> float:
    from app.core.checkpoint import read_metrics

    rows = read_metrics(run_dir / "metrics.csv")[1:]   # the first epoch includes warm-up
    return sum(r["seconds"] for r in rows) / len(rows)


def ddp_speedup(epochs: int = 3) -> dict:
    flags = ["train", "--data", str(MNIST_DIR), "--model", "vae", "--latent-dim", "20", "--epochs", str(epochs),
             "--batch-size", "256", "--quiet"]
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one"
        subprocess.run([sys.executable, str(ROOT / "main.py"), *flags, "--out", str(one)], cwd=ROOT, check=True,
                       capture_output=True, timeout=900)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        two = Path(tmp) / "two"
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // 2))}
        subprocess.run([str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", "2", "--master_port",
                        str(port), str(ROOT / "main.py"), *flags, "--out", str(two), "--distributed"], cwd=ROOT,
                       check=True, capture_output=True, timeout=900, env=env)
        t1, t2 = _epoch_seconds(one), _epoch_seconds(two)
    print(f"DDP (gloo, CPU): one process {t1:.2f} s/epoch, two processes {t2:.2f} s/epoch, speed-up {t1 / t2:.2f}x")
    return {"ddp_speedup": round(t1 / t2, 3), "ddp_one_process_epoch_s": round(t1, 3),
            "ddp_two_process_epoch_s": round(t2, 3)}


# name -> function returning figures; H5 adds the million-point ones here.
FIGURES = {"mmap": lambda a: {**mmap_rss(a.mmap_seconds), **mmap_throughput()}, "ddp": lambda a: ddp_speedup()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated groups: " + ", ".join(FIGURES))
    parser.add_argument("--mmap-seconds", type=float, default=40.0, help="training time on the 2M-sample file")
    args = parser.parse_args()
    print(machine_line())
    chosen = [g for g in (args.only.split(",") if args.only else FIGURES) if g]
    figures: dict = {}
    for group in chosen:
        figures.update(FIGURES[group](args))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
