"""Convolutional autoencoders for images: conv-ae and conv-vae.

Encoder: one stride-2 Conv2d (kernel 4, padding 1, as in DCGAN, Radford et al. 2016) per entry of
cfg.channels, each halving the map (rounding down), then flatten and a linear map to the code.
Decoder: linear -> reshape -> ConvTranspose2d stages in reverse order back to (C, H, W).

A kernel-4/stride-2/padding-1 transposed convolution maps size n to 2n + output_padding, so
giving each decoder stage output_padding = (size it must restore) % 2 reproduces any image size
exactly, odd ones included (30x20 -> 15x10 -> 7x5 -> 15x10 -> 30x20), with no cropping.
"""

from __future__ import annotations

import torch
from torch import nn

from app.core.config import ModelConfig
from app.core.models.base import ACTIVATIONS, Autoencoder

KERNEL, STRIDE, PADDING = 4, 2, 1


def conv_stage_sizes(height: int, width: int, n_stages: int) -> list[tuple[int, int]]:
    """Spatial size before the first stage and after each one: n_stages + 1 entries.
    A size of 0 means the image is too small for that many stages."""
    sizes = [(height, width)]
    for _ in range(n_stages):
        h, w = sizes[-1]
        sizes.append((max(0, (h + 2 * PADDING - KERNEL) // STRIDE + 1), max(0, (w + 2 * PADDING - KERNEL) // STRIDE + 1)))
    return sizes


class ConvAutoencoder(Autoencoder):
    kind = "conv-ae"

    def __init__(self, cfg: ModelConfig, input_shape: tuple[int, ...], loss: str):
        super().__init__(cfg, input_shape, loss)
        C, H, W = self.input_shape
        K, channels = self.latent_dim, list(cfg.channels)
        self.sizes = conv_stage_sizes(H, W, len(channels))
        if min(min(s) for s in self.sizes) < 1:
            raise ValueError(f"{H}x{W} images are too small for {len(channels)} conv stages")
        in_channels = [C, *channels[:-1]]
        act = ACTIVATIONS[cfg.activation]

        encoder: list[nn.Module] = []
        for c_in, c_out in zip(in_channels, channels):
            encoder += [nn.Conv2d(c_in, c_out, KERNEL, STRIDE, PADDING), act()]
        encoder.append(nn.Flatten())                                 # (B, channels[-1] * h * w)
        if cfg.dropout > 0:
            encoder.append(nn.Dropout(cfg.dropout))
        self.encoder = nn.Sequential(*encoder)

        h, w = self.sizes[-1]
        self.map_shape = (channels[-1], h, w)
        flat = channels[-1] * h * w
        self._make_code_heads(flat, K)

        from_code: list[nn.Module] = [nn.Linear(K, flat), act()]
        if cfg.dropout > 0:
            from_code.append(nn.Dropout(cfg.dropout))
        self.from_code = nn.Sequential(*from_code)

        decoder: list[nn.Module] = []
        for stage in reversed(range(len(channels))):
            target_h, target_w = self.sizes[stage]                   # size this stage restores
            decoder.append(nn.ConvTranspose2d(channels[stage], in_channels[stage], KERNEL, STRIDE, PADDING,
                                              output_padding=(target_h % 2, target_w % 2)))
            if stage > 0:                                            # no activation on the output
                decoder.append(act())
        self.decoder = nn.Sequential(*decoder)

    def _make_code_heads(self, flat: int, K: int) -> None:
        self.to_code = nn.Linear(flat, K)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.to_code(self.encoder(x)), None                   # (B, K)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_code(z).view(-1, *self.map_shape)              # (B, channels[-1], h, w)
        return self.decoder(h)                                       # (B, C, H, W)


class ConvVAE(ConvAutoencoder):
    """The convolutional encoder/decoder above with a Gaussian code (Kingma & Welling 2014):
    two linear heads give mu and logvar; the base class samples and adds beta * KL."""

    kind = "conv-vae"
    variational = True
    has_prior = True

    def _make_code_heads(self, flat: int, K: int) -> None:
        self.to_mu = nn.Linear(flat, K)
        self.to_logvar = nn.Linear(flat, K)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)                                          # (B, channels[-1] * h * w)
        return self.to_mu(h), self.to_logvar(h)                      # (B, K), (B, K)
