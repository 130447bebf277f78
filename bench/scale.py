"""Issue 14 figures: data larger than memory, training across processes, and a million points in
the maps. Prints each figure and one last JSON line.

    python bench/scale.py              # everything
    python bench/scale.py --only mmap,ddp
    python bench/scale.py --only scatter

mmap_train_rss_mb: resident memory above the idle process (torch and the app imported) at its peak
    while training on a generated 2,000,000 x 28 x 28 uint8 .npy (1.5 GB, written in chunks to
    /tmp), memory-mapped, for `--mmap-seconds`.
mmap_throughput_ratio: samples/s of the in-memory path / the memory-mapped path on the MNIST test
    set converted by main.py convert (784-400-20 VAE, batch 128, epochs 2-3 averaged; <= 1.2 wanted).
ddp_speedup: epoch time of one process (all cores) / two gloo processes under torchrun (one thread
    each), same global batch, MNIST 10k, VAE 784-400-20, batch 256.
scatter_1m_update_ms / scatter_1m_fps: bench/scatter.py's measure() with 1,000,000 points (10
    blobs coloured by class, 800x600 offscreen): set_points + a synchronous repaint (median of 3,
    after a first one shown apart), and 60 pan steps of 1% of the width, each with the scatter's
    refresh and a synchronous repaint. Targets: <= 300 ms, >= 30 fps.
hover_1m_ms: median time of hover_at at 300 positions (half near a point, half anywhere in the
    data's extent) on the zoomed-out 1,000,000-point map (the widest hover radius in data units);
    target <= 16 ms. rect_1m_ms / lasso_1m_ms: select_rect of a rectangle a fifth of the extent
    wide (median of 5) and select_polygon of a 400-vertex wavy outline around about half the
    points (median of 3), both returning indices. scatter_1m_zoomed_fps: the same pan steps
    zoomed in until just under the marker limit (VISIBLE_MARKERS_MAX) is in view, drawn as markers.
    zoom_1m_ms: a 3% zoom step, which bins the density image again, plus a paint (median of 10;
    a pan re-bins only when it leaves the image's margin, every ~25 of the 1% steps).
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


def _median_ms(fn, repeats: int) -> float:
    import statistics

    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def scatter_queries(n: int = 1_000_000) -> dict:
    """Hover, rectangle and lasso on an n-point FastScatter (the widget the maps use)."""
    import numpy as np

    from bench import gui_common as gc
    from bench.scatter import blobs

    gc.qt_app()
    from app.gui import point_colors
    from app.gui.scatter import FastScatter

    scatter = FastScatter()
    scatter.resize(800, 600)
    scatter.show()
    gc.run_for(0.2)
    xy, labels = blobs(n, seed=0)
    c = point_colors.by_class(labels)
    scatter.set_points(xy, c.groups, c.colors, c.legend)
    scatter.viewport().repaint()
    rng = np.random.default_rng(1)
    lo, hi = xy.min(0), xy.max(0)
    near = xy[rng.integers(0, n, 150)] + rng.normal(scale=0.01, size=(150, 2))
    anywhere = lo + rng.random((150, 2)) * (hi - lo)
    targets = np.concatenate([near, anywhere])
    try:
        scatter.hover_at(*targets[0])
        hover = _median_ms(lambda i: scatter.hover_at(*targets[i]), len(targets))
        hover_times = []
        for t in targets:
            start = time.perf_counter()
            scatter.hover_at(*t)
            hover_times.append((time.perf_counter() - start) * 1000.0)
        corners = lo + rng.random((5, 2)) * (hi - lo) * 0.8
        rect_sizes = []

        def rect(i):
            rect_sizes.append(len(scatter.select_rect(corners[i], corners[i] + (hi - lo) * 0.2)))

        rect_ms = _median_ms(rect, 5)
        theta = np.linspace(0, 2 * np.pi, 400, endpoint=False)
        centre, radius = (lo + hi) / 2, (hi - lo) * 0.35
        outline = np.c_[centre[0] + radius[0] * np.cos(theta) * (1 + 0.1 * np.sin(9 * theta)),
                        centre[1] + radius[1] * np.sin(theta)]
        lasso_sizes = []
        lasso_ms = _median_ms(lambda i: lasso_sizes.append(len(scatter.select_polygon(outline))), 3)
        box = scatter.getPlotItem().getViewBox()

        def zoom(i):   # a wheel step: a new scale, so the density image is binned again
            box.scaleBy(s=(0.97, 0.97) if i % 2 == 0 else (1 / 0.97, 1 / 0.97))
            scatter.refresh_now()
            scatter.viewport().repaint()

        zoom_ms = _median_ms(zoom, 10)
        zoomed = _zoomed_pan(scatter, xy)
    finally:
        scatter.close()
        scatter.deleteLater()
    hover_times.sort()
    return {"hover_1m_ms": round(hover, 2), "hover_1m_p95_ms": round(hover_times[int(0.95 * len(hover_times))], 2),
            "rect_1m_ms": round(rect_ms, 1), "rect_1m_points": int(np.median(rect_sizes)),
            "lasso_1m_ms": round(lasso_ms, 1), "lasso_1m_points": lasso_sizes[0], "zoom_1m_ms": round(zoom_ms, 1),
            **zoomed}


def _zoomed_pan(scatter, xy, frames: int = 40) -> dict:
    """Pan fps zoomed in until just under the marker limit is in view: the slowest marker case."""
    import numpy as np

    from app.gui.scatter import VISIBLE_MARKERS_MAX
    from app.gui.density_index import XIndex

    index, box = XIndex(xy), scatter.getPlotItem().getViewBox()
    cx, cy = np.median(xy, 0)
    def count(h):
        return index.count_in(cx - h, cx + h, cy - h, cy + h)

    half = 0.05
    while count(half * 1.05) <= 0.95 * VISIBLE_MARKERS_MAX:
        half *= 1.05
    box.setRange(xRange=(cx - half, cx + half), yRange=(cy - half, cy + half), padding=0)
    scatter.refresh_now()
    scatter.viewport().repaint()
    (x0, x1), (y0, y1) = box.viewRange()
    visible, drawing = index.count_in(x0, x1, y0, y1), scatter.drawing
    start = time.perf_counter()
    for f in range(frames):
        box.translateBy(x=(x1 - x0) * 0.01 * (1 if (f // 20) % 2 == 0 else -1))
        scatter.refresh_now()
        scatter.viewport().repaint()
    fps = frames / (time.perf_counter() - start)
    print(f"zoomed in to {visible:,} points in view ({drawing}): panning {fps:.1f} fps")
    return {"scatter_1m_zoomed_fps": round(fps, 1), "scatter_1m_zoomed_visible": visible}


def scatter_million(args) -> dict:
    from bench import gui_common as gc
    from bench.scatter import measure

    n = 1_000_000
    load_before = gc.load_text()
    r = measure(n, updates=4, frames=60)
    q = scatter_queries(n)
    print(f"{load_before} before; {gc.load_text()} after")
    print(f"scatter, 1,000,000 points at 800x600: set_points + paint {r['update_ms']:.0f} ms (first "
          f"{r['first_ms']:.0f} ms), panning {r['fps']:.1f} fps (frame p95 {r['frame_p95_ms']:.1f} ms); "
          f"targets <= 300 ms, >= 30 fps")
    print(f"hover {q['hover_1m_ms']:.2f} ms median, p95 {q['hover_1m_p95_ms']:.2f} ms (target <= 16); "
          f"rectangle {q['rect_1m_ms']:.1f} ms ({q['rect_1m_points']:,} points); "
          f"lasso 400 vertices {q['lasso_1m_ms']:.1f} ms ({q['lasso_1m_points']:,} points); "
          f"a zoom step (density binned again) + paint {q['zoom_1m_ms']:.1f} ms")
    return {"scatter_1m_update_ms": round(r["update_ms"], 1), "scatter_1m_first_update_ms": round(r["first_ms"], 1),
            "scatter_1m_fps": round(r["fps"], 1), "scatter_1m_frame_p95_ms": round(r["frame_p95_ms"], 1), **q}


# name -> function returning figures
FIGURES = {"mmap": lambda a: {**mmap_rss(a.mmap_seconds), **mmap_throughput()}, "ddp": lambda a: ddp_speedup(),
           "scatter": scatter_million}


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
