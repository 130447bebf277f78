"""A folder of PNG/JPEG images (Pillow), optionally one sub-folder per class.

Rules:
- Labels: when any image sits in a sub-folder, the first-level sub-folder names are the classes
  (folder/cat/1.png -> "cat", deeper folders belong to their first-level class) and files directly
  in the folder are skipped; otherwise the folder's own images are loaded without labels.
- Skipping: files that are not PNG/JPEG, empty, truncated, corrupt, or over Pillow's
  decompression-bomb limit (Image.MAX_IMAGE_PIXELS, left at its default) are skipped and listed in
  `Dataset.skipped` as "relative/path: reason". Hidden files and folders (".name") are ignored.
  A DataError is raised when nothing loadable remains.
- Colour: modes 1/L/I;16 are grayscale, as is an RGB image whose three channels are equal;
  transparency (RGBA, LA, palette with transparency) is composited on white; a palette becomes RGB;
  16-bit values are divided by 65535, 8-bit by 255. All grayscale -> C = 1, otherwise C = 3
  (grayscale images are repeated into three channels).
- Size: resized (bilinear, aspect ratio not kept) to DataConfig.image_size x image_size when it is
  > 0; otherwise every image must have the same size, and a DataError names two that differ.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from app.core.data.arrays import ensure_memory
from app.core.data.dataset import Dataset
from app.core.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return rgb * a + (1.0 - a)


def decode_image(path: Path, image_size: int) -> tuple[np.ndarray, bool]:
    """One image file -> (float32 (H, W, C) in [0, 1] with C = 1 or 3, is_grayscale). Pillow errors escape."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path, formats=["PNG", "JPEG"]) as im:
            im.load()
            mode = im.mode
            if mode == "1":
                im = im.convert("L")
                mode = "L"
            if mode in _SIXTEEN_BIT_MODES:
                a = np.clip(np.asarray(im, dtype=np.float32) / np.float32(65535), 0.0, 1.0)[..., None]
            elif mode == "F":
                a = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)[..., None]
            elif mode == "L":
                a = np.asarray(im, dtype=np.float32)[..., None] / np.float32(255)
            elif mode in ("LA", "La"):
                la = np.asarray(im.convert("LA"), dtype=np.float32) / np.float32(255)
                a = _composite_on_white(la[..., :1], la[..., 1])
            elif mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info):
                rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / np.float32(255)
                a = _composite_on_white(rgba[..., :3], rgba[..., 3])
            else:                                   # RGB, P, CMYK, YCbCr, ...
                a = np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255)
    if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"unexpected decoded shape {a.shape}")
    gray = mode in _GRAY_MODES
    if not gray and a.shape[2] == 3 and np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]):
        a, gray = a[..., :1], True
    if image_size > 0 and a.shape[:2] != (image_size, image_size):
        a = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(a[..., c])).resize(
            (image_size, image_size), Image.Resampling.BILINEAR), dtype=np.float32)
            for c in range(a.shape[2])], axis=-1)
        a = np.clip(a, 0.0, 1.0)
    return np.ascontiguousarray(a, dtype=np.float32), gray


def _files(root: Path) -> list[Path]:
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(folder) / f for f in sorted(files) if not f.startswith("."))
    return out


def load_image_folder(root: Path, image_size: int) -> Dataset:
    files = _files(root)
    if not files:
        raise DataError(f"{root.name}: the folder is empty; put PNG/JPEG images in it (or class sub-folders)")
    rel = {p: p.relative_to(root) for p in files}
    labelled = any(len(rel[p].parts) > 1 and p.suffix.lower() in IMAGE_EXTENSIONS for p in files)

    skipped: list[str] = []
    images: list[np.ndarray] = []
    grays: list[bool] = []
    classes: list[str] = []
    first_size: tuple[Path, tuple[int, int]] | None = None
    stored = 0
    for path in files:
        r = rel[path].as_posix()
        if labelled and len(rel[path].parts) == 1:
            skipped.append(f"{r}: not in a class sub-folder (labels come from sub-folder names)")
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(f"{r}: not a PNG/JPEG file")
            continue
        try:
            if path.stat().st_size == 0:
                skipped.append(f"{r}: empty file (0 bytes)")
                continue
            a, gray = decode_image(path, image_size)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            skipped.append(f"{r}: too many pixels, refused by Pillow's decompression-bomb guard ({_short(exc)})")
            continue
        except MemoryError:
            skipped.append(f"{r}: too large to decode in the free memory")
            continue
        except Exception as exc:  # noqa: BLE001 - any decoder failure on an untrusted file means "skip it"
            skipped.append(f"{r}: not a readable PNG/JPEG image ({_short(exc)})")
            continue
        size = (a.shape[1], a.shape[0])
        if first_size is None:
            first_size = (path, size)
        elif image_size <= 0 and size != first_size[1]:
            raise DataError(f"{root.name}: images differ in size ({rel[first_size[0]].as_posix()} is "
                            f"{first_size[1][0]}x{first_size[1][1]}, {r} is {size[0]}x{size[1]}); "
                            f"set an image size to resize them all")
        stored += a.size * 4
        ensure_memory(stored * 2, f"{root.name} (images loaded so far)")
        images.append(a)
        grays.append(gray)
        if labelled:
            classes.append(rel[path].parts[0])

    if not images:
        shown = "; ".join(skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
        raise DataError(f"{root.name}: no loadable PNG/JPEG images ({len(skipped)} files skipped: {shown})")
    channels = 1 if all(grays) else 3
    x = np.empty((len(images), channels) + images[0].shape[:2], dtype=np.float32)
    for i, a in enumerate(images):
        x[i] = a.transpose(2, 0, 1)                                # (C, H, W); 1 channel broadcasts to 3
    y = label_names = None
    if labelled:
        label_names = sorted(set(classes))
        index = {c: i for i, c in enumerate(label_names)}
        y = np.array([index[c] for c in classes], dtype=np.int64)
    return Dataset(name=root.name, spec=str(root), x=x, modality="image", y=y, label_names=label_names,
                   skipped=skipped)
