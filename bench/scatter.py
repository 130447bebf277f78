"""The projection scatter with 70,000 points coloured by label: the time to set the points and
paint them, and frames per second while panning.

The widget is the app's FastScatter (app/gui/scatter.py) at 800x600, offscreen, fed the way the
projection view feeds it: an (N, 2) array, one group index per point and a palette of 10 colours
from point_colors.by_class, with the legend. The points are 10 Gaussian blobs, like a projection
of MNIST's 70,000 images.

- scatter_update_ms: set_points() plus a synchronous repaint, median of 5 (each with new
  coordinates, so the view also re-ranges; the first, which builds the symbol cache, is shown apart).
- scatter_fps: 60 pan steps (ViewBox.translateBy, 1% of the width each), each followed by the
  scatter's refresh (re-binning its density image when it has many points) and a synchronous
  repaint; frames / elapsed seconds.

`measure` is also bench/scale.py's million-point figure (the same widget, size and steps).
- selection_ms / selection_clear_ms: on a 10,000-point scatter (the window's exploring cap),
  set_selected() of a 1,500-point rectangle's worth of points (selected keep their colour, the
  rest greyed) plus a synchronous repaint, and clearing it plus a repaint; median of 5 each.

    python bench/scatter.py [--points 70000] [--quick]

Prints a table and, last, one line of JSON with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gui_common as gc  # noqa: E402  (sets QT_QPA_PLATFORM=offscreen)
from bench.common import machine_line, print_table  # noqa: E402

import numpy as np  # noqa: E402


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centres = rng.normal(scale=8.0, size=(10, 2))
    return centres[labels] + rng.normal(size=(n, 2)), labels


def measure(n: int, updates: int, frames: int) -> dict:
    gc.qt_app()
    from app.gui import point_colors
    from app.gui.scatter import FastScatter

    scatter = FastScatter()
    scatter.setBackground("w")
    scatter.resize(800, 600)
    scatter.show()
    gc.run_for(0.2)
    viewport = scatter.viewport()
    update_ms = []
    try:
        for i in range(updates):
            xy, labels = blobs(n, seed=i)
            colouring = point_colors.by_class(labels)
            start = time.perf_counter()
            scatter.set_points(xy, colouring.groups, colouring.colors, colouring.legend)
            viewport.repaint()
            update_ms.append((time.perf_counter() - start) * 1000.0)
            gc.run_for(0.05)
        view_box = scatter.getPlotItem().getViewBox()
        width = view_box.viewRange()[0][1] - view_box.viewRange()[0][0]
        frame_ms = []
        start = time.perf_counter()
        for f in range(frames):
            t = time.perf_counter()
            view_box.translateBy(x=width * 0.01 * (1 if (f // 20) % 2 == 0 else -1))
            scatter.refresh_now()   # what the debounced range signal runs (a no-op for <= 100,000 points)
            viewport.repaint()
            frame_ms.append((time.perf_counter() - t) * 1000.0)
        elapsed = time.perf_counter() - start
    finally:
        scatter.close()
        scatter.deleteLater()
    later = update_ms[1:] or update_ms
    return {"first_ms": update_ms[0], "update_ms": statistics.median(later), "fps": frames / elapsed,
            "frame_p95_ms": gc.percentile(frame_ms, 95), "items": len(later)}


def measure_selection(n: int = 10_000, rounds: int = 5) -> dict:
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
    select_ms, clear_ms = [], []
    try:
        for r in range(rounds):
            chosen = np.flatnonzero(np.abs(xy[:, 0] - np.median(xy[:, 0]) - r) < np.ptp(xy[:, 0]) * 0.08)[:1500]
            start = time.perf_counter()
            scatter.set_selected(chosen)
            scatter.viewport().repaint()
            select_ms.append((time.perf_counter() - start) * 1000.0)
            start = time.perf_counter()
            scatter.set_selected([])
            scatter.viewport().repaint()
            clear_ms.append((time.perf_counter() - start) * 1000.0)
    finally:
        scatter.close()
        scatter.deleteLater()
    return {"selection_ms": statistics.median(select_ms), "selection_clear_ms": statistics.median(clear_ms)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=70_000)
    parser.add_argument("--quick", action="store_true", help="2 updates, 10 frames (smoke test)")
    args = parser.parse_args(argv)
    updates, frames = (2, 10) if args.quick else (6, 60)
    load_before = gc.load_text()
    r = measure(args.points, updates, frames)
    sel = measure_selection(rounds=2 if args.quick else 5)
    figures = {"scatter_update_ms": round(r["update_ms"], 1), "scatter_fps": round(r["fps"], 1),
               "scatter_first_update_ms": round(r["first_ms"], 1), "scatter_points": args.points,
               "selection_ms": round(sel["selection_ms"], 1), "selection_clear_ms": round(sel["selection_clear_ms"], 1)}
    print(machine_line())
    print(f"{load_before} before; {gc.load_text()} after")
    print_table(["points", "first set+paint ms", "set+paint ms (median)", "pan fps", "pan frame p95 ms"], [
        [f"{args.points:,}", f"{r['first_ms']:.1f}", f"{r['update_ms']:.1f}", f"{r['fps']:.1f}",
         f"{r['frame_p95_ms']:.1f}"]])
    print(f"selection on 10,000 points: select {sel['selection_ms']:.1f} ms, clear {sel['selection_clear_ms']:.1f} ms "
          "(set_selected + synchronous repaint, median)")
    print("targets: set+paint <= 100 ms, >= 30 fps panning, selection <= 100 ms")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
