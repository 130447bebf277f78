"""The core training session (app/core/training_run.py): the CLI and the session write the same run
directory, and the session's events say what happened (collapse, a refused final save)."""

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from app import cli
from app.core.checkpoint import load_run, read_metrics
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.training_run import Epoch, Finished, Progress, Saved, TrainingRun, TrainingWarning

ARGS = ["--data", "digits", "--limit", "400", "--model", "vae", "--latent-dim", "3", "--hidden", "16",
        "--epochs", "2", "--batch-size", "64", "--device", "cpu", "--seed", "3"]
CONFIGS = (DataConfig(spec="digits", limit=400), ModelConfig(kind="vae", latent_dim=3, hidden=(16,)),
           TrainConfig(epochs=2, batch_size=64, device="cpu", seed=3))
VOLATILE = ("saved_at", "versions")   # when and with what it was written, not what was written


def _description(run_dir: Path) -> dict:
    meta = json.loads((run_dir / "model.json").read_text())
    return {k: v for k, v in meta.items() if k not in VOLATILE and k != "metrics"}, meta["metrics"]


def test_the_cli_and_the_session_write_the_same_run_directory(tmp_path, capsys):
    assert cli.main(["train", *ARGS, "--quiet", "--out", str(tmp_path / "cli")]) == 0
    err = capsys.readouterr().err
    assert f"python main.py {tmp_path / 'cli'}" in err          # says how to open it
    events = list(TrainingRun(*CONFIGS, out=tmp_path / "core").events())
    assert isinstance(events[-1], Finished) and events[-1].saved_to == tmp_path / "core"

    (cli_meta, cli_metrics), (core_meta, core_metrics) = _description(tmp_path / "cli"), _description(tmp_path / "core")
    assert cli_meta.keys() == core_meta.keys()
    for key in cli_meta:
        assert cli_meta[key] == core_meta[key], key
    timing = ("seconds",)        # wall-clock time per epoch differs between any two runs
    assert {k: v for k, v in cli_metrics.items() if k not in timing} == \
        {k: v for k, v in core_metrics.items() if k not in timing}
    cli_rows, core_rows = read_metrics(tmp_path / "cli" / "metrics.csv"), read_metrics(tmp_path / "core" / "metrics.csv")
    assert len(cli_rows) == len(core_rows) == 2
    for a, b in zip(cli_rows, core_rows):
        assert a.keys() == b.keys()
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    cli_run, core_run = load_run(tmp_path / "cli"), load_run(tmp_path / "core")
    for name, tensor in cli_run.model.state_dict().items():
        assert torch.equal(tensor, core_run.model.state_dict()[name]), name
    assert [p.name for p in sorted((tmp_path / "cli" / "autosave").iterdir())] == \
        [p.name for p in sorted((tmp_path / "core" / "autosave").iterdir())]


def test_events_come_in_order_with_rows_and_a_final_save(tmp_path):
    session = TrainingRun(*CONFIGS, out=tmp_path / "run")
    events = list(session.events())
    epochs = [e for e in events if isinstance(e, Epoch)]
    assert [e.result.epoch for e in epochs] == [1, 2] and all(e.epochs == 2 for e in epochs)
    assert epochs[0].row["epoch"] == 1 and "train_kl" in epochs[0].row
    saved = [e for e in events if isinstance(e, Saved)]
    assert [e.kind for e in saved] == ["autosave", "autosave", "final"]
    assert all(isinstance(e, (Progress, Epoch, Saved, TrainingWarning)) for e in events[:-1])
    run = session.run
    assert run.history == session.history and len(run.history) == 2 and run.metrics["finished"] == "completed"
    assert run.metrics["best_epoch"] == session.trainer.best_epoch


def test_a_collapsed_vae_is_warned_about_once(tmp_path):
    configs = (DataConfig(spec="digits", limit=600), ModelConfig(kind="vae", latent_dim=4, hidden=(16,), beta=500.0),
               TrainConfig(epochs=4, batch_size=64, lr=2e-3, device="cpu"))
    events = list(TrainingRun(*configs).events())            # no out: nothing saved at the end
    warnings = [e.text for e in events if isinstance(e, TrainingWarning) and "posterior collapse" in e.text]
    assert len(warnings) == 1 and "beta (now 500)" in warnings[0]
    assert isinstance(events[-1], Finished) and events[-1].saved_to is None and events[-1].ok
    plain = list(TrainingRun(configs[0], ModelConfig(kind="ae", latent_dim=4, hidden=(16,)), configs[2]).events())
    assert not [e for e in plain if isinstance(e, TrainingWarning) and "collapse" in e.text]   # no code prior


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_a_read_only_run_folder_is_rescued_under_the_autosave_root(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_AUTOSAVE_DIR", str(tmp_path / "rescue"))
    out = tmp_path / "locked"
    out.mkdir()
    session = TrainingRun(*CONFIGS, out=out, autosave_dir=tmp_path / "autosave")
    out.chmod(0o500)     # read-only: the final save must fail
    try:
        events = list(session.events())
    finally:
        out.chmod(0o700)
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.ok and finished.save_error is not None
    assert "could not save the run" in finished.save_error
    rescued = [e for e in events if isinstance(e, Saved) and e.kind == "rescued"]
    assert len(rescued) == 1 and finished.saved_to == rescued[0].path
    assert rescued[0].path.parent == tmp_path / "rescue" and len(load_run(rescued[0].path).history) == 2
    assert not (out / "model.json").exists()
