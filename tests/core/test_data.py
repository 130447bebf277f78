"""Data loaders: happy paths of every loader, dispatch, limits and reloading. No Qt."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.config import DataConfig
from app.core.data import BUILTIN_DATASETS, describe_spec_kinds, load_dataset
from app.core.data import shapes as shapes_mod
from app.core.errors import DataError


def load(spec, **kw):
    return load_dataset(DataConfig(spec=str(spec), **kw))


# ----------------------------------------------------------------------------- built-ins

def test_digits():
    ds = load("digits")
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == np.float32
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert ds.modality == "image" and ds.default_loss == "bce"
    assert sorted(np.unique(ds.y)) == list(range(10)) and ds.label_names == [str(i) for i in range(10)]
    assert ds.spec == "digits" and ds.name == "digits"


def test_shapes_deterministic_per_seed_and_factors_on_grid():
    a = load("shapes", n_samples=500, data_seed=3)
    b = load("shapes", n_samples=500, data_seed=3)
    c = load("shapes", n_samples=500, data_seed=4)
    assert a.x.shape == (500, 1, 32, 32) and a.modality == "image" and a.default_loss == "bce"
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.factors, b.factors)
    assert not np.array_equal(a.x, c.x)
    assert set(np.unique(a.x)) <= {0.0, 1.0}
    assert a.factor_names == ["shape", "scale", "rotation", "x", "y"]
    assert a.factors.dtype == np.float32 and a.factors.shape == (500, 5)
    grids = [np.arange(3), shapes_mod.SCALES, shapes_mod.ROTATIONS, shapes_mod.POSITIONS, shapes_mod.POSITIONS]
    for column, grid in zip(a.factors.T, grids):
        assert np.all(np.min(np.abs(column[:, None] - np.asarray(grid, np.float32)[None, :]), axis=1) < 1e-6)
        assert len(np.unique(column)) == len(grid)          # 500 draws cover every small grid
    np.testing.assert_array_equal(a.y, a.factors[:, 0].astype(np.int64))
    assert a.label_names == ["square", "ellipse", "heart"]
    assert np.all(a.x.reshape(500, -1).sum(axis=1) > 5)    # every sprite is drawn
    assert np.all(a.x[:, 0, [0, -1], :].sum(axis=(1, 2)) + a.x[:, 0, :, [0, -1]].sum(axis=(0, 2)) < 32)


def test_shapes_default_size_count_and_speed():
    start = time.perf_counter()
    ds = load("shapes")
    elapsed = time.perf_counter() - start
    assert ds.x.shape == (10_000, 1, 32, 32)
    assert elapsed < 2.0, f"10,000 shapes took {elapsed:.2f} s"
    assert ds.options == {"n_samples": 0, "image_size": 0, "data_seed": 0}


def test_shapes_image_size_and_rotation():
    ds = load("shapes", n_samples=20, image_size=64)
    assert ds.x.shape == (20, 1, 64, 64)
    one = np.ones(1)
    render = shapes_mod.render

    def draw(shape, angle):
        return render(np.array([shape]), one, np.array([angle]), one * 0.5, one * 0.5, 32)[0, 0]

    assert not np.array_equal(draw(2, 0.0), draw(2, np.pi))                  # a heart turned over differs
    assert not np.array_equal(draw(2, 0.0), draw(2, np.pi / 2))
    assert draw(2, 0.0)[8:16].sum() > draw(2, np.pi)[8:16].sum()                # lobes on top at 0
    np.testing.assert_array_equal(draw(1, 0.0), draw(1, np.pi))               # ellipse: 180 deg symmetric
    with pytest.raises(DataError, match="too small"):
        load("shapes", image_size=4)


def test_sines():
    a = load("sines", data_seed=1)
    b = load("sines", data_seed=1)
    assert a.x.shape == (2000, 64, 3) and a.x.dtype == np.float32 and a.modality == "sequence"
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, load("sines", data_seed=2).x)
    assert sorted(np.unique(a.y)) == [0, 1, 2, 3] and len(a.label_names) == 4
    assert np.abs(a.x).max() < 1.5 and a.default_loss == "mse"
    assert load("sines", n_samples=50).n == 50


def test_builtin_listing_and_unknown_name():
    assert set(BUILTIN_DATASETS) == {"digits", "shapes", "sines"}
    assert len(describe_spec_kinds()) >= 5 and all(isinstance(line, str) for line in describe_spec_kinds())
    with pytest.raises(DataError, match="digits, shapes, sines"):
        load("mnist_fancy")
    with pytest.raises(DataError, match="no_such_file.npz"):
        load("/nonexistent/no_such_file.npz")
    with pytest.raises(DataError, match="no data set"):
        load("  ")


def test_limit_options_and_reload():
    ds = load("shapes", n_samples=300, data_seed=7, limit=100)
    assert ds.n == 100
    again = load_dataset(DataConfig(spec=ds.spec, **ds.options))
    np.testing.assert_array_equal(ds.x, again.x)
    assert load("digits", limit=10).n == 10
    assert load("digits", n_samples=20).n == 20


# ----------------------------------------------------------------------------- IDX

def test_mnist_test_set(mnist_dir):
    ds = load(mnist_dir)
    assert ds.x.shape == (10_000, 1, 28, 28) and ds.x.dtype == np.float32
    assert 0.0 <= ds.x.min() and ds.x.max() == 1.0
    assert ds.y.shape == (10_000,) and ds.y.dtype == np.int64
    assert np.bincount(ds.y).tolist()[:3] == [980, 1135, 1032]     # MNIST's published t10k class counts
    assert ds.label_names == [str(i) for i in range(10)] and ds.name == "t10k-images"
    single = load(mnist_dir / "t10k-images-idx3-ubyte.gz", limit=50)
    np.testing.assert_array_equal(single.x, ds.x[:50])
    np.testing.assert_array_equal(single.y, ds.y[:50])


def test_idx_raw_and_gzip(tmp_path, datafiles):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 3, 5), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8) % 3
    datafiles.write_idx(tmp_path / "raw", "train", images, labels)
    datafiles.write_idx(tmp_path / "gz", "train", images, labels, gz=True)
    for folder in ("raw", "gz"):
        ds = load(tmp_path / folder)
        assert ds.x.shape == (7, 1, 3, 5)
        np.testing.assert_allclose(ds.x[:, 0] * 255, images, atol=1e-3)
        np.testing.assert_array_equal(ds.y, labels)
        assert ds.label_names == ["0", "1", "2"]


def test_idx_folder_loads_every_images_file_alphabetically(tmp_path, datafiles):
    a = np.zeros((2, 4, 4), np.uint8)
    b = np.full((3, 4, 4), 255, np.uint8)
    datafiles.write_idx(tmp_path, "train", b, np.ones(3, np.uint8))
    datafiles.write_idx(tmp_path, "t10k", a, np.zeros(2, np.uint8), gz=True)
    ds = load(tmp_path)
    assert ds.n == 5 and ds.x[:2].max() == 0 and ds.x[2:].min() == 1   # t10k < train
    assert ds.y.tolist() == [0, 0, 1, 1, 1]
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    ds = load(tmp_path)
    assert ds.y is None and "t10k-images-idx3-ubyte.gz" in ds.skipped[0]


def test_idx_without_labels(tmp_path, datafiles):
    path = datafiles.write_idx(tmp_path, "my", np.ones((4, 2, 2), np.uint8) * 255)
    ds = load(path)
    assert ds.y is None and ds.x.shape == (4, 1, 2, 2) and ds.name == "my-images"


# ----------------------------------------------------------------------------- .npz / .npy

def test_npz_with_labels_and_factors(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 1, 6, 6), dtype=np.uint8)
    factors = rng.random((30, 2))
    path = tmp_path / "toy.npz"
    np.savez_compressed(path, x=x, y=np.array(["cat", "dog", "ant"] * 10), factors=factors,
                        factor_names=np.array(["size", "hue"]))
    ds = load(path)
    assert ds.modality == "image" and ds.x.shape == (30, 1, 6, 6)
    np.testing.assert_allclose(ds.x * 255, x, atol=1e-3)
    assert ds.label_names == ["ant", "cat", "dog"] and ds.y[:3].tolist() == [1, 2, 0]
    assert ds.factors.dtype == np.float32 and ds.factor_names == ["size", "hue"]
    np.testing.assert_allclose(ds.factors, factors, rtol=1e-6)
    assert ds.name == "toy.npz" and ds.spec == str(path)


def test_npz_integer_labels_and_label_names(tmp_path):
    path = tmp_path / "lab.npz"
    np.savez(path, x=np.random.default_rng(0).random((6, 3)), y=np.array([0, 2, 1, 2, 0, 1]),
             label_names=np.array(["a", "b", "c"]))
    ds = load(path)
    assert ds.modality == "tabular" and ds.y.tolist() == [0, 2, 1, 2, 0, 1] and ds.label_names == ["a", "b", "c"]


def test_npz_single_unnamed_array(tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, np.random.default_rng(0).random((5, 4)))
    assert load(path).x.shape == (5, 4)


@pytest.mark.parametrize("shape, dtype, scale, modality, expected", [
    ((10, 4), np.float64, 1, "tabular", (10, 4)),
    ((10,), np.int32, 1, "tabular", (10, 1)),
    ((10, 5, 6), np.uint8, 255, "image", (10, 1, 5, 6)),
    ((10, 5, 6), np.float32, 1, "image", (10, 1, 5, 6)),       # values in [0, 1]
    ((10, 16, 3), np.float32, 5, "sequence", (10, 16, 3)),     # values beyond [0, 1]
    ((10, 3, 7, 8), np.float32, 1, "image", (10, 3, 7, 8)),
    ((10, 7, 8, 3), np.uint8, 255, "image", (10, 3, 7, 8)),    # NHWC
    ((10, 7, 8, 1), np.bool_, 1, "image", (10, 1, 7, 8)),
])
def test_npy_rank_rules(tmp_path, shape, dtype, scale, modality, expected):
    rng = np.random.default_rng(0)
    a = rng.random(shape) * scale
    if scale == 5:
        a -= 2.5
    a = a.astype(dtype)
    path = tmp_path / "a.npy"
    np.save(path, a)
    ds = load(path)
    assert ds.modality == modality and ds.x.shape == expected and ds.x.dtype == np.float32
    if modality == "tabular":
        np.testing.assert_allclose(ds.x.mean(axis=0), 0, atol=1e-5)
        assert set(ds.normalisation) == {"mean", "std", "columns"}
    if modality == "image":
        assert ds.in_unit_range and ds.default_loss == "bce"
    if len(shape) == 4 and shape[-1] == 3:
        np.testing.assert_allclose(ds.x[0, :, 2, 5] * 255, a[0, 2, 5, :], atol=1e-3)


def test_npy_fortran_order_and_big_endian(tmp_path):
    a = np.asfortranarray(np.arange(24, dtype=">f8").reshape(4, 6))
    np.save(tmp_path / "f.npy", a)
    ds = load(tmp_path / "f.npy")
    expected = (a - a.mean(axis=0)) / a.std(axis=0)
    np.testing.assert_allclose(ds.x, expected, rtol=1e-5)


# ----------------------------------------------------------------------------- .csv

def test_csv_with_label_column(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text("sepal,petal,species\n1.0,2.0,setosa\n2.0,4.0,virginica\n3.0,6.0,setosa\n")
    ds = load(path, label_column="species")
    assert ds.modality == "tabular" and ds.x.shape == (3, 2)
    assert ds.label_names == ["setosa", "virginica"] and ds.y.tolist() == [0, 1, 0]
    assert ds.normalisation["columns"] == ["sepal", "petal"]
    np.testing.assert_allclose(ds.normalisation["mean"], [2.0, 4.0])
    np.testing.assert_allclose(ds.x[:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)
    assert ds.options["label_column"] == "species" and ds.default_loss == "mse"


def test_csv_bom_semicolon_quotes_and_decimal_comma(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes('\ufeff"a";"b";"label"\n"1,5";"2";"3"\n"2,5";" 4 ";"1"\n\n"3,5";"6e0";"3"\n'.encode("utf-8"))
    ds = load(path, label_column="label")
    assert ds.normalisation["columns"] == ["a", "b"]
    np.testing.assert_allclose(ds.normalisation["mean"], [2.5, 4.0])
    assert ds.label_names == ["1", "3"] and ds.y.tolist() == [1, 0, 1]


def test_csv_tab_one_column_and_no_header(tmp_path):
    (tmp_path / "t.tsv").write_text("a\tb\n1\t2\n3\t4\n")
    assert load(tmp_path / "t.tsv").x.shape == (2, 2)
    (tmp_path / "one.csv").write_text("value\n1\n2\n3\n")
    assert load(tmp_path / "one.csv").x.shape == (3, 1)
    (tmp_path / "nohead.csv").write_text("1,2,3\n4,5,6\n")
    ds = load(tmp_path / "nohead.csv")
    assert ds.x.shape == (2, 3) and ds.normalisation["columns"] == ["col1", "col2", "col3"]
    (tmp_path / "const.csv").write_text("a,b\n1,5\n2,5\n")
    ds = load(tmp_path / "const.csv")
    assert ds.normalisation["std"][1] == 1.0 and np.all(ds.x[:, 1] == 0)


# ----------------------------------------------------------------------------- image folders

def _save(path: Path, array: np.ndarray, mode: str | None = None, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path, **kw)


def test_image_folder_grayscale(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (6, 5), dtype=np.uint8) for _ in range(3)]
    for i, a in enumerate(arrays):
        _save(tmp_path / "imgs" / f"{i}.png", a)
    ds = load(tmp_path / "imgs")
    assert ds.x.shape == (3, 1, 6, 5) and ds.modality == "image" and ds.y is None
    np.testing.assert_allclose(ds.x[1, 0] * 255, arrays[1], atol=1e-3)
    assert ds.name == "imgs" and ds.skipped == [] and ds.options == {"image_size": 0}


def test_image_folder_modes_mix_to_rgb(tmp_path):
    folder = tmp_path / "mixed"
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    _save(folder / "a_rgb.png", rgb)
    _save(folder / "b_gray.png", np.full((4, 4), 128, np.uint8))
    rgba = np.zeros((4, 4, 4), np.uint8)                       # fully transparent black -> white
    _save(folder / "c_rgba.png", rgba)
    _save(folder / "d_palette.png", rgb, mode="P")
    _save(folder / "e_16bit.png", np.full((4, 4), 65535, np.uint16))
    _save(folder / "f_photo.jpg", rgb, quality=95)
    _save(folder / "g_la.png", np.zeros((4, 4), np.uint8), mode="LA")
    ds = load(folder)
    assert ds.x.shape == (7, 3, 4, 4)
    np.testing.assert_allclose(ds.x[0, :, 0, 0], [1, 0, 0])
    np.testing.assert_allclose(ds.x[1, :, 0, 0], [128 / 255] * 3, atol=1e-6)
    np.testing.assert_allclose(ds.x[2], 1.0)
    np.testing.assert_allclose(ds.x[3, :, 0, 0], [1, 0, 0])
    np.testing.assert_allclose(ds.x[4], 1.0)
    np.testing.assert_allclose(ds.x[5, :, 1, 1], [1, 0, 0], atol=0.05)
    np.testing.assert_allclose(ds.x[6], 0.0)                   # opaque black LA
    assert ds.in_unit_range


def test_image_folder_rgb_that_is_gray_and_resize(tmp_path):
    folder = tmp_path / "g"
    _save(folder / "a.png", np.full((10, 20, 3), 200, np.uint8))
    _save(folder / "b.jpg", np.full((30, 30), 50, np.uint8))
    ds = load(folder, image_size=8)
    assert ds.x.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(ds.x[0], 200 / 255, atol=1e-5)
    assert ds.options["image_size"] == 8


def test_image_folder_class_subfolders(tmp_path):
    folder = tmp_path / "pets"
    for cls, n in (("dog", 2), ("cat", 3)):
        for i in range(n):
            _save(folder / cls / f"{i}.png", np.full((4, 4), 10 * i, np.uint8))
    _save(folder / "cat" / "deeper" / "x.png", np.zeros((4, 4), np.uint8))
    _save(folder / "stray.png", np.zeros((4, 4), np.uint8))
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    ds = load(folder)
    assert ds.label_names == ["cat", "dog"] and ds.n == 6
    assert np.bincount(ds.y).tolist() == [4, 2]
    assert len(ds.skipped) == 1 and ds.skipped[0].startswith("stray.png: not in a class sub-folder")


def test_image_folder_skips_bad_files_and_lists_them(tmp_path):
    folder = tmp_path / "dirty"
    _save(folder / "good.png", np.zeros((5, 5), np.uint8))
    good = (folder / "good.png").read_bytes()
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "garbage.jpg").write_bytes(b"this is not a jpeg" * 10)
    (folder / "notes.txt").write_text("hello")
    _save(folder / "a.gif", np.zeros((5, 5), np.uint8))
    ds = load(folder)
    assert ds.n == 1
    reasons = dict(s.split(": ", 1) for s in ds.skipped)
    assert set(reasons) == {"empty.png", "truncated.png", "garbage.jpg", "notes.txt", "a.gif"}
    assert "empty" in reasons["empty.png"] and "PNG/JPEG" in reasons["notes.txt"]


def test_image_folder_decompression_bomb_is_skipped(tmp_path, monkeypatch):
    folder = tmp_path / "bomb"
    _save(folder / "small.png", np.zeros((4, 4), np.uint8))
    _save(folder / "huge.png", np.zeros((40, 40), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)       # 1,600 px is over twice the limit
    ds = load(folder)
    assert ds.n == 1 and "decompression-bomb" in ds.skipped[0] and ds.skipped[0].startswith("huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)      # over the limit, under twice: a warning
    ds = load(folder)
    assert ds.n == 1 and "decompression-bomb" in ds.skipped[0]


# ----------------------------------------------------------------------------- layering

def test_data_package_never_imports_qt():
    code = ("import sys, app.core.data as d, app.core.data.images, app.core.data.tabular, app.core.data.idx, "
            "app.core.data.arrays, app.core.data.shapes, app.core.data.builtin; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stdout + result.stderr
