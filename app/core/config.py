"""One config dataclass per concern: data, model, training.

The same dataclasses drive the CLI flags (app/cli.py), the training form in the window
(app/gui) and the checkpoint metadata (model.json), so the three never drift. Each field's
`metadata` carries what a flag or a form widget needs: help text, choices, bounds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import ConfigError


def option(default: Any, help: str, *, choices: tuple | None = None, minimum: float | None = None,
           maximum: float | None = None, advanced: bool = False, kinds: tuple | None = None,
           shown_if: tuple[str, tuple] | None = None) -> Any:
    """A dataclass field with the metadata the CLI and the form read.

    kinds: the model kinds the setting applies to (None: every kind); the training form hides it
    for other kinds and `train --help` names them. shown_if: (other field, its values) under which
    the setting matters at all, e.g. the KL target only for the KL sparsity penalty."""
    meta = {"help": help, "choices": choices, "min": minimum, "max": maximum, "advanced": advanced,
            "kinds": kinds, "shown_if": shown_if}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


MODEL_KINDS = ("ae", "sparse", "denoising", "contractive", "vae", "beta-tcvae", "conv-ae", "conv-vae", "rnn-ae",
               "aae")
VARIATIONAL_KINDS = ("vae", "beta-tcvae", "conv-vae")

MLP_KINDS = ("ae", "sparse", "denoising", "contractive", "vae", "beta-tcvae", "aae")
CONV_KINDS = ("conv-ae", "conv-vae")


# One line per kind for `main.py models` and the window's form; here, not in app.core.models, so
# the form can show it before torch has loaded.
MODEL_KINDS_HELP: dict[str, str] = {
    "ae": "MLP autoencoder on flattened input; more hidden sizes make a deep AE (Hinton & Salakhutdinov 2006)",
    "sparse": "tied-weight ae with a sigmoid code and an L1 or KL(rho || rho_hat) sparsity penalty on it "
              "(Ng's sparse AE notes, 2011)",
    "denoising": "ae that reconstructs clean inputs from Gaussian- or masking-corrupted ones (Vincent et al. 2008)",
    "contractive": "tied-weight ae with a sigmoid code and a penalty on the encoder Jacobian's Frobenius "
                   "norm (Rifai et al. 2011)",
    "vae": "Gaussian-encoder variational AE (Kingma & Welling 2014), beta weight, KL annealing",
    "beta-tcvae": "MLP VAE whose KL is split into mutual information, total correlation and dimension-wise KL, "
                  "beta weighting the total correlation (Chen et al. 2018, minibatch-weighted sampling)",
    "conv-ae": "convolutional AE for images: stride-2 conv stages, transposed-conv decoder",
    "conv-vae": "convolutional VAE for images (Kingma & Welling 2014), beta weight, KL annealing",
    "rnn-ae": "GRU/LSTM sequence AE: last hidden state -> code, decoder fed the code at every step "
              "(Srivastava et al. 2015)",
    "aae": "adversarial AE: a discriminator matches the codes to N(0, I) (Makhzani et al. 2016)",
}


@dataclass
class DataConfig:
    spec: str = option("digits", "Built-in name (digits, shapes, sines) or a path: IDX folder, .npz, .npy, .csv, image folder")
    val_fraction: float = option(0.2, "Fraction of samples held out for validation", minimum=0.0, maximum=0.9)
    split_seed: int = option(0, "Seed of the train/validation split", minimum=0)
    data_seed: int = option(0, "Seed of generated data (shapes, sines)", minimum=0, advanced=True)
    image_size: int = option(0, "Resize images to this side length (0 = keep; shapes: 32)", minimum=0, maximum=512,
                             advanced=True)
    n_samples: int = option(0, "Samples to generate for shapes/sines, or to keep from a file (0 = default/all)",
                            minimum=0, advanced=True)
    label_column: str = option("", "CSV column holding labels (empty = none)", advanced=True)
    limit: int = option(0, "Use at most this many samples (0 = all)", minimum=0, advanced=True)
    normal_classes: str = option("", "Train on these classes only, e.g. 0-8 or 0,1,2 (validation keeps every class, "
                                 "for anomaly detection; empty = all)", advanced=True)
    image_shape: str = option("", "Read flat (N, D) rows in [0, 1] as images: HxW or CxHxW, e.g. 28x28, 3x32x32 "
                              "(empty = a table)", advanced=True)
    memory_map: str = option("auto", "Read .npy and raw IDX files memory-mapped and stream batches from disk: auto "
                             "(when the data would fill a quarter of free memory), on, off", choices=("auto", "on", "off"),
                             advanced=True)


@dataclass
class ModelConfig:
    kind: str = option("vae", "Autoencoder kind", choices=MODEL_KINDS)
    latent_dim: int = option(10, "Size of the latent code", minimum=1, maximum=4096)
    hidden: tuple = option((400,), "Hidden layer sizes of the MLP encoder (decoder mirrors it)",
                   kinds=MLP_KINDS)
    loss: str = option("auto", "Reconstruction loss: bce for [0,1] images, mse otherwise", choices=("auto", "bce", "mse"))
    activation: str = option("relu", "Hidden activation", choices=("relu", "elu", "tanh", "sigmoid", "leaky_relu"),
                             advanced=True, kinds=MLP_KINDS + CONV_KINDS)
    dropout: float = option(0.0, "Dropout probability in hidden layers", minimum=0.0, maximum=0.9, advanced=True)
    beta: float = option(1.0, "Weight of the KL term (VAE kinds; beta-VAE when > 1); of the total correlation "
                         "for beta-tcvae", minimum=0.0, maximum=1000.0, kinds=VARIATIONAL_KINDS)
    mi_weight: float = option(1.0, "beta-tcvae: weight alpha of the index-code mutual information",
                              minimum=0.0, maximum=1000.0, advanced=True, kinds=("beta-tcvae",))
    dim_kl_weight: float = option(1.0, "beta-tcvae: weight gamma of the dimension-wise KL", minimum=0.0,
                                  maximum=1000.0, advanced=True, kinds=("beta-tcvae",))
    noise: str = option("gaussian", "Corruption of the denoising AE", choices=("gaussian", "masking"),
                       kinds=("denoising",))
    noise_level: float = option(0.3, "Std of Gaussian noise, or fraction of inputs masked", minimum=0.0, maximum=1.0,
                               kinds=("denoising",))
    sparsity: str = option("l1", "Sparsity penalty on the code", choices=("l1", "kl"), kinds=("sparse",))
    sparsity_weight: float = option(1e-3, "Weight of the sparsity penalty", minimum=0.0, maximum=100.0,
                                    kinds=("sparse",))
    sparsity_target: float = option(0.05, "Target mean activation rho (KL sparsity)", minimum=1e-4, maximum=0.9999,
                                    kinds=("sparse",), shown_if=("sparsity", ("kl",)))
    contractive_weight: float = option(1e-3, "Weight of the encoder Jacobian penalty", minimum=0.0, maximum=100.0,
                                       kinds=("contractive",))
    channels: tuple = option((32, 64), "Channels of the convolutional encoder stages", advanced=True,
                            kinds=CONV_KINDS)
    rnn_cell: str = option("gru", "Recurrent cell of rnn-ae", choices=("gru", "lstm"), advanced=True,
                          kinds=("rnn-ae",))
    rnn_hidden: int = option(64, "Hidden size of the recurrent encoder/decoder", minimum=1, maximum=4096,
                             advanced=True, kinds=("rnn-ae",))
    adversarial_weight: float = option(1.0, "Weight of the AAE's generator loss on the code", minimum=0.0,
                                       maximum=100.0, advanced=True, kinds=("aae",))


@dataclass
class TrainConfig:
    epochs: int = option(10, "Passes over the training data", minimum=1, maximum=100000)
    batch_size: int = option(128, "Samples per step", minimum=1, maximum=1 << 20)
    lr: float = option(1e-3, "Learning rate", minimum=1e-8, maximum=10.0)
    optimizer: str = option("adam", "Optimiser", choices=("adam", "adamw", "sgd"))
    weight_decay: float = option(0.0, "L2 weight decay", minimum=0.0, maximum=1.0, advanced=True)
    l1_weight: float = option(0.0, "L1 penalty on all weights", minimum=0.0, maximum=1.0, advanced=True)
    grad_clip: float = option(0.0, "Clip gradient norm to this value (0 = off)", minimum=0.0, advanced=True)
    patience: int = option(0, "Early stopping: epochs without validation improvement (0 = off)", minimum=0,
                           advanced=True)
    kl_anneal: str = option("none", "KL weight schedule (VAE kinds)", choices=("none", "linear", "cyclical"),
                            advanced=True, kinds=VARIATIONAL_KINDS)
    kl_warmup_epochs: int = option(5, "Epochs of KL warm-up (length of one cycle when cyclical)", minimum=1,
                                   advanced=True, kinds=VARIATIONAL_KINDS,
                                   shown_if=("kl_anneal", ("linear", "cyclical")))
    seed: int = option(0, "Seed of weights, shuffling and noise", minimum=0)
    device: str = option("auto", "Device: auto picks CUDA, then MPS, then CPU", choices=("auto", "cpu", "cuda", "mps"))
    nan_policy: str = option("stop", "On a NaN/Inf loss: stop, or skip the step and halve the learning rate",
                             choices=("stop", "skip"), advanced=True)


def field_kinds(cls: type) -> dict[str, tuple]:
    """{setting: the model kinds it applies to} for the kind-specific settings of a config class,
    read from each field's `kinds` metadata (the one source of truth)."""
    return {f.name: f.metadata["kinds"] for f in dataclasses.fields(cls) if f.metadata.get("kinds")}


