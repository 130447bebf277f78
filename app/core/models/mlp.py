"""Fully connected autoencoders: ae, sparse, denoising, contractive, vae.

Every kind flattens its input, so it works on images (B, C, H, W), sequences (B, T, C) and tables
(B, D) alike; D below is the number of input features (C*H*W, T*C or D).

    encoder: D -> hidden[0] -> ... -> hidden[-1] -> K     (no activation on the code)
    decoder: K -> hidden[-1] -> ... -> hidden[0] -> D     (logits for BCE, values for MSE)

A deep autoencoder is the same class with more hidden sizes.

The penalised kinds (sparse, contractive) tie the decoder to the encoder and bound the code, as
their papers do; without that, a penalty on the code's size or on the encoder's Jacobian is
dodged by shrinking the code and growing the decoder (issue 11; bench/penalties.py measures it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from app.core.config import ModelConfig
from app.core.models.base import ACTIVATIONS, Autoencoder, ModelOutput, mlp


def n_features(input_shape: tuple[int, ...]) -> int:
    return int(math.prod(input_shape))


class MLPAutoencoder(Autoencoder):
    """Plain autoencoder (Hinton & Salakhutdinov 2006 for the deep version)."""

    kind = "ae"

    def __init__(self, cfg: ModelConfig, input_shape: tuple[int, ...], loss: str):
        super().__init__(cfg, input_shape, loss)
        D, K, hidden = n_features(self.input_shape), self.latent_dim, list(cfg.hidden)
        self.encoder = mlp([D, *hidden, K], cfg.activation, cfg.dropout)
        self.decoder = mlp([K, *reversed(hidden), D], cfg.activation, cfg.dropout)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.encoder(x.flatten(1)), None                      # (B, K)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *self.input_shape)           # (B, *input_shape)


class TiedSigmoidAutoencoder(MLPAutoencoder):
    """MLP autoencoder whose code is sigmoid(W_K h + b) in (0, 1) and whose decoder reuses the
    encoder's weights transposed, each decoder layer with its own bias:

        encoder: x -> act(W_1 x + b_1) -> ... -> z = sigmoid(W_L h + b_L)
        decoder: z -> act(W_L^T z + c_L) -> ... -> W_1^T h + c_1      (logits for BCE)

    Rifai et al. 2011 ("Contractive auto-encoders", eq. 1-2) use exactly this (tied W' = W^T,
    sigmoid code); Ng's sparse autoencoder notes (CS294A, 2011) use the sigmoid code. Tying makes
    the decoder's gain follow the encoder's: scaling the code down by c scales the decoder's first
    layer down by c too, so a penalty on the code (L1, KL, Jacobian) cannot be traded for a larger
    decoder; the sigmoid bounds the code, so its size cannot be traded either.
    """

    def __init__(self, cfg: ModelConfig, input_shape: tuple[int, ...], loss: str):
        super().__init__(cfg, input_shape, loss)
        del self.decoder                                             # replaced by the tied weights
        self.decoder_biases = nn.ParameterList(
            [nn.Parameter(torch.zeros(layer.in_features)) for layer in self._encoder_linears()])
        self.decoder_activation = ACTIVATIONS[cfg.activation]()
        self.decoder_dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def _encoder_linears(self) -> list[nn.Linear]:
        return [m for m in self.encoder if isinstance(m, nn.Linear)]

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.sigmoid(self.encoder(x.flatten(1))), None       # (B, K) in (0, 1)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = z                                                        # (B, K)
        layers = self._encoder_linears()
        for i in reversed(range(len(layers))):
            h = nn.functional.linear(h, layers[i].weight.t(), self.decoder_biases[i])
            if i > 0:                                                # no activation on the output
                h = self.decoder_dropout(self.decoder_activation(h))
        return h.view(-1, *self.input_shape)                         # (B, *input_shape)


class SparseAutoencoder(TiedSigmoidAutoencoder):
    """Tied-weight autoencoder with a sigmoid code and a sparsity penalty on it.

    l1: mean over the batch of sum_j |z_j| = sum_j z_j (the code is positive): a Laplace prior
        on the code, which can only be lowered by switching units off, since the code is bounded
        and the decoder is tied (see TiedSigmoidAutoencoder).
    kl: the mean activation rho_hat_j of each unit over the batch is pulled towards rho by
        KL(rho || rho_hat_j) summed over units (Ng, "Sparse autoencoder", CS294A notes, 2011).
    The 'sparsity' part is the unweighted penalty (like the VAE's 'kl'); total adds
    sparsity_weight times it.
    """

    kind = "sparse"

    def sparsity_penalty(self, z: torch.Tensor) -> torch.Tensor:
        if self.cfg.sparsity == "l1":
            return z.abs().sum(1).mean()
        rho = self.cfg.sparsity_target
        rho_hat = z.mean(0).clamp(1e-6, 1 - 1e-6)                    # (K,) mean activation per unit
        kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
        return kl.sum()

    def loss(self, x: torch.Tensor, out: ModelOutput, beta: float = 1.0) -> dict[str, torch.Tensor]:
        parts = super().loss(x, out, beta)
        parts["sparsity"] = self.sparsity_penalty(out.z)
        parts["total"] = parts["total"] + self.cfg.sparsity_weight * parts["sparsity"]
        return parts


class DenoisingAutoencoder(MLPAutoencoder):
    """Reconstructs the clean input from a corrupted copy (Vincent et al. 2008), in training only.

    gaussian: x + noise_level * N(0, 1), clamped to [0, 1] for BCE data so targets stay valid.
    masking:  each input set to 0 with probability noise_level.
    """

    kind = "denoising"

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        level = self.cfg.noise_level
        if level <= 0:
            return x
        if self.cfg.noise == "masking":
            return x * (self.noise_like(x, uniform=True) >= level).to(x.dtype)
        noisy = x + level * self.noise_like(x)
        return noisy.clamp(0.0, 1.0) if self.loss_kind == "bce" else noisy


class ContractiveAutoencoder(TiedSigmoidAutoencoder):
    """Tied-weight, sigmoid-code autoencoder + contractive_weight * ||J_f(x)||_F^2, the squared
    Frobenius norm of the encoder's Jacobian at each input, averaged over the batch (Rifai et al.
    2011, eq. 7; their model is this one with one hidden layer: hidden=() here). The tied decoder
    is what keeps the penalty honest: an untied one lets the encoder shrink (lower ||J||) while the
    decoder grows to undo it.

    The norm is computed exactly by autograd: one backward pass per latent unit (K is small),
    kept in the graph (create_graph) so the penalty itself is trained. The 'contractive' part is
    the unweighted norm.
    """

    kind = "contractive"

    def jacobian_norm(self, x: torch.Tensor) -> torch.Tensor:
        """||d code / d x||_F^2 per sample: (B,). Works under no_grad / inference_mode too
        (the trainer's validation), where it returns a detached value."""
        train_graph = torch.is_grad_enabled()
        with torch.inference_mode(False), torch.enable_grad():
            x_in = x.detach().clone().requires_grad_(True)           # (B, *input_shape)
            code = self.encode(x_in)                                 # (B, K)
            norm = x_in.new_zeros(x_in.shape[0])                     # (B,)
            for j in range(code.shape[1]):
                # Samples are independent, so d(sum_b code[b, j])/dx[b] is row j of sample b's J.
                (row,) = torch.autograd.grad(code[:, j].sum(), x_in, create_graph=train_graph,
                                             retain_graph=True)
                norm = norm + row.pow(2).flatten(1).sum(1)
        return norm if train_graph else norm.detach()

    def loss(self, x: torch.Tensor, out: ModelOutput, beta: float = 1.0) -> dict[str, torch.Tensor]:
        parts = super().loss(x, out, beta)
        parts["contractive"] = self.jacobian_norm(x).mean()
        parts["total"] = parts["total"] + self.cfg.contractive_weight * parts["contractive"]
        return parts


class VAE(Autoencoder):
    """Variational autoencoder (Kingma & Welling 2014) with a Gaussian encoder q(z|x) =
    N(mu, diag(exp(logvar))) and a standard normal prior. The base class draws z with the
    reparameterisation trick in training and adds beta * KL (beta-VAE, Higgins et al. 2017);
    the trainer passes beta already multiplied by the annealing factor."""

    kind = "vae"
    variational = True
    has_prior = True

    def __init__(self, cfg: ModelConfig, input_shape: tuple[int, ...], loss: str):
        super().__init__(cfg, input_shape, loss)
        D, K, hidden = n_features(self.input_shape), self.latent_dim, list(cfg.hidden)
        self.trunk = mlp([D, *hidden], cfg.activation, cfg.dropout, last_activation=True)
        width = hidden[-1] if hidden else D
        self.to_mu = nn.Linear(width, K)
        self.to_logvar = nn.Linear(width, K)
        self.decoder = mlp([K, *reversed(hidden), D], cfg.activation, cfg.dropout)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x.flatten(1))                                 # (B, hidden[-1])
        return self.to_mu(h), self.to_logvar(h)                      # (B, K), (B, K)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *self.input_shape)           # (B, *input_shape)

