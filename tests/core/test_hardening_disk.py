"""Disk full and read-only folders: a clear CheckpointError, the previous checkpoint intact and
loadable, and the trained model still in memory (so nothing is lost).

Disk full is a real file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored, so write() fails with
EFBIG) in a subprocess. Read-only is simulated by making the file system calls fail with EACCES /
EROFS: the suite runs as root here, and root ignores a folder's permission bits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch

from app.core.checkpoint import PREVIOUS_WEIGHTS, load_run, save_run
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.errors import CheckpointError
from app.core.session import prepare_training
from app.core.trainer import train_to_end

ROOT = Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")


def snapshot(folder: Path) -> dict:
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}


@pytest.fixture(scope="module")
def trained():
    prepared = prepare_training(DataConfig(spec="digits", limit=300), ModelConfig(kind="ae", latent_dim=2, hidden=(32,)),
                                TrainConfig(epochs=1, batch_size=50))
    train_to_end(prepared.trainer)
    return prepared


def save(prepared, run_dir):
    return save_run(run_dir, prepared.model, data_cfg=DataConfig(spec="digits", limit=300),
                    train_cfg=prepared.trainer.cfg, modality="image", history=prepared.trainer.history)


# ---- disk full: a real file-size limit --------------------------------------------------------

DISK_FULL = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # else the kernel kills us instead of failing write()
    import torch
    from app.core.autosave import Autosaver
    from app.core.checkpoint import load_run, save_run
    from app.core.config import DataConfig, ModelConfig, TrainConfig
    from app.core.errors import CheckpointError
    from app.core.session import prepare_training

    run = Path(sys.argv[1])
    data_cfg = DataConfig(spec="digits", limit=300)
    prepared = prepare_training(data_cfg, ModelConfig(kind="ae", latent_dim=2, hidden=(64,)),
                                TrainConfig(epochs=2, batch_size=50))
    trainer = prepared.trainer
    list(trainer.run())
    save = lambda: save_run(run, prepared.model, data_cfg=data_cfg, train_cfg=trainer.cfg, modality="image",
                            history=trainer.history)
    save()
    before = {f.name: f.read_bytes().hex() for f in run.iterdir() if f.is_file()}
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))      # the weights are ~50 KB: the disk is "full"
    # Training goes on while autosave fails every epoch.
    saver = Autosaver(run / "autosave", data_cfg=data_cfg, train_cfg=trainer.cfg, modality="image")
    trainer.cfg.epochs = 2                                        # two more epochs, history 4 rows
    events = [e for e in trainer.run() if saver.on_event(e, prepared.model, trainer.history) or True]
    try:
        save()
        error = None
    except CheckpointError as exc:
        error = str(exc)
    after = {f.name: f.read_bytes().hex() for f in run.iterdir() if f.is_file()}
    previous = load_run(run)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))      # space freed: the model in memory is saved
    save()
    rescued = load_run(run)
    same = all(torch.equal(a, b) for a, b in zip(rescued.model.state_dict().values(),
                                                  prepared.model.state_dict().values()))
    print(json.dumps({"error": error, "unchanged": before == after, "previous_epochs": len(previous.history),
                      "finished": events[-1].reason, "autosave_errors": saver.errors,
                      "rescued_epochs": len(rescued.history), "rescued_same_weights": same,
                      "leftovers": sorted(p.name for p in run.iterdir() if p.name.startswith("."))}))
""")


