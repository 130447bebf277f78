"""Autoencoder kinds and the one function that builds them from a ModelConfig.

    model = build_model(cfg, input_shape=(1, 28, 28), modality="image", loss="bce")

Every problem a user can cause (a conv kind on a table, images too small for the conv stages,
sizes that would not fit in memory) is raised as ConfigError with the fix in the message, before
any weight is allocated. Seeding is the trainer's job.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from app.core.config import MLP_KINDS, MODEL_KINDS, ModelConfig, validate
from app.core.errors import ConfigError
from app.core.models.aae import AdversarialAutoencoder
from app.core.models.base import Autoencoder, ModelOutput, NonFiniteLoss, StepSettings
from app.core.models.conv import ConvAutoencoder, ConvVAE, conv_stage_sizes
from app.core.models.mlp import (VAE, ContractiveAutoencoder, DenoisingAutoencoder, MLPAutoencoder,
                                 SparseAutoencoder)
from app.core.models.rnn import RecurrentAutoencoder
from app.core.models.tcvae import BetaTCVAE
from app.core.model_warnings import REGULARISED_ELSEWHERE, model_warnings  # noqa: F401 - torch-free, re-exported

__all__ = ["build_model", "model_warnings", "count_parameters", "MODEL_KINDS_HELP", "MODEL_CLASSES",
           "MAX_PARAMETERS", "Autoencoder", "ModelOutput", "StepSettings", "NonFiniteLoss"]

from app.core.config import MODEL_KINDS_HELP  # noqa: E402 - kept beside MODEL_KINDS, torch-free

MODEL_CLASSES: dict[str, type[Autoencoder]] = {
    "ae": MLPAutoencoder,
    "sparse": SparseAutoencoder,
    "denoising": DenoisingAutoencoder,
    "contractive": ContractiveAutoencoder,
    "vae": VAE,
    "beta-tcvae": BetaTCVAE,
    "conv-ae": ConvAutoencoder,
    "conv-vae": ConvVAE,
    "rnn-ae": RecurrentAutoencoder,
    "aae": AdversarialAutoencoder,
}
assert set(MODEL_CLASSES) == set(MODEL_KINDS)

assert set(MODEL_KINDS_HELP) == set(MODEL_KINDS)

MODALITIES = ("image", "sequence", "tabular")
MAX_PARAMETERS = 200_000_000


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _check_data_fits(cfg: ModelConfig, shape: tuple[int, ...], modality: str) -> None:
    kind = cfg.kind
    if kind in ("conv-ae", "conv-vae"):
        if modality != "image" or len(shape) != 3:
            alternative = "ae or vae" if kind == "conv-vae" else "ae"
            raise ConfigError(f"{kind} needs image data (N,C,H,W); this data is {modality} "
                              f"({_shape_text(shape)} per sample) — pick {alternative}")
        if not cfg.channels:
            raise ConfigError(f"{kind} needs at least one conv stage: set channels, e.g. 32,64")
        _, H, W = shape
        sizes = conv_stage_sizes(H, W, len(cfg.channels))
        if min(min(s) for s in sizes) < 1:
            stages = len(cfg.channels)
            raise ConfigError(f"{H}x{W} images are too small for {stages} conv stages (channels="
                              f"{','.join(map(str, cfg.channels))}): each stage halves the size, so {stages} "
                              f"stages need at least {2 ** stages}x{2 ** stages}; use fewer channels entries "
                              f"or a larger image_size")
    if kind == "rnn-ae" and (modality != "sequence" or len(shape) != 2):
        alternative = "ae, conv-ae or conv-vae" if modality == "image" else "ae or vae"
        raise ConfigError(f"rnn-ae needs sequence data (N,T,C); this data is {modality} "
                          f"({_shape_text(shape)} per sample) — pick {alternative}")


def _size_description(cfg: ModelConfig, shape: tuple[int, ...]) -> str:
    n = math.prod(shape)
    features = f"{n:,} input features" if len(shape) == 1 else f"input {_shape_text(shape)} ({n:,} features)"
    if cfg.kind in ("conv-ae", "conv-vae"):
        c, h, w = cfg.channels[-1], *conv_stage_sizes(shape[1], shape[2], len(cfg.channels))[-1]
        return (f"{features}, channels={','.join(map(str, cfg.channels))} (last map {c}x{h}x{w} "
                f"= {c * h * w:,} values), latent_dim={cfg.latent_dim}")
    if cfg.kind == "rnn-ae":
        return f"{features}, rnn_hidden={cfg.rnn_hidden}, latent_dim={cfg.latent_dim}"
    return f"{features}, hidden={','.join(map(str, cfg.hidden)) or '(none)'}, latent_dim={cfg.latent_dim}"


def _size_advice(kind: str, modality: str) -> str:
    if kind in ("conv-ae", "conv-vae"):
        return "use fewer channels, more stages (each halves the map) or a smaller image_size"
    if kind == "rnn-ae":
        return "use a smaller rnn_hidden or latent_dim"
    return "use smaller hidden sizes" + (", a conv kind or a smaller image_size" if modality == "image" else "")


def build_model(cfg: ModelConfig, input_shape: tuple, modality: str, loss: str) -> Autoencoder:
    """Build the autoencoder `cfg.kind` for samples of `input_shape` (no batch dimension).

    modality: "image" (C, H, W), "sequence" (T, C) or "tabular" (D,); loss: "bce" or "mse"
    (already resolved from "auto" by the data set)."""
    if cfg.kind not in MODEL_CLASSES:
        raise ConfigError(f"unknown model kind {cfg.kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    validate(cfg)
    if modality not in MODALITIES:
        raise ConfigError(f"unknown data modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    if loss not in ("bce", "mse"):
        raise ConfigError(f"loss {loss!r} must be resolved to bce or mse before building the model")
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ConfigError(f"input shape {input_shape!r} is not a tuple of whole numbers") from None
    if not shape or min(shape) < 1:
        raise ConfigError(f"input shape {input_shape!r} must have at least one dimension, all positive")
    _check_data_fits(cfg, shape, modality)

    cls = MODEL_CLASSES[cfg.kind]
    # Count the parameters on the meta device first: exact, and no memory is allocated.
    with torch.device("meta"):
        n_params = count_parameters(cls(cfg, shape, loss))
    if n_params > MAX_PARAMETERS:
        amount = f"{n_params / 1e9:,.1f} billion" if n_params >= 1e9 else f"{n_params / 1e6:,.0f} million"
        raise ConfigError(f"{cfg.kind} with {_size_description(cfg, shape)} would have {amount} "
                          f"parameters ({n_params * 4 / 2 ** 30:,.1f} GiB of weights, about 4x that "
                          f"to train); the limit is {MAX_PARAMETERS // 1_000_000} million — "
                          f"{_size_advice(cfg.kind, modality)}")
    return cls(cfg, shape, loss)
