"""Autoencoders against PCA on the claims the app lets users check: reconstruction, codes as
features, anomaly detection, disentanglement.

MNIST (the 10,000-image test set in ../shared/data/mnist, split 8,000 / 2,000 by the app's seeded
split) with the classic 784-400-20 VAE and a deterministic AE of the same shape; `shapes`
(10,000 generated 32x32 sprites with 5 known factors) with a VAE and a beta-VAE (beta = 4), latent 10.
PCA always has as many components as the latent size and is fitted on the same training split.

    python bench/analysis.py [--quick] [--epochs N]

Prints readable tables and, last, one line of JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import MNIST_DIR, machine_line, print_table  # noqa: E402
from app.core.analysis.anomaly import anomaly_mask, detection_metrics  # noqa: E402
from app.core.analysis.compare_runs import compare_runs  # noqa: E402
from app.core.analysis.disentanglement import disentanglement_report  # noqa: E402
from app.core.analysis.pca_baseline import fit_pca, pca_error_curve, pca_errors, pca_transform  # noqa: E402
from app.core.analysis.probes import compare_probes  # noqa: E402
from app.core.checkpoint import save_run  # noqa: E402
from app.core.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from app.core.data import load_dataset  # noqa: E402
from app.core.session import data_info, encode_all, prepare_training  # noqa: E402
from app.core.trainer import train_to_end  # noqa: E402

ANOMALY_CLASS = 9


def train(data, data_cfg, model_cfg, epochs, train_idx=None):
    """Train on data's usual split, or on the given training indices (normal-only training)."""
    train_cfg = TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, seed=0, device="cpu")
    prepared = prepare_training(data_cfg, model_cfg, train_cfg, data=data)
    if train_idx is not None:
        from app.core.trainer import Trainer
        prepared.trainer = Trainer(prepared.model, data.x[train_idx], data.x[prepared.val_idx], train_cfg)
    start = time.perf_counter()
    finished = train_to_end(prepared.trainer)
    if not finished.ok:
        raise SystemExit(f"training failed: {finished.message}")
    return prepared, time.perf_counter() - start


