"""The penalised kinds cannot dodge their penalty (issue 11): sparse and contractive tie the
decoder to the encoder and bound the code (Rifai et al. 2011; Ng's sparse AE notes), so
rescaling the code down and the decoder up does not lower the penalised loss, and after
training on digits the codes really are sparser / less sensitive than the plain ae's, measured
scale-free on the held-out split."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.data import load_dataset
from app.core.models import StepSettings, build_model
from app.core.models.diagnostics import code_to_decoder_weight, near_zero_share, relative_jacobian
from app.core.session import encode_all, prepare_training
from app.core.trainer import EpochResult, train_to_end


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/core/conftest.py


@pytest.fixture(scope="module")
def digits():
    cfg = DataConfig(spec="digits", val_fraction=0.2, split_seed=0)
    return cfg, load_dataset(cfg)


def penalised_loss(model, x: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        out = model(x)
    return float(model.loss(x, out)["total"])


def rescale_code_and_decoder(model, code_factor: float = 0.1) -> None:
    """The dodge: the encoder's code layer times 0.1, the decoder's first layer times 10. With a
    tied decoder there is no separate decoder weight to grow: the shared weight shrinks both."""
    code_layer = [m for m in model.encoder if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        code_layer.weight.mul_(code_factor)
        code_layer.bias.mul_(code_factor)
        decoder_weight = code_to_decoder_weight(model)
        if decoder_weight is not code_layer.weight:
            decoder_weight.mul_(1 / code_factor)


@pytest.mark.parametrize("kind, settings", [("sparse", {"sparsity": "l1", "sparsity_weight": 1.0}),
                                            ("sparse", {"sparsity": "kl", "sparsity_weight": 1.0}),
                                            ("contractive", {"contractive_weight": 1.0})])
def test_rescaling_the_code_down_and_the_decoder_up_does_not_lower_the_loss(digits, kind, settings):
    _, data = digits
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, latent_dim=8, hidden=(64,), **settings), data.x.shape[1:],
                        data.modality, "bce")
    x = torch.as_tensor(data.x[:512])
    optimizers = model.make_optimizers(TrainConfig(lr=3e-3))
    model.train()
    for step in range(150):
        model.training_step(x[(step * 64) % 512:][:64], optimizers, StepSettings())
    before = penalised_loss(model, x)
    rescale_code_and_decoder(model)
    after = penalised_loss(model, x)
    assert after >= before, (before, after)


def train_digits(digits, kind: str, epochs: int, **model_settings):
    data_cfg, data = digits
    model_cfg = ModelConfig(kind=kind, latent_dim=10, hidden=(128,), **model_settings)
    train_cfg = TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, seed=0, device="cpu")
    prepared = prepare_training(data_cfg, model_cfg, train_cfg, data=data)
    return prepared


def test_sparse_code_has_more_near_zero_units_than_the_plain_ae(digits):
    _, data = digits
    shares = {}
    for kind in ("ae", "sparse"):
        prepared = train_digits(digits, kind, 15, sparsity="l1", sparsity_weight=0.3)
        assert train_to_end(prepared.trainer).ok
        codes = encode_all(prepared.model.eval(), data.x[prepared.val_idx]).codes
        shares[kind] = near_zero_share(codes)
    assert shares["sparse"] > 2 * shares["ae"], shares


def test_contractive_code_is_less_sensitive_than_the_ae_at_comparable_reconstruction(digits):
    """The ae is stopped at the first epoch whose held-out error is no better than the contractive
    model's final error, so the contractive model is not compared with a sharper reconstruction."""
    _, data = digits
    prepared = train_digits(digits, "contractive", 15, contractive_weight=0.3)
    assert train_to_end(prepared.trainer).ok
    held_out = data.x[prepared.val_idx]
    contractive_error = float(encode_all(prepared.model.eval(), held_out).errors.mean())
    contractive_ratio = relative_jacobian(prepared.model, torch.as_tensor(held_out))

    ae = train_digits(digits, "ae", 15)
    ae_ratio = None
    for event in ae.trainer.run():
        if isinstance(event, EpochResult):
            ae.model.eval()
            if float(encode_all(ae.model, held_out).errors.mean()) <= contractive_error:
                ae_ratio = relative_jacobian(ae.model, torch.as_tensor(held_out))
                break
            ae.model.train()
    assert ae_ratio is not None, "the ae never reconstructed as well as the contractive model"
    assert contractive_ratio < 0.9 * ae_ratio, (contractive_ratio, ae_ratio)
