"""The 10,000 x 20 latent codes the projection benchmarks use: the MNIST test set encoded by the
784-400-20 VAE after a few epochs (clustered like real codes, unlike random noise). Cached in the
temporary folder so that run_all trains the model once."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import MNIST_DIR  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "latent-explorer-bench-codes-v1.npz"


def mnist_codes(epochs: int = 3, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(codes (N, 20) float32, labels (N,)); `limit` > 0 keeps the first `limit` (quick runs)."""
    if CACHE.exists():
        with np.load(CACHE) as cached:
            codes, labels = cached["codes"], cached["labels"]
    else:
        from app.core.config import DataConfig, ModelConfig, TrainConfig
        from app.core.session import encode_all, prepare_training
        from app.core.trainer import train_to_end

        data_cfg = DataConfig(spec=str(MNIST_DIR), val_fraction=0.2, split_seed=0)
        model_cfg = ModelConfig(kind="vae", latent_dim=20, hidden=(400,), loss="bce")
        train_cfg = TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, seed=0, device="cpu")
        prepared = prepare_training(data_cfg, model_cfg, train_cfg)
        train_to_end(prepared.trainer)
        codes = encode_all(prepared.model.eval(), prepared.data.x).codes.astype(np.float32)
        labels = prepared.data.y
        tmp = CACHE.with_suffix(".tmp.npz")
        np.savez(tmp, codes=codes, labels=labels)
        tmp.replace(CACHE)
    if limit:
        return codes[:limit], labels[:limit]
    return codes, labels
