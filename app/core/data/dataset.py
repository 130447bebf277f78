"""The one shape every loader returns.

`x` is float32 and shaped by modality so models can pick their architecture:
- image:    (N, C, H, W), values in [0, 1]
- sequence: (N, T, C)
- tabular:  (N, D), standardised (the mean/std used are kept in `normalisation`)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.core.errors import DataError


@dataclass
class Dataset:
    name: str                      # short name shown to the user ("digits", "t10k-images", "my.csv")
    spec: str                      # what the user asked for; reloading with it gives the same data
    x: np.ndarray                  # float32, see module docstring
    modality: str                  # "image" | "sequence" | "tabular"
    y: np.ndarray | None = None    # int64 (N,) labels, or None
    label_names: list[str] | None = None   # label_names[y[i]] is the readable label
    factors: np.ndarray | None = None      # float32 (N, F) ground-truth factors, or None
    factor_names: list[str] | None = None
    normalisation: dict = field(default_factory=dict)  # e.g. {"mean": [...], "std": [...]} for tabular
    skipped: list[str] = field(default_factory=list)   # files the loader skipped, with the reason
    options: dict = field(default_factory=dict)        # loader options needed to reload (image_size, ...)
    hints: list[str] = field(default_factory=list)     # advice for the summary, e.g. "--image-shape 28x28 would ..."

    def __post_init__(self) -> None:
        if self.x.dtype != np.float32:
            raise DataError(f"{self.name}: internal error, x must be float32 (got {self.x.dtype})")
        n = len(self.x)
        if n == 0:
            raise DataError(f"{self.name}: the data set is empty; give it at least one sample")
        if self.y is not None and len(self.y) != n:
            raise DataError(f"{self.name}: {len(self.y)} labels for {n} samples; the counts must match")
        if self.factors is not None and len(self.factors) != n:
            raise DataError(f"{self.name}: {len(self.factors)} factor rows for {n} samples; the counts must match")

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def in_unit_range(self) -> bool:
        return bool(self.x.min() >= 0.0 and self.x.max() <= 1.0)

    @property
    def default_loss(self) -> str:
        """Images in [0,1] get a Bernoulli (BCE) decoder, everything else MSE."""
        return "bce" if self.modality == "image" and self.in_unit_range else "mse"

    def fits(self, model) -> bool:
        """Whether `model` (an Autoencoder, or a snapshot's model) takes these samples as they are."""
        return tuple(self.sample_shape) == tuple(model.input_shape)

    def check_fits(self, model) -> None:
        """The one "does this model fit this data" check: DataError naming both shapes and the fix."""
        if not self.fits(model):
            have, want = "x".join(map(str, self.sample_shape)), "x".join(map(str, model.input_shape))
            raise DataError(f"{self.name}: samples are {have} but the model expects {want}; use data like the "
                            f"model was trained on")

    def split(self, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Seeded shuffle of indices into (train_idx, val_idx); val may be empty when fraction is 0."""
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(f"validation fraction {val_fraction} must be in [0, 1)")
        order = np.random.default_rng(seed).permutation(self.n)
        n_val = int(round(self.n * val_fraction))
        if val_fraction > 0 and self.n >= 2:
            n_val = min(max(n_val, 1), self.n - 1)
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def subset(self, idx: np.ndarray) -> "Dataset":
        return Dataset(
            name=self.name, spec=self.spec, modality=self.modality,
            x=self.x.take_rows(idx) if hasattr(self.x, "take_rows") else self.x[idx],  # mmap: lazy
            y=None if self.y is None else self.y[idx], label_names=self.label_names,
            factors=None if self.factors is None else self.factors[idx], factor_names=self.factor_names,
            normalisation=self.normalisation, skipped=self.skipped, options=self.options, hints=self.hints,
        )

    def summary(self) -> str:
        parts = [f"{self.name}: {self.n:,} samples of shape {'x'.join(map(str, self.sample_shape))} ({self.modality})"]
        if self.y is not None:
            parts.append(f"{len(np.unique(self.y))} labels")
        if self.factors is not None:
            parts.append(f"factors: {', '.join(self.factor_names or [])}")
        if self.skipped:
            parts.append(f"{len(self.skipped)} files skipped")
        return "; ".join(parts + self.hints)
