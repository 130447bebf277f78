"""The train/validation split every consumer shares, and what is fitted on its training part.

`training_split(data, cfg)` is the seeded split of DataConfig (val_fraction, split_seed) with,
when `cfg.normal_classes` is set, the other classes removed from the training part only: the
validation part keeps every class, so anomaly detection is scored on it (the usual one-class
protocol, e.g. Ruff et al. 2018). `fit_standardisation` refits a table's standardisation on the
training rows alone, so no statistic of the held-out rows leaks into the model's input scale.
"""

from __future__ import annotations

import re

import numpy as np

from app.core.data.dataset import Dataset
from app.core.errors import ConfigError, DataError

_RANGE = re.compile(r"^(-?\d+)\s*-\s*(-?\d+)$")


def parse_class_list(text: str | list, data: Dataset, what: str = "class") -> list[int]:
    """'9', '8,9', '0-8', 'heart' or a list (label values, label names, ranges of values) -> sorted
    label values present in the data."""
    if data.y is None:
        raise DataError(f"{data.name}: has no labels, so no classes can be chosen (give a labelled data set)")
    items = [p.strip() for p in text.split(",")] if isinstance(text, str) else [str(p).strip() for p in text]
    items = [p for p in items if p]
    if not items:
        raise ConfigError(f"no {what} given; e.g. 9, 8,9 or 0-8")
    names = list(data.label_names or [])
    present = set(int(v) for v in np.unique(data.y))
    shown = ", ".join(names) if names else ", ".join(map(str, sorted(present)))
    values: set[int] = set()
    for item in items:
        if item in names:
            values.add(names.index(item))
            continue
        match = _RANGE.match(item)
        if match:
            lo, hi = int(match.group(1)), int(match.group(2))
            if lo > hi:
                raise ConfigError(f"{what} range {item!r} runs backwards; write it low-high, e.g. 0-8")
            values.update(v for v in range(lo, hi + 1) if v in present)
            continue
        try:
            value = int(item)
        except ValueError:
            raise ConfigError(f"{what} {item!r} is neither a label name nor a label value of {data.name} "
                              f"(labels: {shown})") from None
        if value not in present:
            raise ConfigError(f"{what} {item!r} does not occur in {data.name} (labels: {shown})")
        values.add(value)
    if not values:
        raise ConfigError(f"{what} {text!r} names no label of {data.name} (labels: {shown})")
    return sorted(values)


def training_split(data: Dataset, val_fraction: float, split_seed: int, normal_classes: str = ""
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): the seeded split; with normal_classes, training keeps those only."""
    train_idx, val_idx = data.split(val_fraction, split_seed)
    if normal_classes and normal_classes.strip():
        keep = parse_class_list(normal_classes, data, "normal class")
        train_idx = train_idx[np.isin(data.y[train_idx], keep)]
        if len(train_idx) == 0:
            raise DataError(f"{data.name}: no training sample belongs to the normal classes {normal_classes!r}")
    return train_idx, val_idx


def split_for_config(data: Dataset, cfg) -> tuple[np.ndarray, np.ndarray]:
    """training_split with a DataConfig's fields."""
    return training_split(data, cfg.val_fraction, cfg.split_seed, getattr(cfg, "normal_classes", ""))


def fit_standardisation(data: Dataset, train_idx: np.ndarray) -> None:
    """Refit a standardised table's (x - mean) / std on the training rows only, in place (so every
    holder of `data` sees the same scale). Non-tables and empty splits are left as they are."""
    norm = data.normalisation or {}
    if norm.get("mean") is None or len(train_idx) == 0:
        return
    old_mean, old_std = np.asarray(norm["mean"], np.float64), np.asarray(norm["std"], np.float64)
    flat = data.x.reshape(len(data.x), -1).astype(np.float64)
    raw = flat * old_std + old_mean
    rows = raw[train_idx]
    mean, std = rows.mean(axis=0), rows.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    data.x = ((raw - mean) / std).astype(np.float32).reshape(data.x.shape)
    data.normalisation = {**norm, "mean": mean.tolist(), "std": std.tolist(), "fitted_on": "training split",
                          "fitted_rows": int(len(train_idx))}
