"""Analysis of saved runs: PCA comparison, compare_runs, evaluate's report, and the CLI end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.core.analysis.compare_runs import compare_runs, format_table
from app.core.analysis.pca_baseline import compare_with_pca, side_by_side
from app.core.checkpoint import load_run, save_run
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.session import data_info, prepare_training
from app.core.trainer import train_to_end

ROOT = Path(__file__).resolve().parents[2]


def train_and_save(out: Path, data_cfg: DataConfig, model_cfg: ModelConfig) -> Path:
    prepared = prepare_training(data_cfg, model_cfg, TrainConfig(epochs=1, batch_size=64, seed=0, device="cpu"))
    finished = train_to_end(prepared.trainer)
    assert finished.ok, finished.message
    save_run(out, prepared.model, data_cfg=data_cfg, train_cfg=prepared.trainer.cfg, modality=prepared.data.modality,
             data_info=data_info(prepared.data), history=prepared.trainer.history)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    digits = train_and_save(root / "digits-ae", DataConfig(spec="digits"), ModelConfig(kind="ae", latent_dim=4, hidden=(32,)))
    shapes = train_and_save(root / "shapes-bvae", DataConfig(spec="shapes", n_samples=1200),
                            ModelConfig(kind="vae", latent_dim=4, hidden=(32,), beta=4.0))
    return digits, shapes


def test_compare_with_pca_uses_the_held_out_split_and_gives_the_curve(runs):
    run = load_run(runs[0])
    result = compare_with_pca(run)
    assert result.k == 4 and result.n_train + result.n_heldout == 1797
    assert len(result.curve.ks) == 65 and result.curve.errors[-1] < 1e-3
    assert result.pca_error == pytest.approx(result.curve.at(4))
    assert result.model_point == (4, result.model_error)
    originals, model_recon, pca_recon = side_by_side(run, _pca(run), np.zeros((3, 1, 8, 8), np.float32))
    assert originals.shape == model_recon.shape == pca_recon.shape == (3, 1, 8, 8)
    shown = result.pca_reconstructions(np.ones((2, 1, 8, 8), np.float32))
    assert shown.shape == (2, 1, 8, 8) and shown.min() >= 0.0 and shown.max() <= 1.0


def _pca(run):
    from app.core.analysis.pca_baseline import fit_pca
    from app.core.session import load_data_for_run
    return fit_pca(load_data_for_run(run).x, 4)


def test_compare_runs_table(runs, tmp_path):
    rows = compare_runs([*runs, tmp_path / "missing"])
    digits, shapes, missing = rows
    assert digits["kind"] == "ae" and digits["beta"] is None and digits["latent_dim"] == 4
    assert digits["train_loss"] > 0 and digits["val_loss"] > 0 and digits["epochs"] == 1
    assert digits["pca_reconstruction_error"] > 0 and 0 <= digits["linear_probe_accuracy"] <= 1
    assert digits["mig"] is None
    assert digits["active_units"] is None and shapes["active_units"] is not None   # VAE kinds only
    assert shapes["kind"] == "vae" and shapes["beta"] == 4.0
    assert 0 <= shapes["mig"] <= 1 and shapes["dci_disentanglement"] is not None
    assert "error" in missing and missing["kind"] is None
    json.dumps(rows)
    assert "shapes-bvae" in format_table(rows)


def test_evaluate_report_on_shapes_has_disentanglement_fields(runs):
    from app.core.evaluation import evaluate_run

    report = evaluate_run(str(runs[1]), anomaly_classes="heart")
    json.dumps(report)
    for key in ("pca_reconstruction_error", "active_units", "kl_per_dim", "mig", "dci_disentanglement", "sap",
                "linear_probe_accuracy", "pca_linear_probe_accuracy", "anomaly_auc", "pca_anomaly_auc"):
        assert report[key] is not None, key
    assert len(report["kl_per_dim"]) == 4 and len(report["factor_per_dim"]) == 4
    assert report["anomaly_classes"] == ["heart"]


def test_trustworthiness_of_a_projection():
    from app.core.analysis.report import projection_trustworthiness

    codes = np.random.default_rng(0).standard_normal((300, 2))
    assert projection_trustworthiness(codes, methods=("pca",))["pca"] == pytest.approx(1.0)


def test_cli_train_then_evaluate_json(tmp_path):
    run_dir = tmp_path / "tmp"
    train = subprocess.run([sys.executable, "main.py", "train", "--data", "digits", "--model", "vae", "--latent-dim", "4",
                            "--hidden", "32", "--epochs", "1", "--quiet", "--out", str(run_dir)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert train.returncode == 0, train.stderr
    out = subprocess.run([sys.executable, "main.py", "evaluate", str(run_dir), "--json", "--anomaly-classes", "9"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for key in ("reconstruction_error", "pca_reconstruction_error", "linear_probe_accuracy", "pca_linear_probe_accuracy",
                "knn_accuracy", "pca_knn_accuracy", "active_units", "kl_per_dim", "anomaly_auc",
                "anomaly_average_precision", "pca_anomaly_auc", "pca_anomaly_average_precision"):
        assert key in report, key
    assert isinstance(report["kl_per_dim"], list) and len(report["kl_per_dim"]) == 4
    assert 0.0 <= report["anomaly_auc"] <= 1.0 and 0.0 <= report["pca_anomaly_auc"] <= 1.0
    assert report["split"] == "validation" and report["n_anomalies"] == 33   # the 9s among 359 held out
    assert report["anomaly_classes_seen_in_training"] == ["9"] and report["isolation_forest_anomaly_auc"] is not None


def test_cli_rejects_an_unknown_anomaly_class_readably(runs, capsys):
    from app.cli import main

    assert main(["evaluate", str(runs[0]), "--anomaly-classes", "banana"]) == 1
    assert "banana" in capsys.readouterr().err
