"""beta-TCVAE (Chen et al. 2018, "Isolating Sources of Disentanglement in Variational
Autoencoders"): the MLP VAE with its KL term split in three and the total correlation weighted.

    E_p(x)[KL(q(z|x) || p(z))] =  I_q(x; z)                        index-code mutual information
                                + KL(q(z) || prod_k q(z_k))          total correlation (TC)
                                + sum_k KL(q(z_k) || p(z_k))         dimension-wise KL

    loss = reconstruction + alpha * MI + beta * TC + gamma * dim_kl     (paper: alpha = gamma = 1)

q(z) and q(z_k) are the aggregate posteriors over the whole training set of N samples. They are
estimated on each minibatch of M samples by minibatch-weighted sampling (MWS, the paper's
eq. 4 / appendix C.1): for z_i drawn from q(z|x_i),

    log q(z_i)   ~ logsumexp_j log q(z_i | x_j)       - log(N M)
    log q(z_ik)  ~ logsumexp_j log q(z_ik | x_j)      - log(N M)

with q(z|x_j) = N(mu_j, diag(exp(logvar_j))), and every part is a mean over i. N is the
training-set size, which the trainer tells the model (`note_training_size`); without it the
minibatch is taken as the data set (N = M).

MWS's value carries an offset: with diffuse posteriors (q(z|x_j) alike for every j) it reads
about (K - 1) log N although the true TC is near 0, so the 'tc' curve is not the TC itself; its
gradient, which is what training uses, does not depend on N. `set_total_correlation` is the
consistent figure for a fixed set of samples (their exact empirical aggregate posterior), used
to compare models.

The trainer's beta (cfg.beta times the KL annealing factor) weights TC; alpha (mi_weight) and
gamma (dim_kl_weight) follow the same annealing factor, so a warm-up still starts from a plain
autoencoder. 'kl' is the analytic KL of the usual ELBO, reported (not minimised) so the curves
and the collapse check read as for the other VAE kinds.
"""

from __future__ import annotations

import math

import torch

from app.core.models.base import ModelOutput, gaussian_kl, reconstruction_loss
from app.core.models.mlp import VAE

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) elementwise (broadcasting)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def mws_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                      dataset_size: int) -> dict[str, torch.Tensor]:
    """MI, TC and dimension-wise KL by minibatch-weighted sampling (Chen et al. 2018), each a
    mean over the batch. z, mu, logvar: (M, K); dataset_size: N >= M."""
    M = z.shape[0]
    log_nm = math.log(dataset_size * M)
    # pairwise[i, j, k] = log q(z_ik | x_j): sample i's code under sample j's posterior
    pairwise = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])   # (M, M, K)
    log_qz = torch.logsumexp(pairwise.sum(2), dim=1) - log_nm                             # (M,)
    log_qz_prod = (torch.logsumexp(pairwise, dim=1) - log_nm).sum(1)                      # (M,)
    log_qz_given_x = gaussian_log_density(z, mu, logvar).sum(1)                           # (M,)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)     # (M,)
    return {"mi": (log_qz_given_x - log_qz).mean(), "tc": (log_qz - log_qz_prod).mean(),
            "dim_kl": (log_qz_prod - log_pz).mean()}


def set_total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> float:
    """TC of the aggregate posterior q(z) = (1/n) sum_j q(z|x_j) of the n samples themselves,
    estimated at z_i ~ q(z|x_i): mean_i [log q(z_i) - sum_k log q(z_ik)], in float64. O(n^2 K)
    memory: pass at most a few thousand samples."""
    z, mu, logvar = z.double(), mu.double(), logvar.double()
    n = z.shape[0]
    pairwise = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])   # (n, n, K)
    log_qz = torch.logsumexp(pairwise.sum(2), dim=1) - math.log(n)
    log_qz_prod = (torch.logsumexp(pairwise, dim=1) - math.log(n)).sum(1)
    return float((log_qz - log_qz_prod).mean())


class BetaTCVAE(VAE):
    kind = "beta-tcvae"
    variational = True

    def __init__(self, cfg, input_shape: tuple[int, ...], loss: str):
        super().__init__(cfg, input_shape, loss)
        self.dataset_size: int | None = None

    def note_training_size(self, n: int) -> None:
        self.dataset_size = int(n)

    def loss(self, x: torch.Tensor, out: ModelOutput, beta: float = 1.0) -> dict[str, torch.Tensor]:
        rec = reconstruction_loss(out.recon, x, self.loss_kind).mean()
        n = max(self.dataset_size or 0, len(x))
        parts = mws_decomposition(out.z, out.mu, out.logvar, n)
        anneal = beta / self.cfg.beta if self.cfg.beta > 0 else 1.0
        total = (rec + anneal * self.cfg.mi_weight * parts["mi"] + beta * parts["tc"]
                 + anneal * self.cfg.dim_kl_weight * parts["dim_kl"])
        kl = gaussian_kl(out.mu, out.logvar).sum(1).mean()
        return {"reconstruction": rec, **parts, "kl": kl.detach(), "total": total}
