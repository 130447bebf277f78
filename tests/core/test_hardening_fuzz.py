"""Fuzzing the checkpoint reader: random and mutated model.safetensors / model.json bytes, and
structure-aware edits of model.json. Only the app's own errors (LatentExplorerError) may escape
load_run; a crash of any other type is a bug. bench/fuzz_readers.py runs >= 10,000 inputs per
reader, the data loaders included."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the project root, for bench/
from bench.fuzz_readers import apply_mutations, json_values, mutations  # noqa: E402

from app.core.checkpoint import load_run, save_run  # noqa: E402
from app.core.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from app.core.errors import LatentExplorerError  # noqa: E402
from app.core.models import build_model  # noqa: E402

def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
                    derandomize=True, database=None)


@pytest.fixture(scope="module")
def valid_run():
    folder = Path(tempfile.mkdtemp(prefix="fuzz-ckpt-"))
    model = build_model(ModelConfig(kind="vae", latent_dim=3, hidden=(16,)), (1, 8, 8), "image", "bce")
    save_run(folder / "valid", model, data_cfg=DataConfig(), train_cfg=TrainConfig(), modality="image",
             history=[{"epoch": 1, "train_loss": 1.0}])
    weights = (folder / "valid" / "model.safetensors").read_bytes()
    meta = (folder / "valid" / "model.json").read_bytes()
    yield folder / "case", weights, meta
    shutil.rmtree(folder, ignore_errors=True)


def load_only_app_errors(run_dir: Path, weights: bytes, meta: bytes) -> None:
    run_dir.mkdir(exist_ok=True)
    (run_dir / "model.safetensors").write_bytes(weights)
    (run_dir / "model.json").write_bytes(meta)
    try:
        load_run(run_dir)
    except LatentExplorerError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)


def with_checksum(meta: bytes, weights: bytes) -> bytes:
    """model.json vouching for these weights, as a forger (or a buggy tool) would write it."""
    doc = json.loads(meta)
    doc["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    return json.dumps(doc).encode()


@fuzz(150)
@given(ops=mutations(), forge=st.booleans())
def test_mutated_weights(valid_run, ops, forge):
    run_dir, weights, meta = valid_run
    bad = apply_mutations(weights, ops)
    load_only_app_errors(run_dir, bad, with_checksum(meta, bad) if forge else meta)


@fuzz(50)
@given(blob=st.binary(max_size=4096), header=st.booleans())
def test_random_weights(valid_run, blob, header):
    run_dir, _, meta = valid_run
    if header:   # a plausible 8-byte length prefix, so the JSON header parser is reached
        blob = len(blob).to_bytes(8, "little") + blob
    load_only_app_errors(run_dir, blob, with_checksum(meta, blob))


@fuzz(100)
@given(ops=mutations())
@example(ops=[("insert", 0.5, b"1" * 5000)])                       # an integer too long for int()
@example(ops=[("replace", 0.0, b"[" * 100000)])                     # nested too deeply
def test_mutated_model_json_bytes(valid_run, ops):
    run_dir, weights, meta = valid_run
    load_only_app_errors(run_dir, weights, apply_mutations(meta, ops))


def _paths(doc, prefix=()):
    """Every key path in a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


@fuzz(250)
@given(data=st.data())
def test_structured_edits_of_model_json(valid_run, data):
    run_dir, weights, meta = valid_run
    doc = json.loads(meta)
    paths = list(_paths(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = data.draw(st.sampled_from(["replace", "delete"]))
            if action == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = data.draw(json_values())
        except (KeyError, IndexError, TypeError):
            continue   # an earlier edit removed or replaced the parent
    load_only_app_errors(run_dir, weights, json.dumps(doc).encode())


@fuzz(30)
@given(blob=st.binary(max_size=2048))
def test_random_model_json(valid_run, blob):
    run_dir, weights, _ = valid_run
    load_only_app_errors(run_dir, weights, blob)