def applies(cfg_field: dataclasses.Field, kind: str, values: dict | None = None) -> bool:
    """Whether a setting matters for this model kind (and, given the form's other values, at all)."""
    kinds = cfg_field.metadata.get("kinds")
    if kinds is not None and kind not in kinds:
        return False
    shown_if = cfg_field.metadata.get("shown_if")
    return shown_if is None or values is None or values.get(shown_if[0]) in shown_if[1]


def validate(cfg: Any) -> None:
    """Check every field against its choices and bounds; raise ConfigError naming the field."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        meta = f.metadata
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{f.name} = {value!r} is not one of {', '.join(map(str, choices))}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(f"{f.name} = {value} is not a finite number")
            if meta.get("min") is not None and value < meta["min"]:
                raise ConfigError(f"{f.name} = {value} is below its minimum {meta['min']}")
            if meta.get("max") is not None and value > meta["max"]:
                raise ConfigError(f"{f.name} = {value} is above its maximum {meta['max']}")
        if isinstance(value, tuple):
            if any((not isinstance(v, int)) or isinstance(v, bool) or v < 1 or v > 65536 for v in value):
                raise ConfigError(f"{f.name} = {value!r} must be whole numbers from 1 to 65536, e.g. 400,200")


MODEL_FIELD_KINDS = field_kinds(ModelConfig)
TRAIN_FIELD_KINDS = field_kinds(TrainConfig)


def to_dict(cfg: Any) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def from_dict(cls: type, data: dict, *, strict: bool = True) -> Any:
    """Build a config from a JSON dict; unknown keys are an error when strict (a corrupt model.json)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown and strict:
        raise ConfigError(f"{cls.__name__} has unknown fields: {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, f in names.items():
        if name not in data:
            continue
        value = data[name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{cls.__name__}.{name} must be a list of numbers")
            value = tuple(value)
        elif isinstance(default, bool):
            value = bool(value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif type(default) is not type(value):
            raise ConfigError(f"{cls.__name__}.{name} = {value!r} should be a {type(default).__name__}")
        kwargs[name] = value
    cfg = cls(**kwargs)
    validate(cfg)
    return cfg


def parse_int_tuple(text: str, name: str) -> tuple:
    """'400,200' -> (400, 200), with a readable error."""
    text = text.strip()
    if not text:
        return ()
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ConfigError(f"{name} = {text!r}: expected whole numbers separated by commas, e.g. 400,200") from None
