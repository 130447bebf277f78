"""Hyperparameter search: trials per minute with 1 and 2 parallel jobs, and what a short Bayesian
search finds against the default settings.

MNIST test set (10,000 images in ../shared/data/mnist, 8,000 train / 2,000 held out by the app's
seeded split; digits with --quick or without MNIST), VAE, objective val_loss: the held-out negative
ELBO per image (one z sample, seeded), lower is better.

    python bench/search.py [--quick] [--epochs N] [--trials N]

1. throughput: a random search of N trials without pruning, once with --jobs 1, once with --jobs 2
   (the same space and budget); trials per minute counts the whole search, process start included.
2. quality: the default settings (lr 1e-3, latent 10, hidden 400, beta 1) as a one-point search,
   then a TPE search of 2N trials, 2 jobs, Hyperband pruning, over lr, latent_dim and hidden.

Prints the figures and, last, one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import MNIST_DIR, machine_line, print_table  # noqa: E402
from app.core.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from app.core.search import run_search, spec_from_settings  # noqa: E402

THROUGHPUT_SPACE = "lr = { low = 3e-4, high = 3e-3, log = true }\n"
QUALITY_SPACE = ("lr = { low = 3e-4, high = 1e-2, log = true }\nlatent_dim = { low = 5, high = 40 }\n"
                 "hidden = [[200], [400], [400, 200]]\n")


def timed_search(out: Path, spec) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    result = run_search(out, spec)
    return time.perf_counter() - started, result.rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits, fewer trials (a smoke run)")
    parser.add_argument("--epochs", type=int, default=0, help="epochs per trial (default 5; quick 2)")
    parser.add_argument("--trials", type=int, default=0, help="trials per throughput search (default 8; quick 3)")
    args = parser.parse_args(argv)
    mnist = not args.quick and (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()
    data = DataConfig(spec=str(MNIST_DIR) if mnist else "digits")
    epochs = args.epochs or (2 if args.quick else 5)
    trials = args.trials or (3 if args.quick else 8)
    train = TrainConfig(epochs=epochs, batch_size=128, device="cpu")
    model = ModelConfig(kind="vae")
    print(machine_line())
    print(f"data: {'MNIST test set (8,000 train / 2,000 held out)' if mnist else 'digits'}, vae, {epochs} epochs "
          f"per trial, objective val_loss (held-out negative ELBO per image)")
    figures: dict = {"data": "mnist" if mnist else "digits", "epochs": epochs}
    with tempfile.TemporaryDirectory() as tmp:
        rates = {}
        for jobs in (1, 2):
            spec = spec_from_settings(data, model, train, THROUGHPUT_SPACE, method="random", trials=trials, jobs=jobs,
                                      pruner="none")
            seconds, rows = timed_search(Path(tmp) / f"throughput-{jobs}", spec)
            rates[jobs] = 60.0 * sum(r["state"] == "complete" for r in rows) / seconds
            print(f"jobs {jobs}: {trials} trials in {seconds:.1f} s = {rates[jobs]:.2f} trials/min")
        figures.update(trials_per_minute_j1=round(rates[1], 3), trials_per_minute_j2=round(rates[2], 3),
                       speedup_j2=round(rates[2] / rates[1], 3))
        default_spec = spec_from_settings(data, model, train, "lr = [1e-3]\n", method="grid", trials=1, pruner="none")
        _, default_rows = timed_search(Path(tmp) / "default", default_spec)
        search_spec = spec_from_settings(data, model, train, QUALITY_SPACE, method="bayes", trials=2 * trials, jobs=2,
                                         pruner="hyperband")
        seconds, rows = timed_search(Path(tmp) / "bayes", search_spec)
    default = default_rows[0]["value"]
    done = [r for r in rows if r["state"] == "complete"]
    best = min(done, key=lambda r: r["value"])
    states = [r["state"] for r in rows]
    print(f"bayes (TPE, hyperband): {len(rows)} trials in {seconds:.1f} s: {states.count('complete')} complete, "
          f"{states.count('pruned')} pruned, {states.count('failed')} failed")
    print_table(["", "val_loss", "lr", "latent_dim", "hidden"],
                [["default settings", f"{default:.2f}", "0.001", 10, "400"],
                 [f"best of the search (trial {best['trial']})", f"{best['value']:.2f}", f"{best['lr']:.3g}",
                  best["latent_dim"], best["hidden"]]])
    figures.update(default_val_loss=round(default, 3), best_val_loss=round(best["value"], 3),
                   best_settings={k: best[k] for k in ("lr", "latent_dim", "hidden")}, search_seconds=round(seconds, 1),
                   search_trials=len(rows), pruned=states.count("pruned"))
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
