"""Hyperparameter search: grid/random/bayes finish with a table, pruned and failed trials are
recorded as such, a killed search resumes, a cancel keeps the finished trials, spaces are checked."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.core.checkpoint import load_run
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.errors import ConfigError
from app.core.search import read_search, run_search, spec_from_settings
from app.core.search_space import apply_settings, parse_space

ROOT = Path(__file__).resolve().parents[2]


def _spec(space, epochs=2, **options):
    options.setdefault("jobs", 1)
    return spec_from_settings(DataConfig(spec="digits"), ModelConfig(kind="vae", latent_dim=4, hidden=(32,)),
                              TrainConfig(epochs=epochs, batch_size=64, device="cpu"), space, **options)


def test_grid_of_four_finishes_with_a_table_and_records_pruned_trials(tmp_path):
    # lr from hopeless to good: successive halving stops the trials that trail after epoch 1.
    spec = _spec("lr = [1e-8, 1e-5, 3e-3, 1e-2]\n", epochs=3, method="grid", trials=4, pruner="halving",
                 objective="reconstruction_error")
    result = run_search(tmp_path / "s", spec)
    rows = result.rows
    assert [r["trial"] for r in rows] == [0, 1, 2, 3]
    assert sorted(r["lr"] for r in rows) == [1e-8, 1e-5, 3e-3, 1e-2]
    assert {r["state"] for r in rows} <= {"complete", "pruned"} and "complete" in {r["state"] for r in rows}
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned, rows
    assert all(r["epochs"] < 3 and r["message"].startswith("pruned after epoch") for r in pruned)
    assert result.best["lr"] in (3e-3, 1e-2) and result.best["value"] > 0
    for r in rows:   # every trial is a normal run directory, written by the core training session
        run_dir = tmp_path / "s" / r["run_dir"]
        run = load_run(run_dir)
        assert run.meta["metrics"]["search_trial"] == r["trial"]
        assert run.meta["metrics"]["finished"] == ("pruned" if r["state"] == "pruned" else "completed")
        assert len(run.history) == r["epochs"]
        assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"   # followable live
        assert not (run_dir / "autosave").exists()   # a killed trial runs again from its start
    header = (tmp_path / "s" / "results.csv").read_text().splitlines()[0]
    assert header.startswith("trial,state,value,seconds,epochs,lr")


def test_random_search_runs_two_jobs_and_a_failing_trial_does_not_stop_it(tmp_path):
    # rnn-ae refuses image data: those trials fail with the model's message, the others go on.
    spec = _spec('model = ["vae", "rnn-ae"]\nlr = { low = 1e-3, high = 1e-2, log = true }\n', method="random",
                 trials=5, jobs=2, pruner="none")
    result = run_search(tmp_path / "s", spec)
    states = [r["state"] for r in result.rows]
    assert len(result.rows) == 5 and set(states) <= {"complete", "failed"}
    failed = [r for r in result.rows if r["state"] == "failed"]
    complete = [r for r in result.rows if r["state"] == "complete"]
    assert complete and all(r["kind"] == "vae" for r in complete)
    assert all(r["kind"] == "rnn-ae" and "refused: rnn-ae needs sequence data" in r["message"] for r in failed)
    assert len({r["lr"] for r in result.rows}) == 5   # two workers with different seeds never repeat a draw
    assert read_search(tmp_path / "s")[1] == result.rows  # the window's reader sees the same table


def _counted_done(out: Path) -> int:
    _, rows = read_search(out)
    return sum(r["state"] in ("complete", "pruned", "failed") for r in rows)


def test_bayes_search_resumes_after_its_process_is_killed(tmp_path):
    out = tmp_path / "s"
    space = tmp_path / "space.toml"
    space.write_text("lr = { low = 1e-3, high = 1e-2, log = true }\nlatent_dim = [2, 4]\n")
    command = [sys.executable, str(ROOT / "main.py"), "search", "--data", "digits", "--model", "vae", "--hidden", "32",
               "--space", str(space), "--trials", "5", "--method", "bayes", "--jobs", "1", "--out", str(out),
               "--epochs", "25", "--pruner", "none", "--device", "cpu"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not ((out / "journal.log").exists() and _counted_done(out) >= 1):
            time.sleep(0.3)
        assert _counted_done(out) >= 1, "the search never finished a trial"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    before = {r["trial"]: r for r in read_search(out)[1] if r["state"] == "complete"}
    # The orphaned worker notices its supervisor is gone and stops its trial; give it a moment.
    time.sleep(1.5)
    result = run_search(out)   # no spec: resumed from search.json
    rows = result.rows
    counted = [r for r in rows if r["state"] in ("complete", "pruned", "failed")]
    assert len(counted) == 5, rows
    assert all(r["state"] in ("cancelled", "interrupted") for r in rows if r not in counted)
    for number, row in before.items():   # finished trials are kept as they were
        kept = next(r for r in rows if r["trial"] == number)
        assert kept["value"] == row["value"] and kept["lr"] == row["lr"]


def test_cancel_stops_running_trials_and_keeps_finished_ones(tmp_path):
    spec = _spec("lr = { low = 1e-3, high = 1e-2, log = true }\n", epochs=40, method="random", trials=50,
                 pruner="none")
    cancel = threading.Event()
    seen = []

    def on_progress(progress):
        seen.append(progress)
        if progress.complete >= 1:
            cancel.set()

    started = time.monotonic()
    result = run_search(tmp_path / "s", spec, on_progress=on_progress, cancel=cancel, poll_s=0.2)
    assert result.cancelled and time.monotonic() - started < 120
    states = [r["state"] for r in result.rows]
    assert states.count("complete") >= 1 and len(states) < 50
    assert set(states) <= {"complete", "cancelled", "waiting"}
    assert states.count("waiting") == states.count("cancelled")   # queued to run again on resume
    assert seen[-1].eta_s is not None and "ETA" in seen[-1].line("val_loss")
    assert not (tmp_path / "s" / "search.pid").exists()


def test_resuming_with_a_different_space_is_refused(tmp_path):
    run_search(tmp_path / "s", _spec("lr = [1e-3, 2e-3]\n", epochs=1, method="grid", trials=2, pruner="none"))
    with pytest.raises(ConfigError, match="holds a different search"):
        run_search(tmp_path / "s", _spec("lr = [1e-3, 5e-3]\n", epochs=1, method="grid", trials=2, pruner="none"))


@pytest.mark.parametrize("text,message", [
    ("learning_rate = [1e-3]", "'learning_rate' is not a setting"),
    ("lr = { low = 1e-2, high = 1e-3 }", "low (0.01) must be below high"),
    ("beta = { low = 0, high = 4, log = true }", "a log range needs low > 0"),
    ('model = ["vae", "transformer"]', "'transformer' is not one of"),
    ("latent_dim = { low = 2.5, high = 8 }", "takes whole numbers"),
    ("hidden = [64, 32]", "lists of positive whole numbers"),
    ("seed = [1, 2]", "fixed per search"),
    ("lr = ", "not valid TOML"),
])
def test_bad_spaces_say_what_is_wrong(text, message):
    with pytest.raises(ConfigError) as info:
        parse_space(text)
    assert message in str(info.value)


def test_space_grid_and_settings():
    space = parse_space('lr = { low = 1e-4, high = 1e-2, log = true }\nhidden = [[64], [128, 64]]\nmodel = ["ae"]\n'
                        'latent_dim = { low = 2, high = 8, steps = 4 }\n')
    grid = space.grid()
    assert grid["lr"] == [1e-4, 1e-3, 1e-2] and grid["hidden"] == ["64", "128,64"] and grid["latent_dim"] == [2, 4, 6, 8]
    assert space.grid_size() == 3 * 2 * 1 * 4
    model, train = apply_settings(ModelConfig(), TrainConfig(), {"hidden": "128,64", "kind": "ae", "lr": 0.01})
    assert model.hidden == (128, 64) and model.kind == "ae" and train.lr == 0.01


def test_cli_search_prints_a_table_and_json(tmp_path, capsys):
    from app.cli import main

    space = tmp_path / "space.toml"
    space.write_text("latent_dim = [2, 4]\n")
    args = ["search", "--data", "digits", "--model", "ae", "--hidden", "16", "--space", str(space), "--method", "grid",
            "--trials", "2", "--out", str(tmp_path / "s"), "--epochs", "1", "--device", "cpu",
            "--objective", "probe_accuracy", "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["direction"] == "maximize" and len(report["trials"]) == 2
    assert 0.1 < report["best"]["value"] <= 1.0
    assert "trials 2/2" in captured.err and "best: trial" in captured.err
    assert main(["search", "--out", str(tmp_path / "s"), "--json"]) == 0   # resumed: nothing left to do
    assert len(json.loads(capsys.readouterr().out)["trials"]) == 2
    assert os.path.exists(tmp_path / "s" / "journal.log")


def test_an_interrupted_grid_point_is_run_again_on_resume(tmp_path):
    from app.core.search import open_study, prepare_search_dir
    from app.core.search_space import suggest

    spec = _spec("lr = [1e-3, 2e-3, 4e-3]\n", epochs=1, method="grid", trials=3, pruner="none")
    spec = prepare_search_dir(tmp_path / "s", spec)
    from app.core.search import make_sampler
    study = open_study(tmp_path / "s", spec, sampler=make_sampler(spec, spec.parsed_space(), 0))
    trial = study.ask()     # a worker took a grid point and died without telling
    taken = suggest(trial, spec.parsed_space(), "grid")["lr"]
    result = run_search(tmp_path / "s")
    done = [r for r in result.rows if r["state"] == "complete"]
    assert sorted(r["lr"] for r in done) == [1e-3, 2e-3, 4e-3]
    assert [r["state"] for r in result.rows if r["trial"] == trial.number] == ["interrupted"]
    assert any(r["lr"] == taken for r in done)
    assert result.messages and "will run again" in result.messages[0]
