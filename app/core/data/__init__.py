"""Loading data sets: built-ins and the user's own files, all returned as one `Dataset`.

    load_dataset(DataConfig(spec="digits"))            # or "shapes", "sines", or a path

What a path may be (see each module's docstring for its exact rules):
    folder with *-images-idx3-ubyte[.gz]  -> idx.py     (MNIST layout; all images files, A-Z)
    one *-images-idx3-ubyte[.gz] file     -> idx.py     (that file and its labels file)
    .npz / .npy                           -> arrays.py
    .csv / .tsv / .txt                    -> tabular.py
    any other folder                      -> images.py  (PNG/JPEG, class sub-folders = labels)

Every problem with the data raises DataError with a one-line message naming the file.
`Dataset.options` holds the DataConfig fields that shaped the result, so
`DataConfig(spec=ds.spec, **ds.options)` loads the same data again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.core.config import DataConfig
from app.core.data.arrays import parse_image_shape
from app.core.data.dataset import Dataset
from app.core.errors import DataError

__all__ = ["BUILTIN_DATASETS", "Dataset", "describe_spec_kinds", "load_dataset"]

BUILTIN_DATASETS: dict[str, str] = {
    "digits": "scikit-learn's 1,797 handwritten digits, 1x8x8 images in [0, 1], labels 0-9",
    "shapes": "generated dSprites-like sprites (square, ellipse, heart), 1x32x32, "
              "5 known factors; 10,000 by default",
    "sines": "generated 3-channel sine sequences of 64 steps, 4 frequency classes; 2,000 by default",
}

_SPEC_KINDS = [
    ("folder of IDX files", "MNIST layout (*-images-idx3-ubyte[.gz], optional *-labels-idx1-ubyte[.gz]); "
                            "every images file in it, alphabetically; or give one images file"),
    (".npz", "array x (N,D) / (N,T,C) / (N,C,H,W), optional y, label_names, factors, factor_names; never pickles"),
    (".npy", "one array, read like x of a .npz"),
    (".csv", "numeric columns (',' ';' tab '|'), header optional, label column by name; standardised "
             "(or rows as images with --image-shape 28x28)"),
    ("folder of images", "PNG/JPEG, grayscale or RGB; class sub-folders become labels; "
                         "unreadable files are skipped and listed"),
]


def describe_spec_kinds() -> list[str]:
    """One line per kind of path `load_dataset` accepts (for `main.py datasets`)."""
    width = max(len(k) for k, _ in _SPEC_KINDS)
    return [f"{kind:<{width}}  {text}" for kind, text in _SPEC_KINDS]


def load_dataset(cfg: DataConfig) -> Dataset:
    """The data set `cfg.spec` names, limited to `cfg.limit` samples; DataError on any bad input."""
    spec = (cfg.spec or "").strip()
    if not spec:
        raise DataError(f"no data set given; choose one of {', '.join(BUILTIN_DATASETS)} or give a path")
    options: dict = {}
    keep = 0
    try:
        if spec.lower() in BUILTIN_DATASETS:
            ds, options = _load_builtin(spec.lower(), cfg)
        else:
            ds, options = _load_path(spec, cfg)
        if spec.lower() not in ("shapes", "sines"):      # generated sets use n_samples as their size
            keep = cfg.n_samples
    except MemoryError:
        raise DataError(f"{Path(spec).name}: not enough memory to load it; use a smaller file or set a limit") from None
    except DataError as exc:
        message = str(exc)
        if not message.isprintable():                  # a file or column name with a newline in it
            raise DataError("".join(c if c.isprintable() else repr(c)[1:-1] for c in message)) from None
        raise
    except OSError as exc:
        raise DataError(f"{Path(spec).name}: cannot be read ({exc.strerror or exc})") from None

    _check_image_shape(ds, cfg)
    limits = [v for v in (keep, cfg.limit) if v and v > 0]
    if limits and min(limits) < ds.n:
        ds = ds.subset(np.arange(min(limits)))
    if cfg.limit:
        options["limit"] = cfg.limit
    ds.spec = cfg.spec
    ds.options = options
    return ds


def _check_image_shape(ds: Dataset, cfg: DataConfig) -> None:
    """--image-shape is for flat rows; on data that already is images it must agree with them."""
    shape = parse_image_shape(getattr(cfg, "image_shape", ""))
    if shape is not None and tuple(ds.sample_shape) != shape:
        raise DataError(f"{ds.name}: samples are {'x'.join(map(str, ds.sample_shape))} ({ds.modality}), so "
                        f"--image-shape {cfg.image_shape} does not apply; it reads flat .npz/.npy/.csv rows as images")


def _load_builtin(name: str, cfg: DataConfig) -> tuple[Dataset, dict]:
    if name == "digits":
        from app.core.data.builtin import load_digits

        return load_digits(), ({"n_samples": cfg.n_samples} if cfg.n_samples else {})
    if name == "sines":
        from app.core.data.builtin import load_sines

        return load_sines(cfg.n_samples, cfg.data_seed), {"n_samples": cfg.n_samples, "data_seed": cfg.data_seed}
    from app.core.data.shapes import load_shapes

    return (load_shapes(cfg.n_samples, cfg.image_size, cfg.data_seed),
            {"n_samples": cfg.n_samples, "image_size": cfg.image_size, "data_seed": cfg.data_seed})


def _load_path(spec: str, cfg: DataConfig) -> tuple[Dataset, dict]:
    path = Path(spec).expanduser()
    if not path.exists():
        if "/" not in spec and "\\" not in spec and "." not in spec:
            raise DataError(f"unknown built-in data set {spec!r}; choose one of {', '.join(BUILTIN_DATASETS)}, "
                            f"or give the path of a file or folder")
        raise DataError(f"{spec}: no such file or folder")
    options: dict = {"n_samples": cfg.n_samples} if cfg.n_samples else {}
    image_shape = parse_image_shape(getattr(cfg, "image_shape", ""))
    if image_shape is not None:
        options["image_shape"] = cfg.image_shape
    if path.is_dir():
        from app.core.data.idx import is_images_name, load_idx

        if any(p.is_file() and is_images_name(p.name) for p in path.iterdir()):
            from app.core.data.mmap import maybe_mapped_idx  # raw IDX larger than memory (issue 14)
            return maybe_mapped_idx(path, cfg) or load_idx(path), options
        from app.core.data.images import load_image_folder

        return load_image_folder(path, cfg.image_size), {**options, "image_size": cfg.image_size}
    if not path.is_file():
        raise DataError(f"{path.name}: not a regular file or folder")
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from app.core.data.arrays import load_npz

        return load_npz(path, image_shape), options
    if suffix == ".npy":
        from app.core.data.arrays import load_npy
        from app.core.data.mmap import maybe_mapped_npy  # .npy larger than memory (issue 14)

        return maybe_mapped_npy(path, cfg, image_shape) or load_npy(path, image_shape), options
    if suffix in (".csv", ".tsv", ".txt"):
        from app.core.data.tabular import load_csv

        return load_csv(path, cfg.label_column, image_shape), {**options, "label_column": cfg.label_column}
    from app.core.data.idx import is_idx_name, is_images_name, load_idx

    if is_images_name(name):
        from app.core.data.mmap import maybe_mapped_idx  # raw IDX larger than memory (issue 14)
        return maybe_mapped_idx(path, cfg) or load_idx(path), options
    if is_idx_name(name):
        raise DataError(f"{path.name}: an IDX labels file; give the images file or the folder holding both")
    if suffix in (".png", ".jpg", ".jpeg"):
        raise DataError(f"{path.name}: a single image; give the folder that holds the images")
    raise DataError(f"{path.name}: unsupported file type {suffix or '(no extension)'!r}; use a built-in "
                    f"({', '.join(BUILTIN_DATASETS)}), an IDX folder, .npz, .npy, .csv or an image folder")
