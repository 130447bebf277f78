"""Adversarial autoencoder (Makhzani et al. 2016, "Adversarial Autoencoders").

A deterministic MLP autoencoder whose code distribution q(z) is matched to the prior
p(z) = N(0, I) by a GAN on the code: a discriminator D (K -> h -> h -> 1) tells prior samples
from codes, and the encoder, acting as the generator, learns to fool it. Each training step runs
the paper's two phases, the regularisation phase split in its usual two halves:

  1. reconstruction: encoder + decoder minimise the reconstruction loss;
  2. discriminator:  D minimises BCE(D(z_prior), 1) + BCE(D(z_code), 0) on detached codes;
  3. generator:      the encoder minimises adversarial_weight * BCE(D(encoder(x)), 1).

Parts: 'adversarial' is the generator loss (unweighted), 'discriminator' the discriminator loss,
'total' = reconstruction + adversarial_weight * adversarial (what the autoencoder minimises).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from app.core.config import ModelConfig, TrainConfig
from app.core.models.base import ModelOutput, StepSettings, clip_gradients, make_optimizer, mlp, reconstruction_loss
from app.core.models.mlp import MLPAutoencoder


def discriminator_width(cfg: ModelConfig) -> int:
    return int(cfg.hidden[-1]) if cfg.hidden else 64


class AdversarialAutoencoder(MLPAutoencoder):
    kind = "aae"
    has_prior = True   # the discriminator matches the codes to N(0, I) (Makhzani et al. 2016)

    def __init__(self, cfg: ModelConfig, input_shape: tuple[int, ...], loss: str):
        super().__init__(cfg, input_shape, loss)
        width = discriminator_width(cfg)
        self.discriminator = mlp([self.latent_dim, width, width, 1], cfg.activation)  # (B, K) -> (B, 1) logit

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        return list(itertools.chain(self.encoder.parameters(), self.decoder.parameters()))

    # --- the two losses on the code ---------------------------------------------------------------
    def generator_loss(self, code: torch.Tensor) -> torch.Tensor:
        """The encoder wants its codes taken for prior samples."""
        logits = self.discriminator(code)                            # (B, 1)
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def discriminator_loss(self, code: torch.Tensor) -> torch.Tensor:
        prior = self.noise_like(code)                                # (B, K) samples of p(z) = N(0, I)
        real, fake = self.discriminator(prior), self.discriminator(code)
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))

    def loss(self, x: torch.Tensor, out: ModelOutput, beta: float = 1.0) -> dict[str, torch.Tensor]:
        rec = reconstruction_loss(out.recon, x, self.loss_kind).mean()
        adversarial = self.generator_loss(out.z)
        discriminator = self.discriminator_loss(out.z.detach())
        return {"reconstruction": rec, "adversarial": adversarial, "discriminator": discriminator,
                "total": rec + self.cfg.adversarial_weight * adversarial}

    # --- training ---------------------------------------------------------------------------------
    def make_optimizers(self, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
        """[autoencoder, discriminator, generator (the encoder again, with its own moments)]."""
        return [make_optimizer(self.autoencoder_parameters(), cfg),
                make_optimizer(self.discriminator.parameters(), cfg),
                make_optimizer(self.encoder.parameters(), cfg)]

    # Two forward passes per step, each followed by its own backward (so each can go through its
    # DistributedDataParallel wrapper, app/core/distributed.py): the first serves phases 1 and 2, whose
    # parameters do not overlap (the discriminator sees detached codes), so one backward of
    # their sum gives each optimizer exactly its own phase's gradients; the second is phase 3.
    phases = ("autoencoder", "generator")

    def phase_modules(self, phase: str) -> tuple[nn.Module, ...]:
        # The generator phase trains the encoder through the discriminator; the decoder sits out.
        return (self.encoder, self.discriminator) if phase == "generator" else (self,)

    def phase_losses(self, x: torch.Tensor, phase: str, settings: StepSettings) -> dict[str, torch.Tensor]:
        if phase == "generator":   # 3. the (updated) encoder against the (updated) discriminator
            return {"adversarial": self.generator_loss(self.encode(x))}
        out = self(x)
        rec = reconstruction_loss(out.recon, x, self.loss_kind).mean()
        disc = self.discriminator_loss(out.z.detach())
        parts = {"reconstruction": rec, "discriminator": disc}
        ae_objective = rec
        if settings.l1_weight > 0:
            parts["l1"] = sum(p.abs().sum() for p in self.autoencoder_parameters() if p.dim() > 1)
            ae_objective = rec + settings.l1_weight * parts["l1"]
        # '_autoencoder' is phase 1's objective, 'total' what the shared backward minimises.
        return {**parts, "_autoencoder": ae_objective, "total": ae_objective + disc}

    def training_step(self, x: torch.Tensor, optimizers: list[torch.optim.Optimizer],
                      settings: StepSettings) -> dict[str, torch.Tensor]:
        ae_opt, disc_opt, gen_opt = optimizers
        weight = self.cfg.adversarial_weight

        # Phases 1 and 2 share one forward pass and are both checked before anything steps.
        ae_opt.zero_grad(set_to_none=True)
        disc_opt.zero_grad(set_to_none=True)
        parts = self.steps.losses(self, x, "autoencoder", settings)
        ae_objective, both = parts.pop("_autoencoder"), parts.pop("total")
        self.steps.backward(both, {**parts, "total": both})
        # 1. reconstruction phase
        clip_gradients(self.autoencoder_parameters(), settings)
        ae_opt.step()
        # 2. discriminator phase, on the codes detached from the encoder
        clip_gradients(self.discriminator.parameters(), settings)
        disc_opt.step()

        # 3. generator phase; phases 1-2 have stepped: their losses were finite
        if weight > 0:
            gen = self.steps.losses(self, x, "generator", settings)["adversarial"]
        else:   # nothing steps on it, so not through DDP (whose forward expects a backward)
            gen = self.phase_losses(x, "generator", settings)["adversarial"]
        parts["adversarial"] = gen
        parts["total"] = ae_objective + weight * gen
        if weight > 0:
            gen_opt.zero_grad(set_to_none=True)
            self.steps.backward(weight * gen, parts)
            clip_gradients(self.encoder.parameters(), settings)
            gen_opt.step()
            # Phase 3 also left gradients on the discriminator; drop them so nothing reuses them.
            for p in self.discriminator.parameters():
                p.grad = None
        else:
            self.steps.check(parts)
        return {k: v.detach() for k, v in parts.items()}

