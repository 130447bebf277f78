"""Bad input: every case raises DataError naming the file; fuzzed bytes never raise anything else."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.core.config import DataConfig
from app.core.data import load_dataset
from app.core.errors import DataError


def load(spec, **kw):
    return load_dataset(DataConfig(spec=str(spec), **kw))


def refused(spec, *fragments, **kw) -> str:
    """Load, expect a one-line DataError containing every fragment; return the message."""
    with pytest.raises(DataError) as info:
        load(spec, **kw)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in {message!r}"
    return message


# ----------------------------------------------------------------------------- IDX

def test_idx_wrong_magic(tmp_path, datafiles):
    path = tmp_path / "x-images-idx3-ubyte"
    path.write_bytes(datafiles.idx_bytes(np.zeros((2, 3, 3)), magic=0x00000801, dims=(2, 3, 3)))
    refused(path, path.name, "magic")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_declaring_a_billion_images_is_refused_before_allocating(tmp_path, datafiles, gz):
    body = datafiles.idx_bytes(np.zeros((2, 28, 28)), dims=(1_000_000_000, 28, 28))
    path = tmp_path / ("x-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(body) if gz else body)
    refused(path, path.name, "truncated", "1000000000x28x28")


def test_idx_too_big_for_free_memory(small_idx, monkeypatch):
    import types

    import psutil

    folder, _, _ = small_idx
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=1000))
    refused(folder, "train-images-idx3-ubyte.gz", "memory")
    np.save(folder.parent / "a.npy", np.zeros((100, 10)))
    refused(folder.parent / "a.npy", "a.npy", "memory")
    refused("shapes", "shapes", "memory")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_declaring_more_than_the_file_holds(tmp_path, datafiles, gz):
    body = datafiles.idx_bytes(np.zeros((2, 28, 28)), dims=(1000, 28, 28))
    path = tmp_path / ("x-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(body) if gz else body)
    refused(path, path.name, "truncated")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_longer_than_its_header(tmp_path, datafiles, gz):
    body = datafiles.idx_bytes(np.zeros((2, 4, 4))) + b"\x00" * 5
    path = tmp_path / ("x-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(body) if gz else body)
    refused(path, path.name, "longer than its header")


def test_idx_truncated_raw_and_gzip(tmp_path, small_idx):
    folder, _, _ = small_idx
    path = folder / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])                    # cut inside the deflate stream
    refused(folder, path.name)
    raw = tmp_path / "r-images-idx3-ubyte"
    raw.write_bytes(gzip.decompress(data)[:40])
    refused(raw, raw.name, "truncated")
    tiny = tmp_path / "t-images-idx3-ubyte"
    tiny.write_bytes(b"\x00\x00")
    refused(tiny, tiny.name, "too short")


def test_idx_corrupt_gzip(tmp_path, small_idx):
    folder, _, _ = small_idx
    path = folder / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    for i in range(20, len(data) - 10, 7):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    refused(folder, path.name)


def test_idx_label_count_mismatch(tmp_path, datafiles):
    datafiles.write_idx(tmp_path, "train", np.zeros((5, 2, 2), np.uint8), np.zeros(4, np.uint8))
    refused(tmp_path, "train-labels-idx1-ubyte", "4 labels for 5 images")


def test_idx_labels_file_wrong_magic(tmp_path, datafiles):
    datafiles.write_idx(tmp_path, "train", np.zeros((5, 2, 2), np.uint8))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(datafiles.idx_bytes(np.zeros((5, 1, 1))))
    refused(tmp_path, "train-labels-idx1-ubyte", "magic")


def test_idx_only_labels_and_empty_header(tmp_path, datafiles):
    labels = tmp_path / "only" / "train-labels-idx1-ubyte"
    labels.parent.mkdir()
    labels.write_bytes(datafiles.idx_bytes(np.zeros(3)))
    refused(labels, labels.name, "labels file")
    empty = tmp_path / "e-images-idx3-ubyte"
    empty.write_bytes(datafiles.idx_bytes(np.zeros((0, 2, 2))))
    refused(empty, empty.name, "empty")


def test_idx_files_of_different_image_sizes(tmp_path, datafiles):
    datafiles.write_idx(tmp_path, "a", np.zeros((2, 3, 3), np.uint8))
    datafiles.write_idx(tmp_path, "b", np.zeros((2, 4, 4), np.uint8))
    refused(tmp_path, "b-images-idx3-ubyte", "3x3")


# ----------------------------------------------------------------------------- .npz / .npy

def test_npy_object_array_refused(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    refused(path, "objects.npy", "unpickling")
    npz = tmp_path / "objects.npz"
    np.savez(npz, x=np.zeros((3, 2)), y=np.array([[1], "a", None], dtype=object))
    refused(npz, "objects.npz", "unpickling")


def test_npy_pickle_file_refused(tmp_path):
    import pickle

    path = tmp_path / "evil.npy"
    path.write_bytes(pickle.dumps({"x": [1, 2, 3]}))
    refused(path, "evil.npy", "not a valid .npy")


def _npy_with_header(shape, dtype="<f4", data=b"") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def test_npy_header_larger_than_file_or_memory(tmp_path):
    lie = tmp_path / "lie.npy"
    lie.write_bytes(_npy_with_header((1000, 10), data=b"\x00" * 80))
    refused(lie, "lie.npy", "truncated")
    huge = tmp_path / "huge.npy"
    huge.write_bytes(_npy_with_header((10**12, 10**6), data=b"\x00" * 80))
    refused(huge, "huge.npy")


def test_npz_member_lies_about_its_size(tmp_path):
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", _npy_with_header((10**6, 1000), data=b"\x00" * 400))
    refused(path, "lie.npz", "truncated")


def test_npy_nan_and_inf_refused_with_count_and_place(tmp_path):
    a = np.zeros((5, 3))
    a[2, 1] = np.nan
    a[4, 0] = np.inf
    np.save(tmp_path / "nan.npy", a)
    refused(tmp_path / "nan.npy", "nan.npy", "2 NaN/Inf", "sample 2", "column 1")
    seq = np.full((4, 6, 2), 3.0)
    seq[1, 2, 0] = np.nan
    np.save(tmp_path / "seq.npy", seq)
    refused(tmp_path / "seq.npy", "seq.npy", "1 NaN/Inf", "sample 1")


@pytest.mark.parametrize("array, fragment", [
    (np.zeros((0, 3)), "no samples"),
    (np.zeros((4, 0)), "empty"),
    (np.zeros((2, 2, 2, 2, 2)), "5 dimensions"),
    (np.array(3.0), "0 dimensions"),
    (np.full((3, 2, 4, 4), 7.5), "scale them to [0, 1]"),
    (np.array(["a", "b"]), "not supported"),
    (np.zeros((3, 2), dtype=complex), "not supported"),
    (np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]), "structured"),
    (np.array([[1e300, 1.0], [-1e300, 2.0], [1e300, 3.0]]), "too large"),
])
def test_npy_unsupported_arrays(tmp_path, array, fragment):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    refused(path, "bad.npy", fragment)


def test_npz_bad_members(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    refused(path, "m.npz", "no array named x")
    np.savez(path, x=np.zeros((3, 2)), y=np.zeros(4))
    refused(path, "m.npz[y]", "one label per sample")
    np.savez(path, x=np.zeros((3, 2)), factors=np.zeros((2, 2)))
    refused(path, "m.npz[factors]")
    np.savez(path, x=np.zeros((3, 2)), factors=np.zeros((3, 2)), factor_names=np.array(["a"]))
    refused(path, "m.npz[factor_names]")
    np.savez(path, x=np.zeros((3, 2)), y=np.array([0, 1, 2]), label_names=np.array(["a"]))
    refused(path, "m.npz[y]", "label names")
    with zipfile.ZipFile(path, "w"):
        pass
    refused(path, "m.npz", "no arrays")
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    refused(path, "m.npz", "not a valid .npz")
    path.write_bytes(b"")
    refused(path, "m.npz", "empty")


# ----------------------------------------------------------------------------- .csv

@pytest.mark.parametrize("text, fragments", [
    ("", ["empty"]),
    ("\n\n  \n", ["no rows"]),
    ("a,b,c\n", ["header but no data rows"]),
    ("a,b\n1,2\n3\n", ["line 3", "1 fields", "header has 2"]),
    ("a,b\n1,2\n3,4,5\n", ["line 3", "3 fields"]),
    ("a,b\n1,2\n3,\n", ["line 3", "column 'b'", "missing value"]),
    ("a,b\n1,NA\n3,4\n", ["line 2", "column 'b'", "missing"]),
    ("a,b\n1,nan\n3,4\n", ["line 2", "column 'b'", "missing"]),
    ("a,city\n1,Paris\n2,Rome\n", ["column 'city'", "not numeric", "Paris"]),
    ("a,b\n1,inf\n3,-inf\n", ["2 infinite", "line 2", "column 'b'"]),
    ("a,b\n1,1e400\n3,4\n", ["infinite"]),
])
def test_csv_bad_content(tmp_path, text, fragments):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    refused(path, "bad.csv", *fragments)


def test_csv_label_column_problems(tmp_path):
    path = tmp_path / "lab.csv"
    path.write_text("a,b,kind\n1,2,x\n3,4,y\n")
    refused(path, "lab.csv", "'species'", "a, b, kind", label_column="species")
    path.write_text("kind\nx\ny\n")
    refused(path, "lab.csv", "no feature columns", label_column="kind")
    path.write_text("a,kind\n1,x\n2,\n")
    refused(path, "lab.csv", "line 3", "missing label", label_column="kind")


def test_csv_binary_and_utf16_refused(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"a,b\n1,\x00\x01\n")
    refused(path, "bin.csv", "binary")
    path.write_bytes("a,b\n1,2\n".encode("utf-16"))
    refused(path, "bin.csv", "UTF-16")


def test_csv_unterminated_quote_is_a_data_error(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('a,b\n1,"2\n3,4\n')
    refused(path, "q.csv")


# ----------------------------------------------------------------------------- image folders and paths

def test_image_folder_mixed_sizes_without_image_size(tmp_path):
    folder = tmp_path / "sizes"
    folder.mkdir()
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "b.png")
    refused(folder, "sizes", "a.png is 6x4", "b.png is 5x5", "image size")
    assert load(folder, image_size=5).x.shape == (2, 1, 5, 5)


def test_image_folder_nothing_loadable(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    (folder / "b.txt").write_text("x")
    refused(folder, "junk", "no loadable", "a.png", "b.txt")
    empty = tmp_path / "void"
    empty.mkdir()
    refused(empty, "void", "empty")


def test_path_problems(tmp_path):
    refused(tmp_path / "missing.csv", "missing.csv", "no such file")
    odd = tmp_path / "data.parquet"
    odd.write_bytes(b"PAR1")
    refused(odd, "data.parquet", "unsupported file type")
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "one.png")
    refused(tmp_path / "one.png", "one.png", "folder")


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "locked.csv"
    path.write_text("a\n1\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    refused(path, "locked.csv", "cannot be read", "permission denied")


# ----------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    """One folder reused by every example (hypothesis cannot take function-scoped fixtures)."""
    return tmp_path_factory.mktemp("fuzz")


def _seed_bytes(kind: str) -> bytes:
    rng = np.random.default_rng(0)
    if kind == "idx":
        images = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
        return struct.pack(">IIII", 0x803, 3, 4, 4) + images.tobytes()
    if kind == "npy":
        buf = io.BytesIO()
        np.save(buf, rng.random((4, 3)).astype(np.float32))
        return buf.getvalue()
    if kind == "npz":
        buf = io.BytesIO()
        np.savez(buf, x=rng.integers(0, 256, (3, 4, 4), dtype=np.uint8), y=np.arange(3))
        return buf.getvalue()
    if kind == "csv":
        return b'\xef\xbb\xbfa;b;"c"\n1,5;2;"3"\n4;5;6\n'
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _mutations(kind: str):
    seed = _seed_bytes(kind)
    flips = st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), max_size=8)
    mutated = st.tuples(flips, st.integers(0, len(seed)), st.binary(max_size=16)).map(
        lambda m: _apply(seed, *m))
    return st.one_of(mutated, st.binary(max_size=200))


def _apply(seed: bytes, flips, cut: int, tail: bytes) -> bytes:
    data = bytearray(seed)
    for index, value in flips:
        data[index] = value
    return bytes(data[:cut]) + tail


def _only_data_errors(path: Path, **kw) -> None:
    try:
        load_dataset(DataConfig(spec=str(path), **kw))
    except DataError as exc:
        assert str(exc) and "\n" not in str(exc)


@FUZZ
@given(data=_mutations("idx"), gz=st.booleans())
def test_fuzz_idx(fuzz_dir, data, gz):
    path = fuzz_dir / ("fuzz-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz and data[:1] != b"\x1f" else data)
    _only_data_errors(path)
    path.unlink()


@FUZZ
@given(data=st.one_of(_mutations("npy"), _mutations("npz")), suffix=st.sampled_from([".npy", ".npz"]))
def test_fuzz_arrays(fuzz_dir, data, suffix):
    path = fuzz_dir / f"fuzz{suffix}"
    path.write_bytes(data)
    _only_data_errors(path)


@FUZZ
@given(data=st.one_of(_mutations("csv"), st.text(alphabet=',;"\t\n 0123456789.-eainfNA\ufeff', max_size=80)
                      .map(lambda t: t.encode("utf-8"))),
       label=st.sampled_from(["", "c", "a"]))
def test_fuzz_csv(fuzz_dir, data, label):
    path = fuzz_dir / "fuzz.csv"
    path.write_bytes(data)
    _only_data_errors(path, label_column=label)


@FUZZ
@given(data=_mutations("png"), name=st.sampled_from(["img.png", "img.jpg", "img.bin"]),
       image_size=st.sampled_from([0, 4]))
def test_fuzz_image_folder(fuzz_dir, data, name, image_size):
    folder = fuzz_dir / "images"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    (folder / "good.png").write_bytes(_seed_bytes("png"))
    (folder / name).write_bytes(data)
    _only_data_errors(folder, image_size=image_size)
