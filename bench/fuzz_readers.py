"""Fuzz every reader of outside files with random and mutated bytes.

    python bench/fuzz_readers.py [--count 10000] [--workers 2] [--readers weights,json,...]

Readers: the checkpoint's weights (model.safetensors) and description (model.json) through
load_run, and the data loaders through load_dataset(DataConfig(spec=path)): IDX (raw and gzip),
.npy, .npz, .csv and an image folder. Each input starts from a valid file and gets 1-4 mutations
(bit flips, interesting bytes, inserted/deleted/duplicated chunks, truncation), or is random
bytes. The only exceptions allowed out are the app's own (LatentExplorerError); anything else is
counted as unexpected, and the first few are kept under bench/fuzz-crashes/ to reproduce.

Prints a table (reader, inputs, unexpected exceptions, seconds) and, last, one line of JSON.
The mutation helpers are shared with tests/core/test_hardening_fuzz.py (hypothesis strategies).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HUGE_INT = "<an integer of 5,000 digits>"
READERS = ("weights", "json", "idx", "npy", "npz", "csv", "images")
CRASH_DIR = ROOT / "bench" / "fuzz-crashes"
INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80",
               b"\xff" * 8, b"\x00" * 8, b"-1", b"1e309", b"NaN", b"99999999999999999999", b'"', b"{", b"[", b"\n",
               b"\r\n", b";", b",", b"\xef\xbb\xbf", b"\xfe\xff", b"\\u0000", b"-0", b"0x", b"\x89PNG"]


# ---------------------------------------------------------------------------------------------
# Mutations: plain tuples, so hypothesis and a random.Random can both produce them

def apply_mutations(base: bytes, ops) -> bytes:
    data = bytearray(base)
    for op in ops:
        kind, where = op[0], op[1]
        pos = min(int(where * (len(data) + 1)), len(data))
        if kind == "flip" and data:
            pos = min(pos, len(data) - 1)
            data[pos] ^= 1 << op[2]
        elif kind == "insert":
            data[pos:pos] = op[2]
        elif kind == "replace":
            data[pos:pos + len(op[2])] = op[2]
        elif kind == "delete":
            del data[pos:pos + op[2]]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "duplicate":
            chunk = bytes(data[pos:pos + op[2]])
            data[pos:pos] = chunk
    return bytes(data)


def random_mutations(rng: random.Random) -> list:
    ops = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        kind = rng.choice(("flip", "flip", "insert", "replace", "replace", "delete", "truncate", "duplicate"))
        where = rng.random() ** rng.choice((1, 1, 3))     # favour the start: headers live there
        if kind == "flip":
            ops.append((kind, where, rng.randrange(8)))
        elif kind in ("insert", "replace"):
            payload = rng.choice(INTERESTING) if rng.random() < 0.6 else rng.randbytes(rng.randint(1, 16))
            ops.append((kind, where, payload))
        elif kind in ("delete", "duplicate"):
            ops.append((kind, where, rng.randint(1, 64)))
        else:
            ops.append((kind, where))
    return ops


def mutations():
    """A hypothesis strategy of mutation lists (imported lazily: the bench does not need it)."""
    from hypothesis import strategies as st

    where = st.floats(0.0, 1.0, allow_nan=False)
    payload = st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=16))
    op = st.one_of(
        st.tuples(st.just("flip"), where, st.integers(0, 7)),
        st.tuples(st.sampled_from(["insert", "replace"]), where, payload),
        st.tuples(st.sampled_from(["delete", "duplicate"]), where, st.integers(1, 64)),
        st.tuples(st.just("truncate"), where),
    )
    return st.lists(op, min_size=1, max_size=4)


def json_values():
    """A hypothesis strategy of JSON values with the awkward ones in front."""
    from hypothesis import strategies as st

    leaves = st.one_of(
        st.none(), st.booleans(), st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, 65537, 4096]),
        st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
        st.sampled_from(["vae", "conv-vae", "rnn-ae", "image", "sequence", "tabular", "bce", "mse", "linear"]))
    return st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=8)


def random_json_value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth < 2 and roll < 0.1:
        return [random_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if depth < 2 and roll < 0.15:
        return {rng.choice(["kind", "x", "", "hidden"]): random_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return rng.choice([None, True, False, 0, -1, 1, 3, 2**31, 2**63, 10**30, 65537, 1e308, -0.0, 0.5,
                       float("nan"), float("inf"), "", "vae", "conv-vae", "rnn-ae", "image", "sequence", "mse",
                       "x" * 100, [1, 8, 8], [64], [0], [1, 100000, 100000], [3, 2, 2], {}, HUGE_INT])


# ---------------------------------------------------------------------------------------------
# Seeds: one valid input per reader

def _idx(array, magic_type=0x08) -> bytes:
    import numpy as np
    import struct

    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(">I", (magic_type << 8) | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _png(array, fmt="PNG", mode=None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(buf, format=fmt)
    return buf.getvalue()


class Seeds:
    def __init__(self):
        import numpy as np

        from app.core.checkpoint import save_run
        from app.core.config import DataConfig, ModelConfig, TrainConfig
        from app.core.models import build_model

        rng = np.random.default_rng(0)
        folder = Path(tempfile.mkdtemp(prefix="fuzz-seed-"))
        model = build_model(ModelConfig(kind="vae", latent_dim=3, hidden=(16,)), (1, 8, 8), "image", "bce")
        save_run(folder, model, data_cfg=DataConfig(), train_cfg=TrainConfig(), modality="image",
                 history=[{"epoch": 1, "train_loss": 1.0}])
        self.weights = (folder / "model.safetensors").read_bytes()
        self.meta = (folder / "model.json").read_bytes()
        shutil.rmtree(folder, ignore_errors=True)
        images = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
        self.idx_images = _idx(images)
        self.idx_labels = _idx(rng.integers(0, 10, 6, dtype=np.uint8))
        buf = io.BytesIO()
        np.save(buf, rng.random((6, 5), dtype=np.float32))
        self.npy = buf.getvalue()
        buf = io.BytesIO()
        np.savez(buf, x=rng.random((6, 2, 3), dtype=np.float32), y=np.arange(6), factors=rng.random((6, 2)))
        self.npz = buf.getvalue()
        buf = io.BytesIO()
        np.savez_compressed(buf, x=rng.random((6, 4), dtype=np.float32))
        self.npz_compressed = buf.getvalue()
        self.csv = b"a,b,label,c\n1.5,2,cat,3\n\"4\",5.25,dog,6\n7,8,cat,-9e-3\n10,11,dog,12\n"
        self.csv_semicolon = "\ufeffa;b;c\n1,5;2;3\n4;5;6\n".encode("utf-8")
        self.images = [_png(rng.integers(0, 256, (6, 6), dtype=np.uint8)),
                       _png(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)),
                       _png(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), "JPEG"),
                       _png(rng.integers(0, 256, (6, 6, 4), dtype=np.uint8)),
                       _png(rng.integers(0, 256, (6, 6), dtype=np.uint8), mode="P")]


# ---------------------------------------------------------------------------------------------
# One input per reader

def _forge(meta: bytes, weights: bytes) -> bytes:
    doc = json.loads(meta)
    doc["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    return json.dumps(doc).encode()


def _json_paths(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield prefix + (i,)
            yield from _json_paths(v, prefix + (i,))


def _structured_json(meta: bytes, rng: random.Random) -> bytes:
    doc = json.loads(meta)
    paths = list(_json_paths(doc))
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(paths)
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            if rng.random() < 0.25 and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = random_json_value(rng)
        except (KeyError, IndexError, TypeError):
            continue
    # json.dumps cannot write an integer of 5,000 digits (Python >= 3.11): put it in as text
    return json.dumps(doc).replace(json.dumps(HUGE_INT), "9" * 5000).encode()


def make_input(reader: str, seeds: Seeds, rng: random.Random, work: Path) -> tuple[str, dict]:
    """Write one fuzz input under `work` (emptied by the caller); return what to call and how."""
    def mutate(base: bytes) -> bytes:
        return rng.randbytes(rng.randint(0, 256)) if rng.random() < 0.05 else apply_mutations(base, random_mutations(rng))

    if reader in ("weights", "json"):
        run = work / "run"
        run.mkdir()
        if reader == "weights":
            weights = mutate(seeds.weights)
            meta = _forge(seeds.meta, weights) if rng.random() < 0.6 else seeds.meta
        else:
            weights = seeds.weights
            meta = _structured_json(seeds.meta, rng) if rng.random() < 0.5 else mutate(seeds.meta)
        (run / "model.safetensors").write_bytes(weights)
        (run / "model.json").write_bytes(meta)
        return "load_run", {"path": run}
    if reader == "idx":
        folder = work / "idx"
        folder.mkdir()
        images, labels = seeds.idx_images, seeds.idx_labels
        target = rng.random()
        if target < 0.7:
            images = mutate(images)
        elif target < 0.9:
            labels = mutate(labels)
        gz = rng.random() < 0.3
        pack = (lambda b: gzip.compress(b, compresslevel=1)) if gz else (lambda b: b)
        images, labels = pack(images), pack(labels)
        if gz and rng.random() < 0.3:
            images = mutate(images)       # a corrupt gzip stream
        suffix = ".gz" if gz else ""
        (folder / f"train-images-idx3-ubyte{suffix}").write_bytes(images)
        if rng.random() < 0.9:
            (folder / f"train-labels-idx1-ubyte{suffix}").write_bytes(labels)
        return "load_dataset", {"spec": str(folder) if rng.random() < 0.7 else str(folder / f"train-images-idx3-ubyte{suffix}")}
    if reader == "npy":
        path = work / "data.npy"
        path.write_bytes(mutate(seeds.npy))
        return "load_dataset", {"spec": str(path)}
    if reader == "npz":
        path = work / "data.npz"
        base = seeds.npz if rng.random() < 0.7 else seeds.npz_compressed
        if rng.random() < 0.5:
            path.write_bytes(mutate(base))
        else:   # mutate a member and zip it again, so the zip's checksums are right and numpy reads it
            import zipfile

            out = io.BytesIO()
            with zipfile.ZipFile(io.BytesIO(base)) as src, zipfile.ZipFile(out, "w") as dst:
                names = src.namelist()
                victim = rng.choice(names)
                for name in names:
                    blob = src.read(name)
                    dst.writestr(rng.choice([name, name, "x.npy", "y.npy", "factors.npy", "label_names.npy"])
                                 if name == victim else name, mutate(blob) if name == victim else blob)
            path.write_bytes(out.getvalue())
        return "load_dataset", {"spec": str(path)}
    if reader == "csv":
        path = work / "data.csv"
        path.write_bytes(mutate(seeds.csv if rng.random() < 0.7 else seeds.csv_semicolon))
        return "load_dataset", {"spec": str(path), "label_column": rng.choice(["label", "label", "label", "", "nope"])}
    if reader == "images":
        folder = work / "images"
        (folder / "cats").mkdir(parents=True)
        (folder / "dogs").mkdir()
        for i, blob in enumerate(seeds.images):
            sub = "cats" if i % 2 else "dogs"
            ext = ".jpg" if blob[:2] == b"\xff\xd8" else ".png"
            (folder / sub / f"img{i}{ext}").write_bytes(mutate(blob) if rng.random() < 0.4 else blob)
        if rng.random() < 0.1:
            (folder / "cats" / "notes.png").write_bytes(rng.randbytes(rng.randint(0, 64)))
        return "load_dataset", {"spec": str(folder), "image_size": rng.choice([0, 0, 4, 8])}
    raise ValueError(reader)


def call(kind: str, args: dict) -> None:
    from app.core.config import DataConfig
    from app.core.data import load_dataset
    from app.core.checkpoint import load_run

    if kind == "load_run":
        load_run(args["path"])
    else:
        load_dataset(DataConfig(**args))


def _empty(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def fuzz(reader: str, count: int, seed: int, keep_crashes: int = 3) -> dict:
    """Run `count` inputs against one reader; returns counts and the first unexpected errors."""
    import warnings

    from app.core.errors import LatentExplorerError

    warnings.simplefilter("ignore")      # Pillow / numpy warnings about odd files are not failures
    seeds = Seeds()
    rng = random.Random(f"{reader}-{seed}")
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{reader}-", dir=base))
    unexpected: dict[str, int] = {}
    examples: list[dict] = []
    expected = 0
    t0 = time.perf_counter()
    try:
        for i in range(count):
            _empty(work)
            kind, args = make_input(reader, seeds, rng, work)
            try:
                call(kind, args)
            except LatentExplorerError:
                expected += 1
            except Exception as exc:  # noqa: BLE001 - counting exactly these
                key = f"{type(exc).__name__}: {str(exc)[:120]}"
                unexpected[key] = unexpected.get(key, 0) + 1
                if len(examples) < keep_crashes:
                    saved = CRASH_DIR / f"{reader}-{seed}-{i}"
                    shutil.rmtree(saved, ignore_errors=True)
                    shutil.copytree(work, saved)
                    examples.append({"error": key, "input": str(saved),
                                     "where": traceback.format_exc(limit=-3).strip().splitlines()[-3:]})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"reader": reader, "inputs": count, "refused": expected, "unexpected": sum(unexpected.values()),
            "kinds": unexpected, "examples": examples, "seconds": time.perf_counter() - t0}


def _fuzz_task(task):
    return fuzz(*task)


def run_all(count: int, readers=READERS, workers: int = 2, chunks: int = 4) -> list[dict]:
    """Fuzz every reader with `count` inputs each, spread over `workers` spawned processes."""
    per = [count // chunks + (1 if i < count % chunks else 0) for i in range(chunks)]
    tasks = [(reader, per[i], i) for reader in readers for i in range(chunks) if per[i]]
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_fuzz_task, tasks, chunksize=1)
    else:
        parts = [_fuzz_task(t) for t in tasks]
    results = []
    for reader in readers:
        mine = [p for p in parts if p["reader"] == reader]
        kinds: dict[str, int] = {}
        for p in mine:
            for k, v in p["kinds"].items():
                kinds[k] = kinds.get(k, 0) + v
        results.append({"reader": reader, "inputs": sum(p["inputs"] for p in mine),
                        "refused": sum(p["refused"] for p in mine), "unexpected": sum(p["unexpected"] for p in mine),
                        "kinds": kinds, "examples": [e for p in mine for e in p["examples"]][:3],
                        "seconds": round(sum(p["seconds"] for p in mine), 1)})
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="inputs per reader")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--readers", default=",".join(READERS))
    args = parser.parse_args(argv)
    from bench.common import machine_line, print_table

    readers = [r for r in args.readers.split(",") if r]
    print(machine_line())
    t0 = time.perf_counter()
    results = run_all(args.count, readers, args.workers)
    print_table(["reader", "inputs", "refused (app error)", "unexpected exceptions", "seconds (cpu)"],
                [[r["reader"], r["inputs"], r["refused"], r["unexpected"], r["seconds"]] for r in results])
    for r in results:
        for kind, n in r["kinds"].items():
            print(f"  {r['reader']}: {n} x {kind}")
        for e in r["examples"]:
            print(f"    e.g. {e['input']}: {' | '.join(e['where'])}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    print(json.dumps({"fuzz": {r["reader"]: {"inputs": r["inputs"], "unexpected": r["unexpected"]} for r in results},
                      "unexpected_total": sum(r["unexpected"] for r in results)}))
    return 0 if all(r["unexpected"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
