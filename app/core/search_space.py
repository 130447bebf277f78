"""The search space: which training-form settings a hyperparameter search varies, and how.

A TOML file (or the window's Search dock) names a range or a list per setting:

    lr = { low = 5e-4, high = 5e-3, log = true }   # a range; log = true samples it log-uniformly
    beta = { low = 1, high = 16 }
    latent_dim = [4, 8, 16]                          # a list is a categorical choice
    model = ["vae", "conv-vae"]                      # `model` is the kind
    hidden = [[64], [128, 64]]                       # layer-size lists are choices too

Names are the fields of ModelConfig and TrainConfig (the training form's settings), so bounds and
choices are checked against the same metadata the form and the CLI use. For `grid`, a range is
cut into `steps` points (default 3; log-spaced when log = true); a grid of lists is their product.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.config import ModelConfig, TrainConfig, parse_int_tuple
from app.core.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, packaged as tomli
    import tomli as tomllib

ALIASES = {"model": "kind"}
NOT_SEARCHABLE = ("device", "seed")   # the machine and the seed are fixed per search, not tuned


def searchable_fields() -> dict[str, tuple[type, dataclasses.Field]]:
    """Setting name -> (config class, field), for every setting a space may name."""
    out = {}
    for cls in (ModelConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            if f.name not in NOT_SEARCHABLE:
                out[f.name] = (cls, f)
    return out


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False
    integer: bool = False
    steps: int = 3

    def grid(self) -> list:
        points = (np.geomspace(self.low, self.high, self.steps) if self.log
                  else np.linspace(self.low, self.high, self.steps))
        if self.integer:
            return sorted({int(round(p)) for p in points})
        return [float(f"{p:.6g}") for p in points]


@dataclass(frozen=True)
class Choice:
    values: tuple    # plain values; layer-size lists are kept as "64,32" strings (Optuna's choices are scalars)


@dataclass
class SearchSpace:
    params: dict[str, Range | Choice]
    source: str = ""

    def grid(self) -> dict[str, list]:
        return {name: (p.grid() if isinstance(p, Range) else list(p.values)) for name, p in self.params.items()}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values()) if self.params else 1

    def grid_points(self) -> list[dict]:
        grid = self.grid()
        names = list(grid)
        return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]

    def describe(self) -> list[str]:
        lines = []
        for name, p in self.params.items():
            if isinstance(p, Range):
                lines.append(f"{name}: {p.low:g} .. {p.high:g}" + (" (log)" if p.log else "")
                             + (" whole numbers" if p.integer else ""))
            else:
                lines.append(f"{name}: one of {', '.join(map(str, p.values))}")
        return lines


def _check_value(name: str, f: dataclasses.Field, value: Any, where: str) -> Any:
    """One candidate value, converted to the field's type and checked against its metadata."""
    default = _default(f)
    meta = f.metadata
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = parse_int_tuple(value, name)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and v > 0 for v in value):
            raise ConfigError(f"{where}: {name} choices must be lists of positive whole numbers, e.g. [[64], [128, 64]]")
        return ",".join(str(v) for v in value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {name} takes true or false, not {value!r}")
        return value
    if isinstance(default, str):
        choices = meta.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            raise ConfigError(f"{where}: {name} = {value!r} is not one of {', '.join(map(str, choices or ()))}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {name} = {value!r} is not a number")
    if isinstance(default, int) and float(value) != int(value):
        raise ConfigError(f"{where}: {name} takes whole numbers, not {value}")
    if meta.get("min") is not None and value < meta["min"] or meta.get("max") is not None and value > meta["max"]:
        raise ConfigError(f"{where}: {name} = {value} is outside its allowed range {meta.get('min')} .. {meta.get('max')}")
    return int(value) if isinstance(default, int) else float(value)


def _parse_range(name: str, f: dataclasses.Field, table: dict, where: str) -> Range:
    unknown = set(table) - {"low", "high", "log", "steps"}
    if unknown or "low" not in table or "high" not in table:
        raise ConfigError(f"{where}: {name} = {{...}} needs low and high (and optionally log, steps); "
                          f"got {', '.join(sorted(table))}")
    default = _default(f)
    if not isinstance(default, (int, float)) or isinstance(default, bool):
        raise ConfigError(f"{where}: {name} is not numeric; give a list of choices instead")
    low, high = (_check_value(name, f, table[k], where) for k in ("low", "high"))
    log = table.get("log", False)
    steps = table.get("steps", 3)
    if not isinstance(log, bool) or not isinstance(steps, int) or isinstance(steps, bool) or not 2 <= steps <= 100:
        raise ConfigError(f"{where}: {name}: log must be true/false and steps a whole number from 2 to 100")
    if not low < high:
        raise ConfigError(f"{where}: {name}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: {name}: a log range needs low > 0")
    return Range(low=low, high=high, log=log, integer=isinstance(default, int), steps=steps)


def parse_space(text: str, where: str = "space") -> SearchSpace:
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc}); see the README's Search section for an example") from None
    fields = searchable_fields()
    params: dict[str, Range | Choice] = {}
    for key, spec in table.items():
        name = ALIASES.get(key, key)
        if name not in fields:
            hint = " (fixed per search: pass it as a flag)" if name in NOT_SEARCHABLE else ""
            raise ConfigError(f"{where}: {key!r} is not a setting of the training form{hint}; settings are "
                              f"{', '.join(sorted(fields))}")
        f = fields[name][1]
        if isinstance(spec, dict):
            params[name] = _parse_range(name, f, spec, where)
        elif isinstance(spec, list) and spec:
            values = tuple(dict.fromkeys(_check_value(name, f, v, where) for v in spec))
            params[name] = Choice(values)
        else:
            raise ConfigError(f"{where}: {key} must be a range {{ low = .., high = .. }} or a non-empty list of choices")
    if not params:
        raise ConfigError(f"{where}: names no setting to search; e.g. lr = {{ low = 5e-4, high = 5e-3, log = true }}")
    return SearchSpace(params=params, source=text)


