"""Autosave: generations, the time trigger, recovery after a crash, and the CLI's autosave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from app.core.autosave import (AutosaveSession, Autosaver, default_autosave_root, discard_session, find_recoverable,
                               generations, latest_autosave, prune_sessions)
from app.core.checkpoint import load_run
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.errors import CheckpointError
from app.core.session import prepare_training
from app.core.trainer import TrainProgress

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def prepared():
    return prepare_training(DataConfig(spec="digits", limit=400), ModelConfig(kind="vae", latent_dim=3, hidden=(16,)),
                            TrainConfig(epochs=5, batch_size=50))


def saver_for(prepared, folder, **kwargs):
    return Autosaver(folder, data_cfg=DataConfig(spec="digits", limit=400), train_cfg=prepared.trainer.cfg,
                     modality="image", **kwargs)


def test_each_epoch_is_saved_and_only_the_last_two_generations_are_kept(prepared, tmp_path):
    saver = saver_for(prepared, tmp_path / "auto")
    saved = [p for e in prepared.trainer.run() if (p := saver.on_event(e, prepared.model, prepared.trainer.history))]
    assert [p.name for p in saved] == [f"gen-{i}" for i in range(1, 6)]
    assert [p.name for p in generations(tmp_path / "auto")] == ["gen-5", "gen-4"]
    assert sorted(os.listdir(tmp_path / "auto")) == ["gen-4", "gen-5"]      # no partial or trash folders left
    newest = load_run(latest_autosave(tmp_path / "auto"))
    assert len(newest.history) == 5 and newest.meta["metrics"]["autosave"]["epoch"] == 5
    for a, b in zip(newest.model.state_dict().values(), prepared.model.state_dict().values()):
        assert torch.equal(a, b)


def test_latest_autosave_skips_broken_generations(prepared, tmp_path):
    folder = tmp_path / "auto"
    saver = saver_for(prepared, folder, keep=3)
    for epoch in (1, 2, 3):
        saver.save(prepared.model, [], epoch=epoch)
    (folder / "gen-3" / "model.safetensors").write_bytes(b"\0" * 100)      # damaged after the fact
    assert latest_autosave(folder) == folder / "gen-2"
    (folder / "gen-2" / "model.json").unlink()
    assert latest_autosave(folder) == folder / "gen-1"
    (folder / ".gen-4.partial").mkdir()                                        # a save killed halfway
    assert latest_autosave(folder) == folder / "gen-1"
    assert latest_autosave(tmp_path / "nothing-here") is None
    saver.save(prepared.model, [], epoch=4)
    assert not (folder / ".gen-4.partial").exists() and (folder / "gen-5").is_dir()   # numbers never reused


def test_the_time_trigger_saves_inside_a_long_epoch(prepared, tmp_path):
    clock = {"now": 0.0}
    saver = saver_for(prepared, tmp_path / "auto", every_epochs=0, interval_s=120.0, clock=lambda: clock["now"])
    progress = TrainProgress(epoch=1, epochs=1, step=10, step_in_epoch=10, steps_per_epoch=1000, parts={},
                             samples_per_second=1.0, elapsed_s=1.0, eta_s=1.0, beta=1.0, lr=1e-3, skipped_steps=0)
    clock["now"] = 100.0
    assert saver.on_event(progress, prepared.model, []) is None
    clock["now"] = 121.0
    path = saver.on_event(progress, prepared.model, [])
    assert path is not None
    stamp = load_run(path).meta["metrics"]["autosave"]
    assert (stamp["epoch"], stamp["step"], stamp["partial_epoch"]) == (1, 10, True)
    clock["now"] = 200.0
    assert saver.on_event(progress, prepared.model, []) is None                # 79 s since the last save
    clock["now"] = 242.0
    assert saver.on_event(progress, prepared.model, []) is not None


def test_min_interval_thins_out_very_short_epochs(prepared, tmp_path):
    clock = {"now": 0.0}
    saver = saver_for(prepared, tmp_path / "auto", min_interval_s=10.0, clock=lambda: clock["now"])
    saved = []
    for event in prepared.trainer.run():
        clock["now"] += 4.0
        saved.append(saver.on_event(event, prepared.model, prepared.trainer.history))
    assert 1 <= sum(p is not None for p in saved) < 5


def test_a_failing_autosave_does_not_stop_training(prepared, tmp_path, monkeypatch):
    import app.core.atomic as atomic

    def no_space(*_a, **_k):
        raise OSError(28, "No space left on device")

    messages = []
    saver = saver_for(prepared, tmp_path / "auto", on_error=messages.append)
    monkeypatch.setattr(atomic.os, "fsync", no_space)
    events = [e for e in prepared.trainer.run() if saver.on_event(e, prepared.model, prepared.trainer.history) or True]
    assert events[-1].reason == "completed"
    assert len(saver.errors) == 5 and messages == saver.errors
    assert "No space left on device" in saver.last_error
    assert generations(tmp_path / "auto") == [] and os.listdir(tmp_path / "auto") == []
    monkeypatch.undo()
    assert saver.save(prepared.model, prepared.trainer.history, epoch=5) is not None   # space freed: saved


# ---- window sessions -------------------------------------------------------------------------

def test_default_root_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENT_EXPLORER_AUTOSAVE_DIR", str(tmp_path / "x"))
    assert default_autosave_root() == tmp_path / "x"
    monkeypatch.delenv("LATENT_EXPLORER_AUTOSAVE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_autosave_root() == tmp_path / "cache" / "latent-explorer" / "autosave"


def test_sessions_closed_cleanly_or_still_running_are_not_offered(prepared, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_AUTOSAVE_DIR", str(tmp_path))
    live = AutosaveSession.create(label="vae on digits")
    assert live.path.parent == tmp_path
    live.autosaver(data_cfg=DataConfig(), train_cfg=TrainConfig(), modality="image").save(prepared.model, [], epoch=1)
    assert find_recoverable() == []                      # its process (this one) holds the lock
    live.close()
    assert (live.path / "clean-exit").exists() and find_recoverable() == []
    empty = AutosaveSession.create()
    empty._lock_handle.close()                          # "crashed" before any autosave: nothing to offer
    assert find_recoverable() == []
    discard_session(empty.path)
    assert not empty.path.exists()


CRASHING_WINDOW = textwrap.dedent("""
    import os, signal, sys
    from app.core.autosave import AutosaveSession
    from app.core.config import DataConfig, ModelConfig, TrainConfig
    from app.core.session import prepare_training
    prepared = prepare_training(DataConfig(spec="digits", limit=300), ModelConfig(kind="ae", latent_dim=2,
                                hidden=(8,)), TrainConfig(epochs=3, batch_size=50))
    session = AutosaveSession.create(label="ae on digits")
    saver = session.autosaver(data_cfg=DataConfig(spec="digits", limit=300), train_cfg=prepared.trainer.cfg,
                              modality="image")
    for event in prepared.trainer.run():
        saver.on_event(event, prepared.model, prepared.trainer.history)
    print(session.path, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_crashed_session_is_offered_with_its_newest_generation(tmp_path):
    env = {**os.environ, "LATENT_EXPLORER_AUTOSAVE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", CRASHING_WINDOW], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == -9, out.stderr
    session_dir = Path(out.stdout.strip())
    found = find_recoverable(tmp_path)
    assert [r.session_dir for r in found] == [session_dir]
    assert found[0].checkpoint == session_dir / "gen-3" and found[0].info["label"] == "ae on digits"
    assert len(load_run(found[0].checkpoint).history) == 3
    assert prune_sessions(tmp_path, older_than_days=0) == 0    # recoverable: never pruned
    discard_session(session_dir)
    assert find_recoverable(tmp_path) == []


def test_prune_removes_old_clean_sessions(tmp_path):
    session = AutosaveSession.create(tmp_path)
    session.close()
    assert prune_sessions(tmp_path, older_than_days=1) == 0
    assert prune_sessions(tmp_path, older_than_days=0) == 1 and not session.path.exists()


def test_an_unwritable_root_is_a_clear_error(tmp_path, monkeypatch):
    def refuse(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(CheckpointError, match="Permission denied.*LATENT_EXPLORER_AUTOSAVE_DIR"):
        AutosaveSession.create(tmp_path / "ro")


# ---- the CLI ---------------------------------------------------------------------------------

def test_cli_train_autosaves_every_epoch(tmp_path):
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "main.py", "train", "--data", "digits", "--limit", "300", "--model", "ae",
                          "--hidden", "8", "--latent-dim", "2", "--epochs", "3", "--batch-size", "50", "--quiet",
                          "--out", str(run)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert [p.name for p in generations(run / "autosave")] == ["gen-3", "gen-2"]
    final, autosaved = load_run(run), load_run(run / "autosave" / "gen-3")
    assert len(final.history) == len(autosaved.history) == 3
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    assert torch.equal(final.model.encode(torch.as_tensor(x)), autosaved.model.encode(torch.as_tensor(x)))
    assert json.loads((run / "model.json").read_text())["metrics"]["finished"] == "completed"
    assert oct((run / "model.safetensors").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
