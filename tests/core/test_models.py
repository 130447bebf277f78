"""Model layer: every kind's shapes, loss parts, a real decrease of the loss in training, and the
maths of each regulariser checked against an independent computation. No Qt."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
import time

import pytest
import torch

from app.core.config import MODEL_KINDS, VARIATIONAL_KINDS, ModelConfig, TrainConfig
from app.core.errors import ConfigError
from app.core.models import (MAX_PARAMETERS, MODEL_KINDS_HELP, NonFiniteLoss, StepSettings, build_model,
                             count_parameters, model_warnings)
from app.core.models.base import gaussian_kl, reconstruction_loss

K = 4
IMAGE_SHAPE = (1, 8, 8)
SEQUENCE_SHAPE = (16, 3)
# "rnn-ae/lstm" is rnn-ae with an LSTM cell; every other entry is a kind with the GRU default.
VARIANTS = [*MODEL_KINDS, "rnn-ae/lstm"]
EXPECTED_PARTS = {
    "ae": {"reconstruction", "total"},
    "sparse": {"reconstruction", "sparsity", "total"},
    "denoising": {"reconstruction", "total"},
    "contractive": {"reconstruction", "contractive", "total"},
    "vae": {"reconstruction", "kl", "total"},
    "beta-tcvae": {"reconstruction", "mi", "tc", "dim_kl", "kl", "total"},
    "conv-ae": {"reconstruction", "total"},
    "conv-vae": {"reconstruction", "kl", "total"},
    "rnn-ae": {"reconstruction", "total"},
    "aae": {"reconstruction", "adversarial", "discriminator", "total"},
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: a second intra-op thread only adds synchronisation, and on a busy
    2-core machine OpenMP's spinning made steps up to 50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def bar_images(n: int = 256, seed: int = 0) -> torch.Tensor:
    """(n, 1, 8, 8) in [0, 1]: a soft horizontal and a soft vertical bar at random positions,
    so the data has two underlying factors an autoencoder can find."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.arange(8.0)
    rows, cols = torch.rand(n, generator=g) * 7, torch.rand(n, generator=g) * 7
    horizontal = torch.exp(-(grid - rows[:, None]) ** 2)             # (n, 8)
    vertical = torch.exp(-(grid - cols[:, None]) ** 2)               # (n, 8)
    return torch.maximum(horizontal[:, :, None], vertical[:, None, :]).unsqueeze(1)


