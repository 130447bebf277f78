"""Scale-free checks that a penalised code obeys its penalty (issue 11; bench/penalties.py, tests).

A penalty on the code's size or on the encoder's Jacobian is dodged when the code shrinks and the
decoder grows; raw magnitudes then look good while nothing changed. These measures do not move
when the code is rescaled, so they tell a sparse or contractive code from a small one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def code_to_decoder_weight(model: nn.Module) -> torch.Tensor:
    """The matrix that takes the code into the decoder: the decoder's own first layer, or the
    encoder's last layer when the decoder is tied to it (TiedSigmoidAutoencoder)."""
    decoder = getattr(model, "decoder", None)
    if isinstance(decoder, nn.Sequential):
        return next(m for m in decoder if isinstance(m, nn.Linear)).weight
    return [m for m in model.encoder if isinstance(m, nn.Linear)][-1].weight


def near_zero_share(codes: np.ndarray, relative: float = 0.05) -> float:
    """Share of code values |z_ij| below `relative` times unit j's largest |z| over the data."""
    codes = np.asarray(codes, dtype=np.float64)                      # (N, K)
    scale = np.abs(codes).max(0, keepdims=True) + 1e-12              # (1, K)
    return float((np.abs(codes) < relative * scale).mean())


def jacobian_norms(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """||d encode(x) / d x||_F^2 per sample, exactly: one backward pass per code unit. (N,)"""
    norms = []
    for start in range(0, len(x), batch_size):
        with torch.enable_grad():
            x_in = x[start:start + batch_size].detach().clone().requires_grad_(True)
            code = model.encode(x_in)                                # (B, K)
            norm = x_in.new_zeros(len(x_in))
            for j in range(code.shape[1]):
                (row,) = torch.autograd.grad(code[:, j].sum(), x_in, retain_graph=True)
                norm = norm + row.pow(2).flatten(1).sum(1)
        norms.append(norm.detach())
    return torch.cat(norms)


def relative_jacobian(model: nn.Module, x: torch.Tensor) -> float:
    """E||J(x)||_F^2 / E||z - mean z||^2: how far the code moves per unit of input change,
    relative to how far it moves across the data. Rescaling the code leaves it unchanged."""
    with torch.no_grad():
        codes = model.encode(x)
    spread = float((codes - codes.mean(0)).pow(2).sum(1).mean())
    return float(jacobian_norms(model, x).mean()) / max(spread, 1e-12)
