"""Named settings that reach a known result, and recommended settings per (built-in data, kind).

    data_cfg, model_cfg, train_cfg = apply_preset("disentangle", data_cfg, model_cfg, train_cfg,
                                                  explicit={"TrainConfig": {"seed"}})
    differences(data_cfg, model_cfg, train_cfg)   # what the recommendation for this pair would change

A preset is partial: it sets the fields it names and leaves the rest. Settings the user gave
explicitly (CLI flags) win over the preset. The figures behind each setting are measured by
bench/analysis.py (disentangle) and bench/presets.py (recommended), and quoted in the README.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from app.core.config import DataConfig, ModelConfig, TrainConfig, validate
from app.core.errors import ConfigError

SECTIONS = {"DataConfig": DataConfig, "ModelConfig": ModelConfig, "TrainConfig": TrainConfig}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    data: dict = field(default_factory=dict)     # DataConfig field -> value
    model: dict = field(default_factory=dict)    # ModelConfig field -> value
    train: dict = field(default_factory=dict)    # TrainConfig field -> value

    def sections(self) -> dict[str, dict]:
        return {"DataConfig": self.data, "ModelConfig": self.model, "TrainConfig": self.train}


# Disentanglement on `shapes` (issue 11): an MLP beta-VAE (Higgins et al. 2017) with beta 16,
# batch 64, 100 epochs. bench/analysis.py measured MIG 0.257 ± 0.005 over three seeds (beta-TCVAE
# with beta 6: 0.134 ± 0.103, one seed at 0.27, the others far lower), so this is the preset.
DISENTANGLE = Preset(
    name="disentangle",
    description="shapes, MLP beta-VAE (beta 16), latent 10, hidden 400, batch 64, 100 epochs, lr 1e-3: "
                "MIG 0.26 over 3 seeds in bench/analysis.py",
    data={"spec": "shapes"},
    model={"kind": "vae", "latent_dim": 10, "hidden": (400,), "beta": 16.0},
    train={"epochs": 100, "batch_size": 64, "lr": 1e-3},
)

# Anomaly detection on tables (issue 11): PyOD's AutoEncoder defaults (hidden 64-32, dropout 0.2,
# batch 32), the practitioner's start; the same values as app/core/analysis/anomaly.py's
# TABULAR_ANOMALY_MODEL / _TRAIN, which `export --scores` recommends for tables trained otherwise.
TABULAR_ANOMALY = Preset(
    name="tabular-anomaly",
    description="tables: ae, hidden 64,32, dropout 0.2, batch 32 (PyOD's AutoEncoder defaults) for anomaly scores",
    model={"kind": "ae", "hidden": (64, 32), "dropout": 0.2},
    train={"batch_size": 32},
)

PRESETS: dict[str, Preset] = {DISENTANGLE.name: DISENTANGLE, TABULAR_ANOMALY.name: TABULAR_ANOMALY}

# Settings that give a visibly working model in about a minute on a 2-core CPU (issue 15, item 4),
# per (built-in data set, model kind); bench/presets.py trains every pair with them.
_MLP_IMAGE = {"latent_dim": 8, "hidden": (256,)}
_FAST = {"epochs": 40, "lr": 3e-3, "batch_size": 64}
RECOMMENDED: dict[tuple[str, str], Preset] = {}


def _recommend(spec: str, kinds: tuple[str, ...], model: dict, train: dict, why: str) -> None:
    for kind in kinds:
        RECOMMENDED[(spec, kind)] = Preset(name=f"{spec}/{kind}", description=why, model=dict(model),
                                           train=dict(train))


_recommend("digits", ("ae", "sparse", "denoising", "contractive", "vae", "beta-tcvae", "aae"), _MLP_IMAGE, _FAST,
           "digits: 40 epochs at lr 3e-3, latent 8, hidden 256 (the README's screenshots)")
_recommend("digits", ("conv-ae", "conv-vae"), {"latent_dim": 8, "channels": (32, 64)}, _FAST,
           "digits: 40 epochs at lr 3e-3, latent 8")
_recommend("shapes", ("ae", "sparse", "denoising", "contractive", "vae", "beta-tcvae", "aae"),
           {"latent_dim": 10, "hidden": (400,)}, {"epochs": 15, "lr": 1e-3, "batch_size": 64},
           "shapes: 15 epochs at batch 64, latent 10, hidden 400 (use --preset disentangle for disentanglement)")
_recommend("shapes", ("conv-ae", "conv-vae"), {"latent_dim": 10, "channels": (32, 64)},
           {"epochs": 10, "lr": 1e-3, "batch_size": 64}, "shapes: 10 epochs at batch 64, latent 10")
_recommend("sines", ("rnn-ae",), {"latent_dim": 8, "rnn_hidden": 64}, {"epochs": 40, "lr": 3e-3, "batch_size": 64},
           "sines: 40 epochs at lr 3e-3 (10 epochs learn nothing; 40 separate the four classes)")
_recommend("sines", ("ae", "sparse", "denoising", "contractive", "vae", "beta-tcvae", "aae"),
           {"latent_dim": 8, "hidden": (256,)}, _FAST, "sines: 40 epochs at lr 3e-3, latent 8, hidden 256")


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def _replace(cfg, values: dict, keep: set[str]):
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"preset sets unknown {type(cfg).__name__} fields: {', '.join(sorted(unknown))}")
    new = dataclasses.replace(cfg, **{k: v for k, v in values.items() if k not in keep})
    validate(new)
    return new


def apply_preset(preset: str | Preset, data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 explicit: dict[str, set[str]] | None = None) -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The three configs with the preset's fields set, except those named in `explicit`
    ({"TrainConfig": {"seed"}, ...}: what the user gave on purpose, which wins)."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    explicit = explicit or {}
    sections = preset.sections()
    return (_replace(data_cfg, sections["DataConfig"], explicit.get("DataConfig", set())),
            _replace(model_cfg, sections["ModelConfig"], explicit.get("ModelConfig", set())),
            _replace(train_cfg, sections["TrainConfig"], explicit.get("TrainConfig", set())))


def recommended(data_spec: str, kind: str) -> Preset | None:
    """The recommended setting for a built-in data set and a model kind, or None (files, or a
    pair without one)."""
    return RECOMMENDED.get((data_spec.strip().lower(), kind))


@dataclass(frozen=True)
class Difference:
    section: str          # "ModelConfig" | "TrainConfig" | "DataConfig"
    name: str
    current: object
    recommended: object

    def text(self) -> str:
        show = (lambda v: ",".join(map(str, v)) if isinstance(v, tuple) else f"{v:g}" if isinstance(v, float) else str(v))
        return f"{self.name} {show(self.current)} -> {show(self.recommended)}"


def differences(data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig) -> list[Difference]:
    """What the recommendation for (data, kind) would change in these settings; [] when there is
    none or they already match."""
    preset = recommended(data_cfg.spec, model_cfg.kind)
    if preset is None:
        return []
    current = {"DataConfig": data_cfg, "ModelConfig": model_cfg, "TrainConfig": train_cfg}
    return [Difference(section, name, getattr(current[section], name), value)
            for section, values in preset.sections().items() for name, value in values.items()
            if getattr(current[section], name) != value]


def summary(diffs: list[Difference]) -> str:
    return "; ".join(d.text() for d in diffs)
