"""Built-in data sets that need no file: `digits` (bundled with scikit-learn) and generated `sines`.

`shapes` lives in shapes.py. Generated sets are deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

from app.core.data.arrays import ensure_memory
from app.core.data.dataset import Dataset

# sines: a sample's class picks its frequency (cycles per sequence); each channel gets its own
# amplitude and phase from small grids, plus a little Gaussian noise.
SINE_LENGTH = 64
SINE_CHANNELS = 3
SINE_DEFAULT_N = 2000
SINE_FREQUENCIES = np.array([1.0, 2.0, 3.0, 5.0])
SINE_AMPLITUDES = np.array([0.5, 0.75, 1.0])
SINE_PHASES = np.linspace(0.0, 2.0 * np.pi, 8, endpoint=False)
SINE_NOISE = 0.05


def _digits_table() -> np.ndarray:
    """(1797, 65) rows of 64 pixel values and the label, from the file scikit-learn ships.

    Read directly: importing scikit-learn costs ~0.9 s, half of the window's start-up budget. If
    the file is not where scikit-learn keeps it, its own loader is the fallback."""
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
        try:
            with gzip.open(path, "rt") as handle:
                table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
            if table.shape == (1797, 65):
                return table
        except (OSError, ValueError):
            pass
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return np.concatenate([bunch.data, bunch.target[:, None]], axis=1).astype(np.float32)


def load_digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, UCI ML hand-written digits), no download."""
    table = _digits_table()
    x = (table[:, :64] / np.float32(16)).reshape(-1, 1, 8, 8)                  # (N, 1, 8, 8), values 0..16
    return Dataset(name="digits", spec="digits", x=np.ascontiguousarray(x), modality="image",
                   y=table[:, 64].astype(np.int64), label_names=[str(i) for i in range(10)])


def load_sines(n_samples: int, seed: int) -> Dataset:
    """(N, 64, 3) float32 multichannel sinusoids, labelled by frequency class (4 classes)."""
    n = n_samples or SINE_DEFAULT_N
    ensure_memory(n * SINE_LENGTH * SINE_CHANNELS * 8 * 3, f"sines ({n:,} sequences)")
    rng = np.random.default_rng(seed)
    label = rng.integers(0, len(SINE_FREQUENCIES), n)                              # (N,)
    amp = SINE_AMPLITUDES[rng.integers(0, len(SINE_AMPLITUDES), (n, SINE_CHANNELS))]   # (N, C)
    phase = SINE_PHASES[rng.integers(0, len(SINE_PHASES), (n, SINE_CHANNELS))]        # (N, C)
    t = np.arange(SINE_LENGTH) / SINE_LENGTH                                        # (T,)
    freq = SINE_FREQUENCIES[label]
    angle = 2.0 * np.pi * freq[:, None, None] * t[None, :, None] + phase[:, None, :]   # (N, T, C)
    x = amp[:, None, :] * np.sin(angle) + SINE_NOISE * rng.standard_normal((n, SINE_LENGTH, SINE_CHANNELS))
    factors = np.concatenate([freq[:, None], amp, phase], axis=1).astype(np.float32)
    factor_names = (["frequency"] + [f"amplitude{c}" for c in range(SINE_CHANNELS)]
                    + [f"phase{c}" for c in range(SINE_CHANNELS)])
    return Dataset(name="sines", spec="sines", x=x.astype(np.float32), modality="sequence",
                   y=label.astype(np.int64), label_names=[f"{f:g} cycles" for f in SINE_FREQUENCIES],
                   factors=factors, factor_names=factor_names)
