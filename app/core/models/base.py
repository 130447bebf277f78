"""The one interface every autoencoder kind implements.

Shapes: B = batch, K = latent size, x is (B, *input_shape) exactly as the data set gives it
(images (B, C, H, W), sequences (B, T, C), tabular (B, D)).

Loss convention (docs/DESIGN.md): every part is a mean over the batch of a per-sample value summed
over features, so the reconstruction part of a BCE model is nats per image, as in Kingma &
Welling (2014) and PyTorch's VAE example.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from app.core.config import ModelConfig, TrainConfig

# Monte Carlo draws of z per input for the negative-ELBO anomaly score (An & Cho 2015 use L samples).
ELBO_SAMPLES = 4


class NonFiniteLoss(ArithmeticError):
    """Raised by a training step, before any weight changes, when its loss is NaN or infinite."""

    def __init__(self, parts: dict[str, float]):
        self.parts = parts
        super().__init__("loss became " + ", ".join(f"{k}={v}" for k, v in parts.items()))


@dataclass
class ModelOutput:
    recon: torch.Tensor              # decoder output before the output activation (logits for BCE), like x
    z: torch.Tensor                  # (B, K) code fed to the decoder (a sample for VAE kinds)
    mu: torch.Tensor                 # (B, K) deterministic code (the encoder mean for VAE kinds)
    logvar: torch.Tensor | None = None   # (B, K) for VAE kinds


@dataclass
class StepSettings:
    """What the trainer decides per step and the model needs to know."""
    beta: float = 1.0        # KL weight after annealing (VAE kinds)
    l1_weight: float = 0.0   # L1 penalty on all weights
    grad_clip: float = 0.0   # max gradient norm, 0 = off


def reconstruction_loss(recon: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-sample reconstruction loss summed over features: (B,)."""
    if loss == "bce":
        per_element = F.binary_cross_entropy_with_logits(recon, x, reduction="none")
    else:
        per_element = (recon - x).pow(2)
    return per_element.flatten(1).sum(1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per dimension, (B, K); Kingma & Welling (2014), appendix B."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


class Autoencoder(nn.Module):
    """Base class. Subclasses implement `_encode` and `decode_logits`, and may extend `loss`."""

    kind: str = "base"
    variational: bool = False   # Gaussian encoder q(z|x): codes have a logvar, the loss a KL term
    has_prior: bool = False     # codes are pushed towards N(0, I), so decoded draws from it mean something

    def __init__(self, cfg: ModelConfig, input_shape: tuple[int, ...], loss: str):
        super().__init__()
        if loss not in ("bce", "mse"):
            raise ValueError(f"loss must be resolved to bce or mse before building, got {loss!r}")
        self.cfg = cfg
        self.input_shape = tuple(int(s) for s in input_shape)
        self.loss_kind = loss
        self.latent_dim = int(cfg.latent_dim)

    # --- to implement -------------------------------------------------------------------------
    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, *input_shape) -> (mu (B, K), logvar (B, K) or None)."""
        raise NotImplementedError

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """(B, K) -> (B, *input_shape), before the output activation."""
        raise NotImplementedError

    def note_training_size(self, n: int) -> None:
        """The trainer tells the model how many training samples there are, before the first
        step; estimators of aggregate-posterior terms need it (beta-TCVAE). Others ignore it."""

    # --- shared behaviour ---------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic code (the mean for VAE kinds): (B, K)."""
        return self._encode(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Code to data space: sigmoid for BCE decoders (pixel probabilities), identity for MSE."""
        out = self.decode_logits(z)
        return torch.sigmoid(out) if self.loss_kind == "bce" else out

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """Input corruption used in training (denoising AE overrides); identity by default."""
        return x

    def noise_like(self, like: torch.Tensor, uniform: bool = False) -> torch.Tensor:
        """N(0, 1) (or U[0, 1)) noise shaped like `like`, a tensor of this rank's samples.

        In one process: randn_like / rand_like. As one of `world` ranks in training
        (app/core/distributed.py sets batch_shard), rank r holds rows r, r + world, ... of the
        global batch (app/core/data/streaming.py), so it draws the global batch's noise and keeps
        the same rows: the ranks together use the very draws one process would, and a 2-rank run
        follows the one-process run (every kind's sampled codes, the denoising noise, the AAE's
        prior samples). nn.Dropout's masks are not matched this way."""
        shard = self.batch_shard
        if shard is None or not self.training:
            return torch.rand_like(like) if uniform else torch.randn_like(like)
        rank, world = shard
        shape = (like.shape[0] * world, *like.shape[1:])
        draw = torch.rand if uniform else torch.randn
        return draw(shape, dtype=like.dtype, device=like.device)[rank::world]

    def forward(self, x: torch.Tensor, sample: bool | None = None) -> ModelOutput:
        """sample: draw z for VAE kinds (default: in training mode). Evaluation of the ELBO passes
        sample=True, as PyTorch's VAE example does, so held-out losses compare with published ones."""
        x_in = self.corrupt(x) if self.training else x
        mu, logvar = self._encode(x_in)
        if sample is None:
            sample = self.training
        if logvar is not None and sample:
            # Reparameterisation trick: z = mu + sigma * eps, eps ~ N(0, I).
            z = mu + self.noise_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu
        return ModelOutput(recon=self.decode_logits(z), z=z, mu=mu, logvar=logvar)

    def loss(self, x: torch.Tensor, out: ModelOutput, beta: float = 1.0) -> dict[str, torch.Tensor]:
        """Named loss parts, each a batch mean of per-sample values; 'total' is what is minimised."""
        rec = reconstruction_loss(out.recon, x, self.loss_kind).mean()
        parts = {"reconstruction": rec}
        total = rec
        if out.logvar is not None:
            kl = gaussian_kl(out.mu, out.logvar).sum(1).mean()
            parts["kl"] = kl
            total = total + beta * kl
        parts["total"] = total
        return parts

    def scores_from(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Per-sample (B,) reconstruction error (squared error in data space) and, for VAE kinds,
        the negative ELBO estimated with sampled z (negative_elbo), from codes already computed
        (one encoding pass serves codes and scores). Used by anomaly detection."""
        recon = self.decode_logits(mu)
        data_space = torch.sigmoid(recon) if self.loss_kind == "bce" else recon
        scores = {"squared_error": (data_space - x).pow(2).flatten(1).sum(1)}
        if logvar is not None:
            scores["neg_elbo"] = self.negative_elbo(x, mu, logvar)
        return scores

    def negative_elbo(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                      samples: int = ELBO_SAMPLES) -> torch.Tensor:
        """(B,) negative ELBO (Kingma & Welling 2014, eq. 10): -log p(x | z) averaged over `samples`
        draws z = mu + sigma * eps, plus the analytic KL(q(z|x) || N(0, I)). The `samples` noise
        vectors eps come from a generator seeded 0 and are shared by every sample (common random
        numbers): each score is still a Monte Carlo ELBO, and it does not depend on batching."""
        generator = torch.Generator(device="cpu").manual_seed(0)
        noise = torch.randn((samples, mu.shape[1]), generator=generator, dtype=mu.dtype).to(mu.device)
        std = torch.exp(0.5 * logvar)
        rec = torch.zeros(len(x), device=x.device, dtype=mu.dtype)
        for eps in noise:
            rec = rec + reconstruction_loss(self.decode_logits(mu + std * eps), x, self.loss_kind)
        return rec / samples + gaussian_kl(mu, logvar).sum(1)

    def make_optimizers(self, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
        return [make_optimizer(self.parameters(), cfg)]

    # --- training -----------------------------------------------------------------------------
    # A training step is one or more phases, each a forward pass that returns loss parts
    # (`phase_losses`), its backward and its optimizers' steps. The forward goes through
    # `self.steps`: LOCAL_STEPS calls phase_losses itself; app/core/distributed.py sets one
    # DistributedDataParallel wrapper per phase (of phase_modules), whose reducer averages the
    # gradients over the ranks during that phase's backward. batch_shard is (rank, world) there,
    # for noise_like.
    phases: tuple[str, ...] = ("autoencoder",)
    batch_shard: tuple[int, int] | None = None

    @property
    def steps(self) -> "LocalSteps":
        return self.__dict__.get("_steps", LOCAL_STEPS)

    def use_steps(self, steps: "LocalSteps") -> None:
        """Route the training step's forwards and backwards through `steps` (a plain attribute,
        not a submodule: the state dict and the saved kind stay the model's own)."""
        self.__dict__["_steps"] = steps

    def phase_modules(self, phase: str) -> tuple[nn.Module, ...]:
        """The modules whose parameters `phase` trains (DDP wraps exactly these for that phase)."""
        return (self,)

    def phase_losses(self, x: torch.Tensor, phase: str, settings: StepSettings) -> dict[str, torch.Tensor]:
        """The named loss parts of one phase of a training step; 'total' is what its backward
        minimises. One phase here: the loss plus the L1 weight penalty."""
        parts = self.loss(x, self(x), beta=settings.beta)
        if settings.l1_weight > 0:
            l1 = sum(p.abs().sum() for p in self.parameters() if p.dim() > 1)
            parts["l1"] = l1
            parts["total"] = parts["total"] + settings.l1_weight * l1
        return parts

    def training_step(self, x: torch.Tensor, optimizers: list[torch.optim.Optimizer],
                      settings: StepSettings) -> dict[str, torch.Tensor]:
        """One optimiser step. Raises NonFiniteLoss before touching the weights if the loss is
        NaN/Inf, so the weights are always the last good ones. Returns detached parts."""
        opt = optimizers[0]
        opt.zero_grad(set_to_none=True)
        parts = self.steps.losses(self, x, "autoencoder", settings)
        self.steps.backward(parts["total"], parts)
        clip_gradients(self.parameters(), settings)
        opt.step()
        return {k: v.detach() for k, v in parts.items()}


class LocalSteps:
    """The phases of a training step in one process: the model's own phase_losses, and a NaN/Inf
    loss raises NonFiniteLoss before its backward. app/core/distributed.py has the DDP version."""

    wrapper = "none (one process)"

    def losses(self, model: Autoencoder, x: torch.Tensor, phase: str,
               settings: StepSettings) -> dict[str, torch.Tensor]:
        return model.phase_losses(x, phase, settings)

    def backward(self, objective: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
        """Back-propagate `objective` into the parameters' .grad; `parts` name the step's loss
        (their 'total' is what is checked)."""
        check_finite(parts)
        objective.backward()

    def check(self, parts: dict[str, torch.Tensor]) -> None:
        """The finiteness decision for parts that no backward follows (reported only)."""
        check_finite(parts)


LOCAL_STEPS = LocalSteps()


def clip_gradients(params, settings: StepSettings) -> None:
    """Clip after the backward, so under DDP the averaged gradients are clipped, as one process's."""
    if settings.grad_clip > 0:
        nn.utils.clip_grad_norm_(list(params), settings.grad_clip)


def check_finite(parts: dict[str, torch.Tensor]) -> None:
    # One device sync per step: the price of never stepping on a NaN.
    if not bool(torch.isfinite(parts["total"])):
        raise NonFiniteLoss({k: float(v.detach()) for k, v in parts.items()})


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}


def mlp(sizes: list[int], activation: str, dropout: float = 0.0, last_activation: bool = False) -> nn.Sequential:
    """Linear layers between consecutive sizes, activation (and dropout) after each but the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)