@posix_only
def test_disk_full_keeps_the_previous_checkpoint_and_the_trained_model(tmp_path):
    out = subprocess.run([sys.executable, "-c", DISK_FULL, str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["error"] is not None and "File too large" in result["error"]
    assert "free some space" in result["error"] and "previous checkpoint there is intact" in result["error"]
    assert result["unchanged"] and result["previous_epochs"] == 2
    assert result["finished"] == "completed"                   # autosave failures did not stop training
    assert len(result["autosave_errors"]) == 2
    assert all("could not autosave" in e and "File too large" in e for e in result["autosave_errors"])
    assert result["rescued_epochs"] == 4 and result["rescued_same_weights"]
    assert result["leftovers"] == []                           # no temporaries left behind


@posix_only
def test_cli_on_a_full_disk_prints_the_reason_without_a_traceback(tmp_path):
    def limit_file_size():
        import resource
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    env = {**os.environ, "LATENT_EXPLORER_AUTOSAVE_DIR": str(tmp_path / "rescue")}
    out = subprocess.run([sys.executable, "main.py", "train", "--data", "digits", "--limit", "300", "--model", "ae",
                          "--hidden", "64", "--latent-dim", "2", "--epochs", "2", "--batch-size", "50", "--quiet",
                          "--out", str(tmp_path / "run")], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300, preexec_fn=limit_file_size)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "warning: autosave failed, training continues" in out.stderr and "epoch   2/2" in out.stderr
    assert "error: could not save the run" in out.stderr and "File too large" in out.stderr
    assert "could not save it elsewhere either" in out.stderr


def test_cli_saves_elsewhere_when_the_run_folder_refuses_the_final_save(tmp_path, monkeypatch, capsys):
    """The final save fails (read-only folder): the trained model goes to the autosave root."""
    import app.core.checkpoint as checkpoint
    from app import cli

    real_save = checkpoint.save_run
    out_dir = tmp_path / "run"

    def refuse_run_folder(run_dir, *args, **kwargs):
        if Path(run_dir) == out_dir:
            raise CheckpointError(f"could not save the run to {run_dir}: Read-only file system")
        return real_save(run_dir, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_run", refuse_run_folder)
    monkeypatch.setenv("LATENT_EXPLORER_AUTOSAVE_DIR", str(tmp_path / "rescue"))
    code = cli.main(["train", "--data", "digits", "--limit", "300", "--model", "ae", "--hidden", "8", "--latent-dim",
                     "2", "--epochs", "1", "--batch-size", "50", "--quiet", "--out", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 1 and "Read-only file system" in err and "saved to" in err
    rescued = list((tmp_path / "rescue").glob("rescued-*"))
    assert len(rescued) == 1 and len(load_run(rescued[0]).history) == 1


# ---- read-only / failing file system calls, at every stage of a save --------------------------

def fail_nth(monkeypatch, module, name, n, error):
    real = getattr(module, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


READ_ONLY = PermissionError(13, "Permission denied")
EROFS = OSError(30, "Read-only file system")
ENOSPC = OSError(28, "No space left on device")


@pytest.mark.parametrize("module, name, n, error, reason", [
    (tempfile, "mkstemp", 1, READ_ONLY, "Permission denied"),         # cannot even create the weights temp file
    (tempfile, "mkstemp", 2, EROFS, "Read-only file system"),         # metrics.csv
    (tempfile, "mkstemp", 3, READ_ONLY, "Permission denied"),         # model.json
    (os, "replace", 1, READ_ONLY, "Permission denied"),               # keeping the previous weights
    (os, "replace", 2, EROFS, "Read-only file system"),               # the weights rename
    (os, "replace", 4, READ_ONLY, "Permission denied"),               # the model.json rename
    (os, "fsync", 1, ENOSPC, "No space left"),                        # data did not fit
    (os, "fsync", 2, OSError(5, "Input/output error"), "Input/output error"),   # folder fsync after the rename
    (os, "fsync", 3, ENOSPC, "No space left"),
    (os, "fsync", 4, ENOSPC, "No space left"),                        # metrics.csv's folder fsync
    (os, "fsync", 5, ENOSPC, "No space left"),                        # model.json's data
    (os, "link", 1, READ_ONLY, None),                                 # no hard links: copies instead, saves fine
    (os, "mkdir", 1, READ_ONLY, "Permission denied"),                 # a new run folder cannot be created
])
def test_a_failed_save_at_any_stage_keeps_the_previous_checkpoint(trained, tmp_path, monkeypatch, module, name, n,
                                                                  error, reason):
    run_dir = tmp_path / ("new" if name == "mkdir" else "run")
    if name != "mkdir":
        save(trained, run_dir)
        before = snapshot(run_dir)
        old_weights = {k: v.clone() for k, v in load_run(run_dir).model.state_dict().items()}
    with torch.no_grad():
        for p in trained.model.parameters():
            p.add_(0.5)                       # the model in memory moved on since that save
    try:
        fail_nth(monkeypatch, module, name, n, error)
        if reason is None:
            save(trained, run_dir)
            monkeypatch.undo()
            loaded = load_run(run_dir)
            for a, b in zip(loaded.model.state_dict().values(), trained.model.state_dict().values()):
                assert torch.equal(a, b)
            return
        with pytest.raises(CheckpointError, match=reason) as caught:
            save(trained, run_dir)
        monkeypatch.undo()
        message = str(caught.value)
        assert str(run_dir) in message and "\n" not in message
        if name == "mkdir":
            assert not run_dir.exists()
            return
        loaded = load_run(run_dir)               # the previous checkpoint, complete
        for k, v in loaded.model.state_dict().items():
            assert torch.equal(v, old_weights[k]), k
        files = snapshot(run_dir)
        temporaries = [f for f in files if f.endswith(".tmp")]
        assert temporaries == []
        assert files["model.json"] == before["model.json"]
        if files != before:
            # the new weights were renamed in before the save failed: the old ones wait as the previous copy
            assert files[PREVIOUS_WEIGHTS] == before["model.safetensors"]
        save(trained, run_dir)                   # the folder is writable again: the model in memory is saved
        assert PREVIOUS_WEIGHTS not in snapshot(run_dir)
        for a, b in zip(load_run(run_dir).model.state_dict().values(), trained.model.state_dict().values()):
            assert torch.equal(a, b)
    finally:
        with torch.no_grad():
            for p in trained.model.parameters():
                p.sub_(0.5)
