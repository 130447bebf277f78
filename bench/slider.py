"""Slider latency in the window's latent traversal: from a slider's value change to the decoded
image painted.

A drag is simulated by a 16 ms timer (a mouse moving at 60 Hz) that sets the slider of the
most informative dimension to its next position, sweeping back and forth. One move is timed from
QSlider.setValue() (which runs the app's whole path: valueChanged -> decode the code on the GUI
thread -> hand the image to the ImageItem) through a synchronous repaint of the decoded image's
view (viewport().repaint(), so "painted" means the pixels were drawn, not merely scheduled).
Between moves the event loop runs normally, so whatever else the window does competes as it would.

Three cases, 200 moves each, window 1440x900 offscreen:
- the MLP VAE (784-400-20 on 1x28x28), idle window;
- the same while the window trains that model on MNIST (the worker thread busy, snapshots arriving);
- conv-vae (latent 10) on 1x32x32 images, idle window.

    python bench/slider.py [--moves 200] [--quick]

Prints a table and, last, one line of JSON: slider_ms_p50 / slider_ms_p95 (MLP, idle) and the same
with suffixes _training and _conv.
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
from bench.common import MNIST_DIR, machine_line, print_table  # noqa: E402

import torch  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402

MOVE_INTERVAL_MS = 16


def traversal_view(window):
    return next(v for v in window.views if type(v).__name__ == "TraversalView")


def set_model(window, kind: str, input_shape: tuple, latent_dim: int, hidden=(400,)) -> None:
    """An untrained model of that shape as the window's current model (decoding costs the same)."""
    from app.core.config import ModelConfig
    from app.core.models import build_model
    from app.core.snapshot import ModelSnapshot

    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, latent_dim=latent_dim, hidden=tuple(hidden)), input_shape, "image", "bce")
    window.state.set_snapshot(ModelSnapshot.of(model, window.state.next_generation(), 0, "image"))


def drag(view, moves: int) -> dict:
    """Move the first (most informative) slider `moves` times, one move per timer tick."""
    dock = view.parentWidget()
    while dock is not None and not hasattr(dock, "toggleViewAction"):
        dock = dock.parentWidget()
    if dock is not None:
        dock.raise_()   # the default layout may tab it behind another view: bring it up, as a user would
    gc.run_for(0.3)
    if not view.rows:
        raise SystemExit("the traversal view shows no sliders")
    stats = view.stats
    row = view.rows[int(stats.order[0])] if stats is not None and len(stats.order) == len(view.rows) else view.rows[0]
    if not (row.slider.isVisible() and view.live_image.graphics.isVisible()):
        raise SystemExit("the traversal's slider or decoded image is not visible")
    target = view.live_image.graphics.viewport()
    latencies: list[float] = []
    decoded = {"n": 0}
    view.decoded.connect(lambda: decoded.__setitem__("n", decoded["n"] + 1))
    position = {"value": row.slider.value(), "step": 7}

    def move() -> None:
        value = position["value"] + position["step"]
        if not 0 <= value <= row.slider.maximum():
            position["step"] = -position["step"]
            value = position["value"] + position["step"]
        position["value"] = value
        start = time.perf_counter()
        row.slider.setValue(value)
        target.repaint()
        latencies.append((time.perf_counter() - start) * 1000.0)
        if len(latencies) >= moves:
            timer.stop()

    timer = QTimer()
    timer.setInterval(MOVE_INTERVAL_MS)
    timer.timeout.connect(move)
    timer.start()
    gc.wait_until(lambda: len(latencies) >= moves, moves * 0.5 + 30)
    timer.stop()
    decode_ms = []
    for _ in range(50):
        start = time.perf_counter()
        view.snapshot.decode_one(view.z)
        decode_ms.append((time.perf_counter() - start) * 1000.0)
    return {"p50": gc.percentile(latencies, 50), "p95": gc.percentile(latencies, 95), "max": max(latencies),
            "moves": len(latencies), "decoded": decoded["n"], "decode_ms": statistics.median(decode_ms)}


def measure(moves: int, quick: bool) -> dict:
    results = {}
    window = gc.open_window(None)
    try:
        view = traversal_view(window)
        set_model(window, "vae", (1, 28, 28), 20)
        gc.run_for(1.0)   # let the projection process (spawned on the first model) settle
        results["mlp"] = drag(view, moves)
        set_model(window, "conv-vae", (1, 32, 32), 10)
        gc.run_for(0.5)
        results["conv"] = drag(view, moves)
    finally:
        gc.close_window(window)

    window = gc.open_window("digits" if quick else str(MNIST_DIR))
    try:
        view = traversal_view(window)
        split, model, train = gc.vae_configs(1000)
        gc.start_training(window, split, model, train)
        if not gc.wait_for(window.state.snapshotChanged, 120):   # the first epoch's snapshot
            raise SystemExit(f"no snapshot arrived: {window.errors}")
        results["training"] = drag(view, moves)
        results["training"]["still_training"] = window.controller.running
        window.controller.stop()
        gc.wait_for(window.controller.trainingStopped, 60)
    finally:
        gc.close_window(window)
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 moves, training on digits (smoke test)")
    args = parser.parse_args(argv)
    moves = 20 if args.quick else args.moves
    load_before = gc.load_text()
    r = measure(moves, args.quick)
    figures = {
        "slider_ms_p50": round(r["mlp"]["p50"], 2),
        "slider_ms_p95": round(r["mlp"]["p95"], 2),
        "slider_ms_p50_training": round(r["training"]["p50"], 2),
        "slider_ms_p95_training": round(r["training"]["p95"], 2),
        "slider_ms_p50_conv": round(r["conv"]["p50"], 2),
        "slider_ms_p95_conv": round(r["conv"]["p95"], 2),
    }
    print(machine_line())
    print(f"{load_before} before; {gc.load_text()} after")
    print_table(["case", "moves", "decoded", "p50 ms", "p95 ms", "max ms", "decode only ms"], [
        [name, x["moves"], x["decoded"], f"{x['p50']:.2f}", f"{x['p95']:.2f}", f"{x['max']:.1f}", f"{x['decode_ms']:.3f}"]
        for name, x in (("MLP VAE 784-400-20, idle", r["mlp"]), ("MLP VAE while training", r["training"]),
                        ("conv-vae 32x32, idle", r["conv"]))])
    print("targets: p50 <= 8 ms, p95 <= 16 ms (the MLP VAE)")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