def f(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def mnist(epochs: int, figures: dict) -> None:
    data_cfg = DataConfig(spec=str(MNIST_DIR), val_fraction=0.2, split_seed=0)
    data = load_dataset(data_cfg)
    train_idx, val_idx = data.split(data_cfg.val_fraction, data_cfg.split_seed)
    k = 20
    pca_full = fit_pca(data.x[train_idx])                      # every component, for the curve
    curve = pca_error_curve(pca_full, data.x[val_idx])
    pca = fit_pca(data.x[train_idx], k)
    comps = pca_transform(pca, data.x)
    pca_error = float(pca_errors(pca, data.x[val_idx]).mean())
    pca_clipped = float(pca_errors(pca, data.x[val_idx], clip=True).mean())
    print(f"\nMNIST ({data.n:,} images: {len(train_idx):,} train / {len(val_idx):,} held out), {epochs} epochs, "
          f"latent = PCA components = {k}")
    rows = [["PCA (k=20)", f(pca_error, 2), "-", "", "", "", ""]]
    figures["mnist"] = {"pca_error": pca_error, "pca_error_clipped": pca_clipped, "epochs": epochs}
    for kind in ("vae", "ae"):
        model_cfg = ModelConfig(kind=kind, latent_dim=k, hidden=(400,))
        prepared, seconds = train(data, data_cfg, model_cfg, epochs)
        encoded = encode_all(prepared.model, data.x)
        error = float(encoded.errors[val_idx].mean())
        hits = np.nonzero(curve.errors <= error)[0]
        match_k = int(hits[0]) if len(hits) else None
        probes = compare_probes(encoded.codes[train_idx], encoded.codes[val_idx], comps[train_idx], comps[val_idx],
                                data.y[train_idx], data.y[val_idx])
        rows.append([f"{kind} 784-400-20", f(error, 2), str(match_k), f(probes["linear_probe_accuracy"]),
                     f(probes["pca_linear_probe_accuracy"]), f(probes["knn_accuracy"]), f(probes["pca_knn_accuracy"])])
        figures["mnist"][kind] = {"error": error, "pca_k_matching_error": match_k, "train_seconds": seconds, **probes}
    print_table(["model", "held-out error", "PCA k to match", "linear probe", "PCA linear", "5-NN", "PCA 5-NN"], rows)
    print(f"(error = summed squared error per image over 784 pixels in [0,1]; PCA clipped to [0,1]: {pca_clipped:.2f})")

    # Anomaly detection: train on every digit but 9, score the held-out split (9s included).
    normal_train = train_idx[data.y[train_idx] != ANOMALY_CLASS]
    is_anomaly = anomaly_mask(data.y[val_idx], [ANOMALY_CLASS])
    pca_normal = fit_pca(data.x[normal_train], k)
    pca_scores = pca_errors(pca_normal, data.x[val_idx])
    pca_det = detection_metrics(pca_scores, is_anomaly)
    rows = [["PCA (k=20) error", f(pca_det["auc"]), f(pca_det["average_precision"])]]
    figures["mnist"]["anomaly"] = {"n_anomalies": int(is_anomaly.sum()), "n_heldout": int(len(val_idx)),
                                   "pca_auc": pca_det["auc"], "pca_average_precision": pca_det["average_precision"]}
    for kind in ("vae", "ae"):
        prepared, _ = train(data, data_cfg, ModelConfig(kind=kind, latent_dim=k, hidden=(400,)), epochs,
                            train_idx=normal_train)
        encoded = encode_all(prepared.model, data.x[val_idx])
        scores = {"reconstruction error": encoded.errors}
        if encoded.neg_elbo is not None:
            scores["negative ELBO"] = encoded.neg_elbo
        for name, score in scores.items():
            det = detection_metrics(score, is_anomaly)
            rows.append([f"{kind} {name}", f(det["auc"]), f(det["average_precision"])])
            key = f"{kind}_{name.replace(' ', '_').lower()}"
            figures["mnist"]["anomaly"][key] = det
    print(f"\nMNIST anomaly detection: trained on digits 0-8 ({len(normal_train):,} images), scored on the "
          f"{len(val_idx):,} held-out images of which {int(is_anomaly.sum())} are 9s")
    print_table(["score", "ROC AUC", "avg precision"], rows)


def shapes(epochs: int, figures: dict) -> None:
    data_cfg = DataConfig(spec="shapes", val_fraction=0.2, split_seed=0)
    data = load_dataset(data_cfg)
    train_idx, val_idx = data.split(data_cfg.val_fraction, data_cfg.split_seed)
    k = 10
    pca = fit_pca(data.x[train_idx], k)
    pca_error = float(pca_errors(pca, data.x[val_idx]).mean())
    pca_dis = disentanglement_report(pca_transform(pca, data.x), data.factors, data.factor_names).to_dict()
    print(f"\nshapes ({data.n:,} sprites 32x32, factors {', '.join(data.factor_names)}), {epochs} epochs, "
          f"latent = PCA components = {k}, MLP 1024-400-{k}")
    rows = [["PCA (k=10)", f(pca_error, 2), str(k), f(pca_dis["mig"]), f(pca_dis["dci_disentanglement"]),
             f(pca_dis["sap"]), ""]]
    figures["shapes"] = {"pca": {"error": pca_error, "mig": pca_dis["mig"], "dci": pca_dis["dci_disentanglement"],
                                 "sap": pca_dis["sap"]}, "epochs": epochs}
    with tempfile.TemporaryDirectory() as tmp:
        run_dirs = []
        for name, beta in (("vae", 1.0), ("beta-vae", 4.0)):
            model_cfg = ModelConfig(kind="vae", latent_dim=k, hidden=(400,), beta=beta)
            prepared, _ = train(data, data_cfg, model_cfg, epochs)
            run_dir = Path(tmp) / name
            save_run(run_dir, prepared.model, data_cfg=data_cfg, train_cfg=prepared.trainer.cfg,
                     modality=data.modality, data_info=data_info(data), history=prepared.trainer.history)
            run_dirs.append(run_dir)
        for name, row in zip(("vae", "beta-vae (4)"), compare_runs(run_dirs, with_probes=False)):
            rows.append([name, f(row["reconstruction_error"], 2), str(row["active_units"]), f(row["mig"]),
                         f(row["dci_disentanglement"]), f(row["sap"]),
                         " ".join(n or "-" for n in row.get("factor_per_dim") or [])])
            figures["shapes"][name.split(" ")[0]] = {k2: row[k2] for k2 in (
                "reconstruction_error", "pca_reconstruction_error", "active_units", "kl_total", "mig",
                "dci_disentanglement", "sap", "val_loss")}
    print_table(["model", "held-out error", "active", "MIG", "DCI dis.", "SAP", "factor per dimension"], rows)
    print("(PCA row: its 10 components scored as codes; 'active' for PCA is just k)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (about a minute or two on 2 cores)")
    parser.add_argument("--epochs", type=int, default=0, help="epochs per model (default 10, --quick 3)")
    parser.add_argument("--shapes-epochs", type=int, default=0, help="epochs on shapes (default 20, --quick 5)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's choice; 1 is faster on a busy shared machine)")
    args = parser.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    epochs = args.epochs or (3 if args.quick else 10)
    shapes_epochs = args.shapes_epochs or (5 if args.quick else 20)
    print(machine_line())
    figures: dict = {}
    start = time.perf_counter()
    if (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        mnist(epochs, figures)
    else:
        print(f"MNIST not found in {MNIST_DIR}: skipped")
    shapes(shapes_epochs, figures)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    print(f"\ntotal {figures['seconds']} s")
    print(json.dumps(figures, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
