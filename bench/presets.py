"""Do the recommended settings (app/core/presets.py) give a visibly working model in about a
minute on a 2-core CPU? (issue 15, item 4)

Trains each (built-in data set, model kind) pair with its recommended setting, and with the
form's plain defaults for comparison, and prints on the held-out split: seconds of training, the
share of the reconstruction error explained relative to predicting the training mean
(1 - error / mean-predictor error), a 5-NN probe's accuracy on the codes (labelled sets), and
for VAE kinds the largest KL of one dimension (nats; ~0 means the code carries nothing).

    python bench/presets.py [--pairs digits/vae,sines/rnn-ae] [--defaults]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine_line, print_table  # noqa: E402
from app.core.config import VARIATIONAL_KINDS, DataConfig, ModelConfig, TrainConfig  # noqa: E402
from app.core.data import load_dataset  # noqa: E402
from app.core.latent import dimension_stats  # noqa: E402
from app.core.presets import RECOMMENDED, apply_preset  # noqa: E402
from app.core.session import encode_all, prepare_training  # noqa: E402
from app.core.trainer import train_to_end  # noqa: E402


def knn_accuracy(train_codes, train_y, test_codes, test_y) -> float | None:
    from sklearn.neighbors import KNeighborsClassifier
    if train_y is None:
        return None
    return float(KNeighborsClassifier(5).fit(train_codes, train_y).score(test_codes, test_y))


def measure(spec: str, kind: str, use_recommended: bool, data) -> dict:
    data_cfg, model_cfg, train_cfg = DataConfig(spec=spec), ModelConfig(kind=kind), TrainConfig(device="cpu")
    if use_recommended:
        data_cfg, model_cfg, train_cfg = apply_preset(RECOMMENDED[(spec, kind)], data_cfg, model_cfg, train_cfg)
    prepared = prepare_training(data_cfg, model_cfg, train_cfg, data=data)
    start = time.perf_counter()
    finished = train_to_end(prepared.trainer)
    seconds = time.perf_counter() - start
    if not finished.ok:
        return {"pair": f"{spec}/{kind}", "error": finished.message}
    train_idx, val_idx = prepared.train_idx, prepared.val_idx
    held_out = encode_all(prepared.model, data.x[val_idx])
    train_codes = encode_all(prepared.model, data.x[train_idx]).codes
    mean = data.x[train_idx].mean(0, keepdims=True)
    baseline = float(((data.x[val_idx] - mean) ** 2).reshape(len(val_idx), -1).sum(1).mean())
    row = {"pair": f"{spec}/{kind}", "setting": "recommended" if use_recommended else "defaults",
           "epochs": train_cfg.epochs, "seconds": round(seconds, 1),
           "explained": 1 - float(held_out.errors.mean()) / baseline,
           "knn": knn_accuracy(train_codes, None if data.y is None else data.y[train_idx], held_out.codes,
                               None if data.y is None else data.y[val_idx])}
    if kind in VARIATIONAL_KINDS:
        row["max_kl"] = float(np.max(dimension_stats(held_out.codes, held_out.logvar).kl))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default="", help="comma-separated data/kind pairs (default: every recommended one)")
    parser.add_argument("--defaults", action="store_true", help="also train each pair with the form's defaults")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    pairs = [tuple(p.split("/", 1)) for p in args.pairs.split(",") if p] or list(RECOMMENDED)
    print(machine_line())
    results, rows, loaded = [], [], {}
    for spec, kind in pairs:
        data = loaded.setdefault(spec, load_dataset(DataConfig(spec=spec)))
        for use in ((False, True) if args.defaults else (True,)):
            r = measure(spec, kind, use, data)
            results.append(r)
            if "error" in r:
                rows.append([r["pair"], "-", "-", "-", "-", "-", r["error"][:60]])
                continue
            rows.append([r["pair"], r["setting"], r["epochs"], r["seconds"], f"{r['explained']:.3f}",
                         "-" if r["knn"] is None else f"{r['knn']:.3f}",
                         f"{r['max_kl']:.2f}" if "max_kl" in r else "-"])
            print(" ".join(map(str, rows[-1])), flush=True)
    print_table(["pair", "setting", "epochs", "train s", "explained", "5-NN", "max KL/dim"], rows)
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
