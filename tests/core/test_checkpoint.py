"""Run directories: exact round trip, and refusal of anything incomplete, corrupt or hostile."""

import json
import pickle
import struct

import numpy as np
import pytest
import torch

from app.core.checkpoint import load_run, save_run
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.errors import CheckpointError
from app.core.session import data_info, encode, prepare_training
from app.core.trainer import train_to_end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data_cfg = DataConfig(spec="digits")
    train_cfg = TrainConfig(epochs=2, batch_size=64)
    prepared = prepare_training(data_cfg, ModelConfig(kind="vae", latent_dim=3, hidden=(32,)), train_cfg)
    train_to_end(prepared.trainer)
    run_dir = tmp_path_factory.mktemp("run")
    save_run(run_dir, prepared.model, data_cfg=data_cfg, train_cfg=train_cfg, modality="image",
             data_info=data_info(prepared.data), history=prepared.trainer.history, metrics={"note": "test"})
    return prepared, run_dir


def copy_run(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("kind", ["ae", "sparse", "denoising", "contractive", "vae", "conv-ae", "conv-vae", "aae"])
def test_round_trip_gives_identical_outputs(kind, tmp_path):
    data_cfg, train_cfg = DataConfig(spec="digits", limit=300), TrainConfig(epochs=1, batch_size=64)
    prepared = prepare_training(data_cfg, ModelConfig(kind=kind, latent_dim=3, hidden=(32,), channels=(4, 8)), train_cfg)
    train_to_end(prepared.trainer)
    save_run(tmp_path, prepared.model, data_cfg=data_cfg, train_cfg=train_cfg, modality="image",
             history=prepared.trainer.history)
    run = load_run(tmp_path)
    x = prepared.data.x[:50]
    np.testing.assert_array_equal(encode(prepared.model, x), encode(run.model, x))
    assert run.model_cfg.kind == kind and len(run.history) == 1


def test_rnn_round_trip(tmp_path):
    data_cfg, train_cfg = DataConfig(spec="sines", n_samples=200), TrainConfig(epochs=1, batch_size=32)
    prepared = prepare_training(data_cfg, ModelConfig(kind="rnn-ae", latent_dim=3, rnn_hidden=16), train_cfg)
    train_to_end(prepared.trainer)
    save_run(tmp_path, prepared.model, data_cfg=data_cfg, train_cfg=train_cfg, modality="sequence")
    x = prepared.data.x[:20]
    np.testing.assert_array_equal(encode(prepared.model, x), encode(load_run(tmp_path).model, x))


def test_metadata_explains_the_model(trained):
    _, run_dir = trained
    meta = json.loads((run_dir / "model.json").read_text())
    assert meta["kind"] == "vae" and meta["input_shape"] == [1, 8, 8] and meta["loss"] == "bce"
    assert meta["data"]["spec"] == "digits" and meta["data_info"]["n"] == 1797
    assert meta["versions"]["torch"] == torch.__version__
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,train_loss,val_loss") and "train_kl" in header


def test_missing_or_empty_files_say_no_finished_checkpoint(trained, tmp_path):
    _, run_dir = trained
    with pytest.raises(CheckpointError, match="no such run"):
        load_run(tmp_path / "nope")
    no_meta = copy_run(run_dir, tmp_path / "a")
    (no_meta / "model.json").unlink()
    with pytest.raises(CheckpointError, match="no finished checkpoint"):
        load_run(no_meta)
    empty = copy_run(run_dir, tmp_path / "b")
    (empty / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_run(empty)


@pytest.mark.parametrize("damage", ["truncate", "random", "flip"])
def test_damaged_weights_are_refused(trained, tmp_path, damage):
    _, run_dir = trained
    bad = copy_run(run_dir, tmp_path / damage)
    blob = (bad / "model.safetensors").read_bytes()
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "random":
        blob = np.random.default_rng(0).bytes(len(blob))
    else:
        blob = blob[:-10] + bytes(b ^ 0xFF for b in blob[-10:])
    (bad / "model.safetensors").write_bytes(blob)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_run(bad)


def test_a_pickle_checkpoint_is_refused_without_running_it(trained, tmp_path):
    _, run_dir = trained
    bad = copy_run(run_dir, tmp_path / "pickled")

    class Exploit:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    (bad / "model.safetensors").write_bytes(pickle.dumps({"weights": Exploit()}))
    with pytest.raises(CheckpointError):
        load_run(bad)
    assert not (tmp_path / "pwned").exists()


def test_lying_safetensors_header_is_refused(trained, tmp_path):
    _, run_dir = trained
    bad = copy_run(run_dir, tmp_path / "liar")
    header = json.dumps({"encoder.0.weight": {"dtype": "F32", "shape": [100000, 100000],
                                              "data_offsets": [0, 40000000000]}}).encode()
    blob = struct.pack("<Q", len(header)) + header + b"\0" * 64
    (bad / "model.safetensors").write_bytes(blob)
    meta = json.loads((bad / "model.json").read_text())
    import hashlib
    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()  # a forger can match the checksum
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_run(bad)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(kind="transformer"), "kind"),
    (lambda m: m["model"].update(kind="transformer"), "kind"),
    (lambda m: m.pop("input_shape"), "missing field"),
    (lambda m: m.update(input_shape=[1, 100000, 100000]), "absurd"),
    (lambda m: m["model"].update(hidden=[10 ** 9]), "hidden"),
    (lambda m: m["model"].update(hidden=[60000, 60000, 60000]), "parameters"),
    (lambda m: m["model"].update(latent_dim=-3), "latent_dim"),
    (lambda m: m.update(format_version=99), "newer"),
    (lambda m: m.update(format="something-else"), "not a Latent Explorer"),
])
def test_hostile_or_broken_model_json_is_refused_before_building(trained, tmp_path, edit, message):
    _, run_dir = trained
    bad = copy_run(run_dir, tmp_path / "meta")
    meta = json.loads((bad / "model.json").read_text())
    edit(meta)
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message):
        load_run(bad)


def test_tensor_shape_mismatch_is_refused(trained, tmp_path):
    _, run_dir = trained
    bad = copy_run(run_dir, tmp_path / "shape")
    meta = json.loads((bad / "model.json").read_text())
    meta["model"]["latent_dim"] = 5
    meta["latent_dim"] = 5
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="needs"):
        load_run(bad)


def test_not_json_is_refused(trained, tmp_path):
    _, run_dir = trained
    bad = copy_run(run_dir, tmp_path / "garbage")
    (bad / "model.json").write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(CheckpointError, match="model.json"):
        load_run(bad)


def test_save_to_a_read_only_place_keeps_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    prepared, run_dir = trained
    target = copy_run(run_dir, tmp_path / "keep")
    before = {f.name: f.read_bytes() for f in target.iterdir()}

    import app.core.checkpoint as checkpoint

    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", disk_full)
    with pytest.raises(CheckpointError, match="No space left"):
        save_run(target, prepared.model, data_cfg=DataConfig(), train_cfg=TrainConfig(), modality="image")
    assert {f.name: f.read_bytes() for f in target.iterdir()} == before
    load_run(target)
