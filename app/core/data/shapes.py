"""`shapes`: procedural dSprites-like sprites with known generative factors.

Like dSprites (Matthey et al. 2017, https://github.com/deepmind/dsprites-dataset), each image is one
white sprite on black, and every factor is drawn uniformly at random from a small grid:

    shape     3 values   square, ellipse, heart (factor value = index 0, 1, 2)
    scale     6 values   0.5 .. 1.0
    rotation 40 values   0 .. 2*pi (radians, endpoint excluded)
    x, y     16 values   0 .. 1 (fraction of the free range; the sprite always stays inside the frame)

As in dSprites, a square looks the same every 90 degrees and an ellipse every 180; only the heart
shows its full rotation. Rendering is vectorised: every pixel centre is mapped back into the sprite's
own frame (inverse translation, rotation and scale) and tested with the shape's implicit inside
function, so 10,000 images of 32x32 take a fraction of a second. Pixels are binary {0, 1}.
"""

from __future__ import annotations

import numpy as np

from app.core.data.arrays import ensure_memory
from app.core.data.dataset import Dataset
from app.core.errors import DataError

SHAPE_NAMES = ["square", "ellipse", "heart"]
SCALES = np.linspace(0.5, 1.0, 6)
ROTATIONS = np.linspace(0.0, 2.0 * np.pi, 40, endpoint=False)
POSITIONS = np.linspace(0.0, 1.0, 16)
FACTOR_NAMES = ["shape", "scale", "rotation", "x", "y"]
DEFAULT_SIZE = 32
DEFAULT_N = 10_000
MIN_SIZE = 8

# Half-extent of a scale-1 sprite as a fraction of the image side, and the largest radius of any
# shape in its own unit frame (the square's corner, sqrt(2)), so no rotation ever leaves the frame.
_HALF_SIZE = 0.22
_MAX_RADIUS = float(np.sqrt(2.0))
_CHUNK = 2048


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Implicit inside test in the sprite's unit frame (v points up)."""
    if shape == 0:                                   # square [-1, 1]^2
        return np.maximum(np.abs(u), np.abs(v)) <= 1.0
    if shape == 1:                                   # ellipse, 2:1, long axis along u
        return u * u + 4.0 * v * v <= 1.0
    # heart: (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, fits x in [-1.14, 1.14], y in [-1, 1.25];
    # shrink and centre it so it sits in the same box as the others.
    x = u * 1.2
    y = v * 1.2 + 0.1
    r = x * x + y * y - 1.0
    return r * r * r - x * x * y * y * y <= 0.0


def render(shape: np.ndarray, scale: np.ndarray, rotation: np.ndarray, x: np.ndarray, y: np.ndarray,
           size: int) -> np.ndarray:
    """Rasterise sprites from factor values; returns float32 (N, 1, size, size) in {0, 1}."""
    n = len(shape)
    out = np.zeros((n, 1, size, size), dtype=np.float32)
    half = scale.astype(np.float32) * np.float32(_HALF_SIZE * size)              # (N,) pixels
    margin = np.float32(_HALF_SIZE * size * _MAX_RADIUS)                          # largest sprite radius
    free = np.float32(size) - 2.0 * margin
    cx = margin + x.astype(np.float32) * free                                     # (N,) pixels
    cy = margin + (1.0 - y.astype(np.float32)) * free                             # y = 1 is the top
    centres = np.arange(size, dtype=np.float32) + np.float32(0.5)
    cos = np.cos(rotation).astype(np.float32)
    sin = np.sin(rotation).astype(np.float32)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        dx = centres[None, None, :] - cx[sl, None, None]                          # (B, 1, S)
        dy = cy[sl, None, None] - centres[None, :, None]                          # (B, S, 1), up is +
        c, s, h = cos[sl, None, None], sin[sl, None, None], half[sl, None, None]
        u = (c * dx + s * dy) / h                                                  # inverse rotation
        v = (c * dy - s * dx) / h
        block = out[sl, 0]
        for k in range(len(SHAPE_NAMES)):
            which = np.nonzero(shape[sl] == k)[0]
            if len(which):
                block[which] = _inside(k, u[which], v[which])
    return out


def load_shapes(n_samples: int, image_size: int, seed: int) -> Dataset:
    n = n_samples or DEFAULT_N
    size = image_size or DEFAULT_SIZE
    if size < MIN_SIZE:
        raise DataError(f"shapes: image size {size} is too small to draw a sprite; use at least {MIN_SIZE}")
    ensure_memory(n * size * size * 4 * 3, f"shapes ({n:,} images of {size}x{size})")
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, k, n) for k in (len(SHAPE_NAMES), len(SCALES), len(ROTATIONS),
                                                     len(POSITIONS), len(POSITIONS))], axis=1)
    shape = idx[:, 0]
    factors = np.stack([shape.astype(np.float64), SCALES[idx[:, 1]], ROTATIONS[idx[:, 2]],
                        POSITIONS[idx[:, 3]], POSITIONS[idx[:, 4]]], axis=1).astype(np.float32)
    x = render(shape, factors[:, 1], factors[:, 2], factors[:, 3], factors[:, 4], size)
    return Dataset(name="shapes", spec="shapes", x=x, modality="image", y=shape.astype(np.int64),
                   label_names=list(SHAPE_NAMES), factors=factors, factor_names=list(FACTOR_NAMES))
