"""The headless CLI, run as a user would: in a subprocess, reading its output."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT.parent / "shared" / "data" / "mnist"


def cli(*args, check=True):
    out = subprocess.run([sys.executable, "main.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_models_and_datasets_list_one_line_each():
    models = cli("models").stdout.splitlines()
    kinds = [line.split()[0] for line in models]
    assert kinds == ["ae", "sparse", "denoising", "contractive", "vae", "beta-tcvae", "conv-ae", "conv-vae", "rnn-ae",
                     "aae"]
    datasets = cli("datasets").stdout
    for name in ("digits", "shapes", "sines", ".npz", ".csv"):
        assert name in datasets


def test_train_then_evaluate(tmp_path):
    run = tmp_path / "run"
    out = cli("train", "--data", "digits", "--model", "vae", "--latent-dim", "3", "--hidden", "32",
              "--epochs", "2", "--batch-size", "64", "--out", run, "--quiet")
    assert "epoch   2/2" in out.stderr
    assert (run / "model.safetensors").exists() and (run / "model.json").exists()
    assert len((run / "metrics.csv").read_text().splitlines()) == 3
    report = json.loads(cli("evaluate", run, "--json").stdout)
    assert report["n"] == 359 and report["split"] == "validation" and report["kind"] == "vae"   # held out by default
    assert report["loss"] > report["reconstruction_error"] > 0


@pytest.mark.skipif(not MNIST.exists(), reason="MNIST test set not present")
def test_evaluate_on_other_data_checks_the_shape(tmp_path):
    run = tmp_path / "run"
    cli("train", "--data", "digits", "--model", "ae", "--latent-dim", "2", "--hidden", "16", "--epochs", "1",
        "--out", run, "--quiet")
    out = cli("evaluate", run, "--data", MNIST, "--json", check=False)
    assert out.returncode == 1
    assert "28x28" in out.stderr and "8x8" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "no/such/file.npz", "--out", "x"], "no/such/file.npz"),
    (["train", "--data", "digits", "--model", "conv-vae", "--out", "x", "--hidden", "4,a"], "--hidden"),
    (["train", "--data", "sines", "--model", "conv-vae", "--out", "x"], "conv-vae"),
    (["evaluate", "no/such/run"], "no such run"),
])
def test_bad_input_is_one_line_without_traceback(args, message, tmp_path):
    out = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 1
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") <= 2


def test_export_writes_latents_and_scores(tmp_path):
    run = tmp_path / "run"
    cli("train", "--data", "shapes", "--n-samples", "600", "--model", "vae", "--latent-dim", "3", "--hidden", "32",
        "--epochs", "1", "--batch-size", "64", "--out", run, "--quiet")
    latents, scores, grid = tmp_path / "z.csv", tmp_path / "s.csv", tmp_path / "t.png"
    cli("export", run, "--latents", latents, "--scores", scores, "--traversal", grid)
    rows = latents.read_text().splitlines()
    assert rows[0] == "z0,z1,z2,label,factor_shape,factor_scale,factor_rotation,factor_x,factor_y"
    assert len(rows) == 601
    score_rows = scores.read_text().splitlines()
    assert score_rows[0] == "index,score,label,flagged" and len(score_rows) == 601
    flagged = sum(int(r.split(",")[3]) for r in score_rows[1:])
    assert 20 <= flagged <= 40   # above the 95th percentile
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_flag_shows_a_readable_value_name():
    from app.cli import build_parser

    parser = build_parser()
    help_text = parser.format_help()
    assert "python main.py RUN_DIR" in help_text
    for command in ("train", "evaluate", "export", "search", "transfer"):
        text = parser._subparsers._group_actions[0].choices[command].format_help()
        assert "CONFIG." not in text and "DATACONFIG" not in text, command
    train = parser._subparsers._group_actions[0].choices["train"].format_help()
    assert "--val-fraction X" in train and "--latent-dim N" in train and "--data SPEC" in train
    assert "--out RUN_DIR" in train and "--hidden N,N" in train


def test_an_unknown_word_is_an_unknown_command_not_a_window(capsys):
    from app.__main__ import main

    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err and "train" in err and "evaluate" in err
