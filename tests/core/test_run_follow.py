"""Following a run directory that another process writes (app/core/run_follow.py) and the writer
side that keeps it readable (app/core/live_writer.py, run_status.py)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from app.core.checkpoint import save_run
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.run_follow import CheckpointLoaded, RowsAdded, RunFollower, StatusChanged
from app.core.run_status import read_status, write_status
from app.core.training_run import TrainingRun

HEADER = "epoch,train_loss,val_loss\n"


def rows_of(events):
    return [e for e in events if isinstance(e, RowsAdded)]


def test_partial_last_line_waits_until_complete(tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(HEADER + "1,3.5,4.0\n2,3.")
    follower = RunFollower(tmp_path)
    (first,) = rows_of(follower.poll())
    assert first.restarted and [r["epoch"] for r in first.rows] == [1.0]
    assert rows_of(follower.poll()) == []             # still half a line: nothing new
    with open(metrics, "a") as handle:
        handle.write("25,3.75\n")
    (second,) = rows_of(follower.poll())
    assert not second.restarted and second.rows == [{"epoch": 2.0, "train_loss": 3.25, "val_loss": 3.75}]


def test_atomic_rewrite_with_more_rows_is_tailed_and_a_changed_file_reread(tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(HEADER + "1,3.5,4.0\n")
    follower = RunFollower(tmp_path)
    follower.poll()
    tmp = tmp_path / "new.csv"                         # how the writer does it: a rename over the old file
    tmp.write_text(HEADER + "1,3.5,4.0\n2,3.0,3.5\n")
    os.replace(tmp, metrics)
    (added,) = rows_of(follower.poll())
    assert not added.restarted and [r["epoch"] for r in added.rows] == [2.0]
    metrics.write_text(HEADER + "1,9.0,9.5\n")          # shrank: a new run in the same folder
    (again,) = rows_of(follower.poll())
    assert again.restarted and again.rows == [{"epoch": 1.0, "train_loss": 9.0, "val_loss": 9.5}]
    metrics.write_text("epoch,train_loss,val_loss,beta\n1,9.0,9.5,1\n2,8.0,8.5,1\n")   # new column: re-read
    (rewritten,) = rows_of(follower.poll())
    assert rewritten.restarted and [r["beta"] for r in rewritten.rows] == [1.0, 1.0]


def _save_tiny(run_dir, seed):
    from app.core.session import make_model
    from app.core.data import load_dataset

    data_cfg, train_cfg = DataConfig(spec="digits"), TrainConfig(epochs=1)
    data = load_dataset(data_cfg)
    torch.manual_seed(seed)
    model = make_model(ModelConfig(kind="ae", latent_dim=2, hidden=(16,)), data, seed)
    save_run(run_dir, model, data_cfg=data_cfg, train_cfg=train_cfg, modality="image", history=[])
    return model


def test_new_checkpoint_is_loaded_once_and_a_half_written_one_retried(tmp_path):
    _save_tiny(tmp_path, 0)
    follower = RunFollower(tmp_path)
    assert not [e for e in follower.poll() if isinstance(e, CheckpointLoaded)]   # the one already shown
    model = _save_tiny(tmp_path, 1)
    weights = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(weights[: len(weights) // 2])   # a save cut short
    assert not [e for e in follower.poll() if isinstance(e, CheckpointLoaded)]
    (tmp_path / "model.safetensors").write_bytes(weights)
    (loaded,) = [e for e in follower.poll() if isinstance(e, CheckpointLoaded)]
    first = next(iter(model.state_dict()))
    assert torch.equal(loaded.run.model.state_dict()[first], model.state_dict()[first])
    assert not [e for e in follower.poll() if isinstance(e, CheckpointLoaded)]


def test_status_live_finished_and_writer_gone(tmp_path):
    write_status(tmp_path, "training", 1, 4)
    follower = RunFollower(tmp_path)
    (live,) = [e for e in follower.poll() if isinstance(e, StatusChanged)]
    assert live.state == "live" and not follower.done
    write_status(tmp_path, "finished", 4, 4, "completed")
    (done,) = [e for e in follower.poll() if isinstance(e, StatusChanged)]
    assert done.state == "finished" and done.status["reason"] == "completed" and follower.done
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    status = read_status(tmp_path) | {"state": "training", "pid": int(dead.stdout)}
    (tmp_path / "status.json").write_text(json.dumps(status))
    assert RunFollower(tmp_path).poll()[-1].state == "writer_gone"
    (tmp_path / "status.json").write_text("{not json")
    assert RunFollower(tmp_path).poll()[-1].state == "unknown"


def test_training_into_out_leaves_rows_checkpoint_and_finished_status(tmp_path):
    session = TrainingRun(DataConfig(spec="digits"), ModelConfig(kind="ae", latent_dim=2, hidden=(16,)),
                          TrainConfig(epochs=3, batch_size=256), out=tmp_path / "run")
    seen = []
    for event in session.events():
        if type(event).__name__ == "Epoch":
            seen.append((read_status(tmp_path / "run")["epoch"],
                         (tmp_path / "run" / "metrics.csv").read_text().count("\n") - 1))
    assert seen == [(1, 1), (2, 2), (3, 3)]          # each epoch's rows and status are on disk at once
    assert session.live.checkpoints >= 1
    status = read_status(tmp_path / "run")
    assert status["state"] == "finished" and status["epoch"] == 3 and status["pid"] == os.getpid()
    events = RunFollower(tmp_path / "run", known_sha256="").poll()
    assert [type(e).__name__ for e in events] == ["RowsAdded", "CheckpointLoaded", "StatusChanged"]
