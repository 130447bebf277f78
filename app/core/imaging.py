"""Turn model inputs/outputs into pictures: display arrays, tiled grids and PNG bytes (Pillow)."""

from __future__ import annotations

import io

import numpy as np


def to_display(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) in data space -> (N, H, W) grey or (N, H, W, 3) colour, clipped to [0, 1]."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {images.shape}")
    images = np.clip(images, 0.0, 1.0)
    if images.shape[1] == 1:
        return images[:, 0]
    return np.moveaxis(images[:, :3], 1, -1)


def tile(rows: np.ndarray, pad: int = 1, background: float = 1.0) -> np.ndarray:
    """(R, C, H, W[, 3]) display images -> one (R*(H+pad)+pad, C*(W+pad)+pad[, 3]) mosaic."""
    rows = np.asarray(rows, dtype=np.float32)
    r, c, h, w = rows.shape[:4]
    extra = rows.shape[4:]
    out = np.full((r * (h + pad) + pad, c * (w + pad) + pad, *extra), background, dtype=np.float32)
    for i in range(r):
        for j in range(c):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = rows[i, j]
    return out


def grid_png(images: np.ndarray, scale: int = 4, pad: int = 1) -> bytes:
    """(R, S, C, H, W) data-space images -> PNG bytes of the tiled grid, enlarged `scale` times."""
    r, s = images.shape[:2]
    shown = to_display(images.reshape(r * s, *images.shape[2:]))
    mosaic = tile(shown.reshape(r, s, *shown.shape[1:]), pad=pad)
    return array_png(mosaic, scale)


def array_png(mosaic: np.ndarray, scale: int = 1) -> bytes:
    from PIL import Image

    pixels = (np.clip(mosaic, 0, 1) * 255 + 0.5).astype(np.uint8)
    image = Image.fromarray(pixels)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def display_image(image: np.ndarray) -> np.ndarray:
    """One (C, H, W) data-space image -> (H, W) grey or (H, W, 3) colour in [0, 1], for a live view.

    Two-channel images get an empty third channel so they can still be shown as colour."""
    image = np.nan_to_num(np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0), nan=0.0)
    if image.ndim != 3:
        raise ValueError(f"expected one (C, H, W) image, got shape {image.shape}")
    if image.shape[0] == 1:
        return image[0]
    if image.shape[0] == 2:
        image = np.concatenate([image, np.zeros_like(image[:1])])
    return np.moveaxis(image[:3], 0, -1)


def grid_mosaic(images: np.ndarray, pad: int = 1, background: float = 1.0) -> np.ndarray:
    """(R, S, C, H, W) data-space images -> one display mosaic (see `tile`), any channel count."""
    images = np.asarray(images, dtype=np.float32)
    r, s = images.shape[:2]
    flat = images.reshape(r * s, *images.shape[2:])
    if flat.shape[1] == 2:
        flat = np.concatenate([flat, np.zeros_like(flat[:, :1])], axis=1)
    shown = np.nan_to_num(to_display(flat), nan=0.0)   # a diverged model's NaNs show as black, not garbage
    return tile(shown.reshape(r, s, *shown.shape[1:]), pad=pad, background=background)