def load_space(path: str | Path) -> SearchSpace:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the search space ({exc})") from None
    return parse_space(text, str(path))


def suggest(trial, space: SearchSpace, method: str) -> dict[str, Any]:
    """Ask an Optuna trial for one value per setting. Grid trials ask categorically from the grid."""
    out = {}
    for name, p in space.params.items():
        if method == "grid":
            out[name] = trial.suggest_categorical(name, p.grid() if isinstance(p, Range) else list(p.values))
        elif isinstance(p, Range) and p.integer:
            out[name] = trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
        elif isinstance(p, Range):
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
        else:
            out[name] = trial.suggest_categorical(name, list(p.values))
    return out


def apply_settings(model_cfg: ModelConfig, train_cfg: TrainConfig, settings: dict[str, Any]
                   ) -> tuple[ModelConfig, TrainConfig]:
    """The fixed configs with one trial's settings filled in (layer lists back from their strings)."""
    fields = searchable_fields()
    changes: dict[type, dict] = {ModelConfig: {}, TrainConfig: {}}
    for name, value in settings.items():
        cls, f = fields[name]
        if isinstance(_default(f), tuple) and isinstance(value, str):
            value = parse_int_tuple(value, name)
        changes[cls][name] = value
    return (dataclasses.replace(model_cfg, **changes[ModelConfig]),
            dataclasses.replace(train_cfg, **changes[TrainConfig]))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def space_line(name: str, current: Any = None) -> str:
    """A starting TOML line for one setting, from the field's metadata (the window's "Add setting"):
    a log range a decade either side of the current value for positive floats, a range around it
    for whole numbers, every choice for a choice field, the current and a halved layer list."""
    cls, f = searchable_fields()[name]
    meta = f.metadata
    value = _default(f) if current is None else current
    key = "model" if name == "kind" else name
    lo_bound, hi_bound = meta.get("min"), meta.get("max")
    if meta.get("choices"):
        return f"{key} = {_toml_value(list(meta['choices']))}"
    if isinstance(value, bool):
        return f"{key} = [true, false]"
    if isinstance(value, tuple):
        half = tuple(max(1, v // 2) for v in value)
        return f"{key} = {_toml_value([list(value), list(half)])}"
    if isinstance(value, int):
        low, high = max(1, value // 2), max(2, value * 2)
        low = max(low, int(lo_bound or 0))
        high = min(high, int(hi_bound)) if hi_bound is not None else high
        return f"{key} = {{ low = {low}, high = {max(high, low + 1)} }}"
    if value > 0:
        low, high = value / 10, value * 10
        low = max(low, lo_bound) if lo_bound else low
        high = min(high, hi_bound) if hi_bound is not None else high
        return f"{key} = {{ low = {low:g}, high = {high:g}, log = true }}"
    high = 1.0 if hi_bound is None else min(1.0, hi_bound)
    return f"{key} = {{ low = 0.0, high = {high:g} }}"
