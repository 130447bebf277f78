"""Do the penalised autoencoders obey their penalty, or dodge it by rescaling? (issue 11)

Trains the plain `ae`, `sparse` (L1) and `contractive` on `digits` with the same settings and
prints, on the held-out split: the reconstruction error, the code's spread (mean std per unit),
the norm of the weight that maps the code into the decoder, the share of near-zero code values
and the encoder's Jacobian norm. A model that dodges its penalty shows a shrunken code, a grown
decoder weight and few near-zero values.

    python bench/penalties.py [--epochs 30] [--weight 1.0] [--seeds 1]

Near zero: |z_ij| < 5% of unit j's largest |z| over the held-out split (scale-free, so a code
cannot look sparse just by being small). Relative Jacobian: E||J(x)||_F^2 / E||z - mean z||^2,
how far the code moves per unit of input change relative to how far it moves across the data
(scale-free too). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine_line, print_table  # noqa: E402
from app.core.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from app.core.data import load_dataset  # noqa: E402
from app.core.models.diagnostics import code_to_decoder_weight, jacobian_norms, near_zero_share  # noqa: E402
from app.core.session import encode_all, prepare_training  # noqa: E402
from app.core.trainer import train_to_end  # noqa: E402


def measure(kind: str, weight: float, epochs: int, seed: int, lr: float = 1e-3) -> dict:
    data_cfg = DataConfig(spec="digits", val_fraction=0.2, split_seed=0)
    data = load_dataset(data_cfg)
    model_cfg = ModelConfig(kind=kind, latent_dim=10, hidden=(400,), sparsity="l1", sparsity_weight=weight,
                            contractive_weight=weight)
    train_cfg = TrainConfig(epochs=epochs, batch_size=64, lr=lr, seed=seed, device="cpu")
    prepared = prepare_training(data_cfg, model_cfg, train_cfg, data=data)
    start = time.perf_counter()
    finished = train_to_end(prepared.trainer)
    seconds = time.perf_counter() - start
    if not finished.ok:
        raise SystemExit(f"{kind}: {finished.message}")
    model = prepared.model.eval()
    held_out = data.x[prepared.val_idx]
    encoded = encode_all(model, held_out)
    codes = encoded.codes
    jac = jacobian_norms(model, torch.as_tensor(held_out)).numpy()
    spread = float(((codes - codes.mean(0)) ** 2).sum(1).mean())
    return {"kind": kind, "seed": seed, "error": float(encoded.errors.mean()), "code_std": float(codes.std(0).mean()),
            "decoder_norm": float(code_to_decoder_weight(model).detach().norm()),
            "near_zero_pct": 100 * near_zero_share(codes), "jacobian": float(jac.mean()),
            "relative_jacobian": float(jac.mean() / max(spread, 1e-12)), "train_seconds": round(seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--weight", type=float, default=1.0, help="sparsity_weight and contractive_weight")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line())
    rows, results = [], []
    for kind in ("ae", "sparse", "contractive"):
        for seed in range(args.seeds):
            r = measure(kind, args.weight, args.epochs, seed, args.lr)
            results.append(r)
            rows.append([kind, seed, f"{r['error']:.2f}", f"{r['code_std']:.3f}", f"{r['decoder_norm']:.1f}",
                         f"{r['near_zero_pct']:.1f}", f"{r['jacobian']:.4g}", f"{r['relative_jacobian']:.4g}",
                         r["train_seconds"]])
    print(f"\ndigits, held-out split, latent 10, hidden 400, {args.epochs} epochs, lr {args.lr:g}, batch 64, "
          f"penalty weight {args.weight}")
    print_table(["model", "seed", "error", "code std", "decoder norm", "% near 0", "||J||^2", "||J||^2 / spread",
                 "s"], rows)
    print(json.dumps({"epochs": args.epochs, "weight": args.weight, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
