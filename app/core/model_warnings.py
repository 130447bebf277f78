"""Settings that build but probably do not do what the user wants, said before training.

Torch-free on purpose: the window's training form asks for these as soon as data has loaded, which
can happen before the window's first paint, and importing torch there (app.core.models) delayed
that paint by ~1.3 s (bench/startup.py).
"""

from __future__ import annotations

import math

from app.core.config import MLP_KINDS, ModelConfig

# Kinds whose loss already keeps an overcomplete code from learning the identity.
REGULARISED_ELSEWHERE = ("sparse", "denoising", "contractive", "vae", "beta-tcvae", "conv-vae", "aae")


def model_warnings(cfg: ModelConfig, input_shape: tuple) -> list[str]:
    """Settings that build but probably do not do what the user wants; shown before training."""
    warnings: list[str] = []
    kind, K = cfg.kind, cfg.latent_dim
    features = math.prod(int(s) for s in input_shape) if input_shape else 0
    if kind not in REGULARISED_ELSEWHERE and features and K >= features:
        warnings.append(f"latent_dim={K} >= {features} input features: an overcomplete code with no "
                        f"regulariser will learn the identity: use sparse, denoising or contractive")
    if kind in MLP_KINDS and cfg.hidden and K > min(cfg.hidden):
        warnings.append(f"latent_dim={K} is wider than the narrowest hidden layer ({min(cfg.hidden)}): "
                        f"the code cannot carry more than {min(cfg.hidden)} independent directions")
    no_effect = {
        "sparse": (cfg.sparsity_weight == 0, "sparsity_weight=0"),
        "denoising": (cfg.noise_level == 0, "noise_level=0"),
        "contractive": (cfg.contractive_weight == 0, "contractive_weight=0"),
        "aae": (cfg.adversarial_weight == 0, "adversarial_weight=0"),
    }
    if kind in no_effect and no_effect[kind][0]:
        warnings.append(f"{no_effect[kind][1]} turns {kind} into a plain ae")
    if kind in ("vae", "conv-vae") and cfg.beta == 0:
        warnings.append("beta=0 drops the KL term: the codes no longer follow the N(0, I) prior, so "
                        "sampling and traversals from the prior will not decode to realistic data")
    if kind == "contractive" and K > 64:
        warnings.append(f"the contractive penalty costs one backward pass per latent unit: "
                        f"latent_dim={K} will train slowly")
    if kind == "rnn-ae" and len(input_shape) == 2 and input_shape[0] > 1000:
        warnings.append(f"sequences of {input_shape[0]} steps make the recurrent encoder slow and its "
                        f"gradients vanish; consider cropping or downsampling them")
    return warnings
