"""Glue shared by the CLI and the window: configs + data -> model, and model -> numpy arrays.

Everything that crosses into the GUI leaves here as numpy: codes, reconstructions, scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from app.core.config import DataConfig, ModelConfig, TrainConfig, validate
from app.core.data import load_dataset
from app.core.data.dataset import Dataset
from app.core.errors import ConfigError
from app.core.models import build_model
from app.core.models.base import Autoencoder
from app.core.trainer import seed_everything


def resolve_loss(model_cfg: ModelConfig, data: Dataset) -> str:
    if model_cfg.loss == "auto":
        return data.default_loss
    if model_cfg.loss == "bce" and not data.in_unit_range:
        raise ConfigError(f"loss = bce needs data in [0, 1], but {data.name} ranges from "
                          f"{float(data.x.min()):.3g} to {float(data.x.max()):.3g}; use mse or auto")
    return model_cfg.loss


def make_model(model_cfg: ModelConfig, data: Dataset, seed: int) -> Autoencoder:
    """Build a freshly initialised model for this data; the seed makes the initial weights reproducible."""
    validate(model_cfg)
    seed_everything(seed)
    return build_model(model_cfg, data.sample_shape, data.modality, resolve_loss(model_cfg, data))


def prepare_training(data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig,
                     data: Dataset | None = None, model: Autoencoder | None = None, **session):
    """A training session (app/core/training_run.py) with its data split, model and trainer ready:
    `.data`, `.train_idx`, `.val_idx`, `.model`, `.trainer`; `.events()` trains it."""
    from app.core.training_run import TrainingRun

    return TrainingRun(data_cfg, model_cfg, train_cfg, data=data, model=model, **session)


def model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def encode(model: Autoencoder, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Deterministic codes (encoder means for VAE kinds): (N, K) float32."""
    model.eval()
    device = model_device(model)
    out = [model.encode(torch.as_tensor(x[i:i + batch_size], device=device)).float().cpu().numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.latent_dim), np.float32)


@torch.no_grad()
def decode(model: Autoencoder, z: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Codes to data space (pixel probabilities for BCE models): (N, *input_shape) float32."""
    model.eval()
    device = model_device(model)
    z = np.asarray(z, dtype=np.float32).reshape(-1, model.latent_dim)
    out = [model.decode(torch.as_tensor(z[i:i + batch_size], device=device)).float().cpu().numpy()
           for i in range(0, len(z), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, *model.input_shape), np.float32)


@torch.no_grad()
def reconstruct(model: Autoencoder, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Reconstructions through the deterministic code, in data space."""
    model.eval()
    device = model_device(model)
    out = [model.decode(model.encode(torch.as_tensor(x[i:i + batch_size], device=device))).float().cpu().numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros_like(x)


class ExploredRows:
    """x[idx] as a sequence read a block at a time: `rows[a:b]` is x[idx[a:b]], a fresh float array.

    Encoding the window's explored samples goes through this, so a million of them are never copied
    at once (x[idx] of 1,000,000 MNIST images is a 3 GB array, and it was made on the window's
    thread before the encoding started); memory-mapped data reads only the block asked for.
    idx None means every row of x, in order."""

    def __init__(self, x, idx: np.ndarray | None = None):
        self.x = x
        self.idx = None if idx is None else np.asarray(idx, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.x) if self.idx is None else len(self.idx)

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError(f"ExploredRows is read in blocks (rows[a:b]), not with {type(key).__name__}")
        block = self.x[key] if self.idx is None else self.x[self.idx[key]]
        return np.asarray(block)


@dataclass
class EncodedData:
    """One encoding pass over a data set: everything the views need, as numpy."""
    codes: np.ndarray          # (N, K) deterministic codes
    logvar: np.ndarray | None  # (N, K) for VAE kinds
    errors: np.ndarray         # (N,) squared reconstruction error in data space
    neg_elbo: np.ndarray | None  # (N,) for VAE kinds, with sampled z (Autoencoder.negative_elbo)


@torch.no_grad()
def encode_all(model: Autoencoder, x: np.ndarray, batch_size: int = 2048) -> EncodedData:
    """Codes, log-variances and per-sample errors in a single pass (no redundant encoding)."""
    model.eval()
    device = model_device(model)
    codes, logvars, errors, elbos = [], [], [], []
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[i:i + batch_size], device=device)
        mu, logvar = model._encode(xb)
        scores = model.scores_from(xb, mu, logvar)
        codes.append(mu.float().cpu().numpy())
        errors.append(scores["squared_error"].float().cpu().numpy())
        if logvar is not None:
            logvars.append(logvar.float().cpu().numpy())
            elbos.append(scores["neg_elbo"].float().cpu().numpy())
    k = model.latent_dim
    return EncodedData(
        codes=np.concatenate(codes) if codes else np.zeros((0, k), np.float32),
        logvar=np.concatenate(logvars) if logvars else None,
        errors=np.concatenate(errors) if errors else np.zeros(0, np.float32),
        neg_elbo=np.concatenate(elbos) if elbos else None,
    )


def load_data_for_run(run, spec: str | None = None, limit: int = 0) -> Dataset:
    """Load `spec` (default: the run's own data) the way the run's model expects it: same loader
    options, the training normalisation for tabular data, and a shape check."""
    import dataclasses

    data_cfg = dataclasses.replace(run.data_cfg, spec=spec or run.data_cfg.spec, limit=limit or run.data_cfg.limit)
    data = load_dataset(data_cfg)
    data.check_fits(run.model)
    trained_norm = run.meta.get("data_info", {}).get("normalisation") or {}
    own = data.normalisation or {}
    if trained_norm.get("mean") is not None and own.get("mean") is not None:
        # Undo this file's standardisation and apply the training set's, so codes are comparable.
        raw = data.x * np.asarray(own["std"], np.float32) + np.asarray(own["mean"], np.float32)
        data.x = ((raw - np.asarray(trained_norm["mean"], np.float32))
                  / np.asarray(trained_norm["std"], np.float32)).astype(np.float32)
        data.normalisation = trained_norm
    return data


def data_info(data: Dataset) -> dict:
    """What model.json records about the training data, to explain and reload it."""
    return {
        "name": data.name, "n": data.n, "sample_shape": list(data.sample_shape), "modality": data.modality,
        "label_names": data.label_names, "factor_names": data.factor_names,
        "normalisation": data.normalisation, "options": data.options,
    }