def sine_sequences(n: int = 256, seed: int = 0) -> torch.Tensor:
    """(n, 16, 3): three phase-shifted sines with a random frequency and phase per sample."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, SEQUENCE_SHAPE[0])
    freq = 1 + 2 * torch.rand(n, 1, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
    shifts = torch.tensor([0.0, 1.0, 2.0])
    return torch.sin(2 * math.pi * freq * t[None, :, None] + phase + shifts)


def make(variant: str, **overrides):
    """(model, data) for a variant, small enough to train in a fraction of a second."""
    kind, _, cell = variant.partition("/")
    settings = dict(kind=kind, latent_dim=K, hidden=(64,), channels=(8, 16), rnn_hidden=32,
                    rnn_cell=cell or "gru")
    settings.update(overrides)
    cfg = ModelConfig(**settings)
    if kind == "rnn-ae":
        return build_model(cfg, SEQUENCE_SHAPE, "sequence", "mse"), sine_sequences()
    return build_model(cfg, IMAGE_SHAPE, "image", "bce"), bar_images()


def train(model, data, steps: int = 120, lr: float = 3e-3, batch: int = 64, settings=None) -> list[float]:
    settings = settings or StepSettings(beta=1.0)
    optimizers = model.make_optimizers(TrainConfig(lr=lr))
    model.train()
    totals = []
    for step in range(steps):
        start = (step * batch) % len(data)
        parts = model.training_step(data[start:start + batch], optimizers, settings)
        totals.append(float(parts["total"]))
    return totals


# --- interface ------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_attributes(variant):
    model, data = make(variant)
    x = data[:5]
    kind = variant.split("/")[0]
    assert model.kind == kind
    assert model.variational == (kind in VARIATIONAL_KINDS)
    model.eval()
    with torch.no_grad():
        z = model.encode(x)
        out = model(x)
        decoded = model.decode(torch.randn(7, K))
    assert z.shape == (5, K)
    assert out.recon.shape == x.shape and out.z.shape == (5, K) and out.mu.shape == (5, K)
    assert (out.logvar is not None) == model.variational
    assert decoded.shape == (7, *x.shape[1:])
    if model.loss_kind == "bce":
        assert 0 <= float(decoded.min()) and float(decoded.max()) <= 1
    with torch.no_grad():
        scores = model.scores_from(x, *model._encode(x))
    assert scores["squared_error"].shape == (5,)


@pytest.mark.parametrize("variant", VARIANTS)
def test_encode_is_deterministic_in_eval_mode(variant):
    model, data = make(variant, dropout=0.3)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.encode(data[:8]), model.encode(data[:8]))
        out = model(data[:8])
        assert torch.equal(out.z, out.mu)


@pytest.mark.parametrize("variant", VARIANTS)
def test_loss_parts_are_named_and_finite(variant):
    model, data = make(variant)
    kind = variant.split("/")[0]
    model.train()
    parts = model.loss(data[:16], model(data[:16]), beta=1.0)
    assert set(parts) == EXPECTED_PARTS[kind]
    assert all(v.dim() == 0 and torch.isfinite(v) for v in parts.values())
    step_parts = model.training_step(data[:16], model.make_optimizers(TrainConfig()),
                                     StepSettings(beta=1.0, l1_weight=1e-4, grad_clip=1.0))
    assert set(step_parts) == EXPECTED_PARTS[kind] | {"l1"}
    assert all(not v.requires_grad and torch.isfinite(v) for v in step_parts.values())


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_lowers_the_loss(variant):
    model, data = make(variant)
    totals = train(model, data)
    first, last = sum(totals[:5]) / 5, sum(totals[-5:]) / 5
    assert last < 0.9 * first, f"{variant}: total {first:.3f} -> {last:.3f}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_nan_input_raises_before_any_weight_changes(variant):
    model, data = make(variant)
    optimizers = model.make_optimizers(TrainConfig())
    train(model, data, steps=2)
    before = copy.deepcopy(model.state_dict())
    bad = data[:16].clone()
    bad[3] = float("nan")
    with pytest.raises(NonFiniteLoss):
        model.training_step(bad, optimizers, StepSettings())
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_every_kind_has_help_and_counted_parameters():
    assert set(MODEL_KINDS_HELP) == set(MODEL_KINDS)
    assert all(text and "\n" not in text for text in MODEL_KINDS_HELP.values())
    model = build_model(ModelConfig(kind="ae", latent_dim=3, hidden=(5,)), (4,), "tabular", "mse")
    # encoder 4->5->3, decoder 3->5->4, weights plus biases
    assert count_parameters(model) == (4 * 5 + 5) + (5 * 3 + 3) + (3 * 5 + 5) + (5 * 4 + 4)


def test_deep_ae_has_every_hidden_layer_mirrored():
    model = build_model(ModelConfig(kind="ae", latent_dim=2, hidden=(32, 16, 8)), (20,), "tabular", "mse")
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [
        (20, 32), (32, 16), (16, 8), (8, 2), (2, 8), (8, 16), (16, 32), (32, 20)]
    assert isinstance(model.encoder[-1], torch.nn.Linear)            # no activation on the code


# --- regularisers ---------------------------------------------------------------------------------

def test_l1_sparsity_shrinks_the_code():
    data = bar_images()
    magnitudes = {}
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        model, _ = make("sparse", sparsity="l1", sparsity_weight=weight)
        train(model, data, steps=120)
        model.eval()
        with torch.no_grad():
            magnitudes[weight] = float(model.encode(data).abs().mean())
    assert magnitudes[0.5] < 0.5 * magnitudes[0.0], magnitudes


def test_kl_sparsity_pulls_mean_activation_to_target():
    data = bar_images()
    model, _ = make("sparse", sparsity="kl", sparsity_weight=3.0, sparsity_target=0.05, latent_dim=8)
    train(model, data, steps=150, lr=1e-2)
    model.eval()
    with torch.no_grad():
        rho_hat = model.encode(data).mean(0)
    assert float(rho_hat.mean()) < 0.15, rho_hat


def test_kl_sparsity_penalty_formula():
    model, _ = make("sparse", sparsity="kl", sparsity_target=0.1)
    z = torch.tensor([[0.2, 0.1], [0.4, 0.1]])                       # rho_hat = (0.3, 0.1)
    expected = 0.1 * math.log(0.1 / 0.3) + 0.9 * math.log(0.9 / 0.7)  # second unit is on target: 0
    assert float(model.sparsity_penalty(z)) == pytest.approx(expected, rel=1e-5)


def brute_force_jacobian_norm(model, x: torch.Tensor) -> torch.Tensor:
    norms = []
    for sample in x:
        jac = torch.autograd.functional.jacobian(lambda s: model.encode(s.unsqueeze(0))[0], sample)  # (K, D)
        norms.append(jac.pow(2).sum())
    return torch.stack(norms)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_contractive_penalty_is_the_encoder_jacobian_norm(activation):
    model = build_model(ModelConfig(kind="contractive", latent_dim=3, hidden=(5,), activation=activation),
                        (6,), "tabular", "mse").double()
    x = torch.randn(4, 6, dtype=torch.float64)
    expected = brute_force_jacobian_norm(model, x)
    torch.testing.assert_close(model.jacobian_norm(x), expected)
    with torch.no_grad():                                            # the trainer's validation pass
        torch.testing.assert_close(model.jacobian_norm(x), expected)
    with torch.inference_mode():
        torch.testing.assert_close(model.jacobian_norm(x), expected)


def test_contractive_penalty_trains_the_encoder():
    model, data = make("contractive", contractive_weight=1.0, activation="sigmoid")
    model.jacobian_norm(data[:8]).mean().backward()                  # create_graph: it has a gradient
    assert float(model.encoder[0].weight.grad.abs().sum()) > 0
    norms = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model, _ = make("contractive", contractive_weight=weight)
        train(model, data, steps=150)
        model.eval()
        with torch.no_grad():
            norms[weight] = float(model.jacobian_norm(data).mean())
    assert norms[1.0] < 0.5 * norms[0.0], norms


@pytest.mark.parametrize("noise", ["gaussian", "masking"])
def test_denoising_corrupts_only_in_training(noise):
    model, data = make("denoising", noise=noise, noise_level=0.3)
    x = data[:64]
    model.train()
    corrupted = model.corrupt(x)
    assert not torch.equal(corrupted, x)
    assert 0 <= float(corrupted.min()) and float(corrupted.max()) <= 1   # BCE data stays valid targets
    if noise == "masking":
        masked = ((corrupted == 0) & (x != 0)).float().mean()
        assert 0.25 < float(masked) < 0.35
    model.eval()
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out.recon, model.decode_logits(model.encode(x)))


def test_denoising_reconstructs_the_clean_input():
    model, data = make("denoising", noise="masking", noise_level=0.5)
    model.train()
    x = data[:8]
    out = model(x)
    parts = model.loss(x, out)
    torch.testing.assert_close(parts["reconstruction"], reconstruction_loss(out.recon, x, "bce").mean())


def test_gaussian_kl_matches_closed_form_and_monte_carlo():
    mu = torch.tensor([[0.0, 1.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(0.25), math.log(4.0)]])
    closed = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                               torch.distributions.Normal(0.0, 1.0))
    torch.testing.assert_close(gaussian_kl(mu, logvar), closed)
    assert float(gaussian_kl(mu, logvar)[0, 0]) == 0.0
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    z = q.sample((200_000,))
    monte_carlo = (q.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)).mean(0)
    torch.testing.assert_close(monte_carlo, gaussian_kl(mu, logvar), atol=0.02, rtol=0.02)


@pytest.mark.parametrize("kind", ["vae", "conv-vae"])
def test_vae_loss_is_reconstruction_plus_beta_kl(kind):
    model, data = make(kind)
    model.train()
    x = data[:16]
    out = model(x)
    assert not torch.equal(out.z, out.mu)                            # sampled in training
    parts = model.loss(x, out, beta=4.0)
    torch.testing.assert_close(parts["kl"], gaussian_kl(out.mu, out.logvar).sum(1).mean())
    torch.testing.assert_close(parts["total"], parts["reconstruction"] + 4.0 * parts["kl"])


def test_vae_uses_the_trainers_beta():
    data = bar_images()
    kls = {}
    for beta in (0.0, 8.0):
        torch.manual_seed(0)
        model, _ = make("vae")
        train(model, data, steps=100, settings=StepSettings(beta=beta))
        model.eval()
        with torch.no_grad():
            out = model(data)
            kls[beta] = float(model.loss(data, out)["kl"])
    assert kls[8.0] < kls[0.0], kls


def test_aae_alternates_three_optimisers():
    model, data = make("aae")
    optimizers = model.make_optimizers(TrainConfig())
    assert len(optimizers) == 3
    disc_before = copy.deepcopy(model.discriminator.state_dict())
    dec_before = copy.deepcopy(model.decoder.state_dict())
    model.training_step(data[:32], optimizers, StepSettings())
    assert not torch.equal(disc_before["0.weight"], model.discriminator.state_dict()["0.weight"])
    assert not torch.equal(dec_before["0.weight"], model.decoder.state_dict()["0.weight"])
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    assert {id(p) for g in optimizers[2].param_groups for p in g["params"]} == encoder_ids
    assert not encoder_ids & {id(p) for g in optimizers[1].param_groups for p in g["params"]}


def test_aae_moves_codes_towards_the_prior():
    data = bar_images()
    spread = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model, _ = make("aae", adversarial_weight=weight)
        train(model, data, steps=150)
        model.eval()
        with torch.no_grad():
            z = model.encode(data)
        # distance of the codes' per-unit mean and std from the prior's (0, 1)
        spread[weight] = float(z.mean(0).abs().mean() + (z.std(0) - 1).abs().mean())
    assert spread[1.0] < spread[0.0], spread


# --- image sizes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["conv-ae", "conv-vae"])
@pytest.mark.parametrize("height,width", [(8, 8), (28, 28), (32, 32), (30, 20), (7, 5)])
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_reconstructs_any_image_size(kind, height, width, channels):
    model = build_model(ModelConfig(kind=kind, latent_dim=K, channels=(8, 16)), (channels, height, width),
                        "image", "bce")
    x = torch.rand(2, channels, height, width)
    model.eval()
    with torch.no_grad():
        assert model(x).recon.shape == x.shape
        assert model.decode(torch.randn(3, K)).shape == (3, channels, height, width)


# --- refusals and warnings ------------------------------------------------------------------------

@pytest.mark.parametrize("kind,shape,modality,words", [
    ("conv-vae", (64,), "tabular", ["conv-vae needs image data", "tabular", "pick ae or vae"]),
    ("conv-ae", (16, 3), "sequence", ["conv-ae needs image data", "sequence"]),
    ("rnn-ae", (1, 8, 8), "image", ["rnn-ae needs sequence data", "image"]),
    ("rnn-ae", (64,), "tabular", ["rnn-ae needs sequence data", "tabular"]),
])
def test_kind_and_data_mismatch_is_refused(kind, shape, modality, words):
    with pytest.raises(ConfigError) as info:
        build_model(ModelConfig(kind=kind), shape, modality, "mse")
    assert all(w in str(info.value) for w in words), str(info.value)


def test_images_too_small_for_the_conv_stages_are_refused():
    with pytest.raises(ConfigError, match="too small for 4 conv stages"):
        build_model(ModelConfig(kind="conv-ae", channels=(8, 8, 8, 8)), (1, 8, 8), "image", "bce")


@pytest.mark.parametrize("bad", [dict(kind="transformer"), dict(latent_dim=0), dict(dropout=1.5)])
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        build_model(ModelConfig(**bad), (64,), "tabular", "mse")


def test_bad_modality_loss_or_shape_are_refused():
    with pytest.raises(ConfigError, match="modality"):
        build_model(ModelConfig(kind="ae"), (64,), "audio", "mse")
    with pytest.raises(ConfigError, match="bce or mse"):
        build_model(ModelConfig(kind="ae"), (64,), "tabular", "auto")
    with pytest.raises(ConfigError, match="input shape"):
        build_model(ModelConfig(kind="ae"), (0,), "tabular", "mse")


@pytest.mark.parametrize("cfg,shape,modality", [
    (ModelConfig(kind="ae", hidden=(100000, 100000)), (64,), "tabular"),
    (ModelConfig(kind="vae", hidden=(60000, 60000)), (64,), "tabular"),
    (ModelConfig(kind="ae", hidden=(400,)), (3, 512, 512), "image"),
    (ModelConfig(kind="conv-vae", channels=(4096, 4096), latent_dim=4096), (3, 64, 64), "image"),
])
def test_absurd_sizes_are_refused_before_allocation(cfg, shape, modality):
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        build_model(cfg, shape, modality, "mse")
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    if "parameters" in message:
        assert f"{MAX_PARAMETERS // 1_000_000} million" in message
        assert "latent_dim" in message


def test_overcomplete_code_without_regulariser_is_warned():
    for kind, shape in [("ae", (16,)), ("conv-ae", (1, 4, 4)), ("rnn-ae", (4, 2))]:
        warnings = model_warnings(ModelConfig(kind=kind, latent_dim=16, hidden=(32,)), shape)
        assert any("overcomplete" in w and "sparse, denoising or contractive" in w for w in warnings), kind
    for kind in ("sparse", "denoising", "contractive", "vae"):
        warnings = model_warnings(ModelConfig(kind=kind, latent_dim=16, hidden=(32,)), (16,))
        assert not any("overcomplete" in w for w in warnings), kind
    assert model_warnings(ModelConfig(kind="ae", latent_dim=2, hidden=(32,)), (16,)) == []


def test_regulariser_switched_off_is_warned():
    assert any("plain ae" in w for w in model_warnings(ModelConfig(kind="sparse", sparsity_weight=0.0), (64,)))
    assert any("beta=0" in w for w in model_warnings(ModelConfig(kind="vae", beta=0.0), (64,)))


def test_models_package_imports_no_qt():
    code = ("import sys, app.core.models; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
