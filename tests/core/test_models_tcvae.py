"""beta-TCVAE (Chen et al. 2018): the minibatch-weighted-sampling estimator against a brute-force
computation, the parts adding up to the KL they decompose, the data set size reaching the model,
and training on shapes giving a lower total correlation than a plain VAE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.data import load_dataset
from app.core.models import build_model
from app.core.models.tcvae import mws_decomposition, set_total_correlation
from app.core.session import prepare_training
from app.core.trainer import Trainer, train_to_end


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/core/conftest.py


def normal_log_density(z: float, mu: float, logvar: float) -> float:
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / math.exp(logvar))


def brute_force_mws(z, mu, logvar, n: int) -> dict[str, float]:
    """The paper's estimator written out with loops and plain floats."""
    M, K = z.shape
    mi = tc = dim_kl = 0.0
    for i in range(M):
        q_joint = sum(math.exp(sum(normal_log_density(z[i, k], mu[j, k], logvar[j, k]) for k in range(K)))
                      for j in range(M))
        log_qz = math.log(q_joint / (n * M))
        log_prod = sum(math.log(sum(math.exp(normal_log_density(z[i, k], mu[j, k], logvar[j, k]))
                                    for j in range(M)) / (n * M)) for k in range(K))
        log_cond = sum(normal_log_density(z[i, k], mu[i, k], logvar[i, k]) for k in range(K))
        log_prior = sum(normal_log_density(z[i, k], 0.0, 0.0) for k in range(K))
        mi += (log_cond - log_qz) / M
        tc += (log_qz - log_prod) / M
        dim_kl += (log_prod - log_prior) / M
    return {"mi": mi, "tc": tc, "dim_kl": dim_kl}


@pytest.mark.parametrize("n", [5, 1000])
def test_mws_estimator_matches_brute_force_on_a_tiny_batch(n):
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 3, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    z = mu + torch.randn(5, 3, generator=g, dtype=torch.float64) * torch.exp(0.5 * logvar)
    got = {k: float(v) for k, v in mws_decomposition(z, mu, logvar, n).items()}
    expected = brute_force_mws(z.numpy(), mu.numpy(), logvar.numpy(), n)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_parts_sum_to_the_sampled_kl_and_the_loss_weights_them():
    """MI + TC + dim_kl = mean of log q(z|x) - log p(z) exactly, for any estimator of q(z)."""
    model = build_model(ModelConfig(kind="beta-tcvae", latent_dim=3, hidden=(16,), beta=6.0, mi_weight=0.5,
                                    dim_kl_weight=2.0), (10,), "tabular", "mse").double()
    model.note_training_size(400)
    x = torch.randn(32, 10, dtype=torch.float64)
    model.train()
    out = model(x)
    parts = model.loss(x, out, beta=6.0)
    cond = (-0.5 * (math.log(2 * math.pi) + out.logvar + (out.z - out.mu) ** 2 / out.logvar.exp())).sum(1)
    prior = (-0.5 * (math.log(2 * math.pi) + out.z ** 2)).sum(1)
    torch.testing.assert_close(parts["mi"] + parts["tc"] + parts["dim_kl"], (cond - prior).mean())
    torch.testing.assert_close(parts["total"], parts["reconstruction"] + 0.5 * parts["mi"] + 6.0 * parts["tc"]
                               + 2.0 * parts["dim_kl"])
    half = model.loss(x, out, beta=3.0)                               # KL annealing at one half
    torch.testing.assert_close(half["total"], parts["reconstruction"] + 0.25 * parts["mi"] + 3.0 * parts["tc"]
                               + 1.0 * parts["dim_kl"])


def test_the_trainer_tells_the_model_the_training_set_size():
    model = build_model(ModelConfig(kind="beta-tcvae", latent_dim=2, hidden=(8,)), (4,), "tabular", "mse")
    Trainer(model, np.zeros((123, 4), np.float32), None, TrainConfig(batch_size=16, device="cpu"))
    assert model.dataset_size == 123


def held_out_tc(model, x: np.ndarray) -> float:
    """Total correlation of the held-out split's aggregate posterior, codes sampled as in training."""
    model.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        out = model(torch.as_tensor(x), sample=True)
    return set_total_correlation(out.z, out.mu, out.logvar)


def test_set_total_correlation_is_zero_for_independent_codes_and_positive_for_correlated_ones():
    g = torch.Generator().manual_seed(0)
    independent = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    shared = torch.randn(2000, 1, generator=g, dtype=torch.float64)
    correlated = torch.cat([shared, shared + 0.1 * torch.randn(2000, 1, generator=g, dtype=torch.float64)], 1)
    logvar = torch.full((2000, 2), math.log(0.3 ** 2), dtype=torch.float64)
    # A Gaussian with correlation r has TC = -0.5 log(1 - r^2); blurred by the posteriors' 0.3 the
    # correlated pair has r^2 = 1 / (1.09 * 1.10), TC ~ 0.9 nats.
    noise = 0.3 * torch.randn(2000, 2, generator=g, dtype=torch.float64)      # z_i ~ q(z | x_i)
    assert abs(set_total_correlation(independent + noise, independent, logvar)) < 0.1
    assert 0.6 < set_total_correlation(correlated + noise, correlated, logvar) < 1.2


def test_beta_tcvae_has_lower_total_correlation_than_a_plain_vae_on_shapes():
    """Against the plain VAE; not against its own start, where untrained posteriors all equal the
    prior and the total correlation is already about 0."""
    data_cfg = DataConfig(spec="shapes", val_fraction=0.2, split_seed=0, n_samples=3000)
    data = load_dataset(data_cfg)
    tcs = {}
    for kind, beta in (("vae", 1.0), ("beta-tcvae", 10.0)):
        model_cfg = ModelConfig(kind=kind, latent_dim=6, hidden=(256,), beta=beta)
        prepared = prepare_training(data_cfg, model_cfg, TrainConfig(epochs=8, batch_size=64, lr=1e-3, seed=0,
                                                                     device="cpu"), data=data)
        assert train_to_end(prepared.trainer).ok
        tcs[kind] = held_out_tc(prepared.model, data.x[prepared.val_idx])
    assert tcs["beta-tcvae"] < 0.5 * tcs["vae"], tcs
