"""Autoencoders against PCA on the claims the app lets users check: reconstruction, codes as
features, anomaly detection, disentanglement.

MNIST (the 10,000-image test set in ../shared/data/mnist, split 8,000 / 2,000 by the app's seeded
split) with the classic 784-400-20 VAE and a deterministic AE of the same shape; `shapes`
(10,000 generated 32x32 sprites with 5 known factors): PCA, the README's old setting (vae and
beta-vae 4, batch 128, 20 epochs), the `disentangle` preset (app/core/presets.py: the beta-VAE the
issue measured, beta 16, batch 64, 100 epochs) and beta-TCVAE (beta 6 and 10), each over several seeds, latent 10, scored on
the held-out split. PCA always has as many components as the latent size and is fitted on the
same training split.

    python bench/analysis.py [--quick] [--epochs N] [--shapes-only] [--seeds 0,1,2] [--json-out F]
    python bench/analysis.py --merge a.json b.json c.json     # seeds run as separate processes

Prints readable tables and, last, one line of JSON with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from app.core.analysis.disentanglement import disentanglement_report  # noqa: E402
from app.core.analysis.pca_baseline import fit_pca, pca_error_curve, pca_errors, pca_transform  # noqa: E402
from app.core.analysis.probes import compare_probes  # noqa: E402
from app.core.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from app.core.data import load_dataset  # noqa: E402
from app.core.session import encode_all, prepare_training  # noqa: E402
from app.core.models.tcvae import set_total_correlation  # noqa: E402
from app.core.presets import apply_preset  # noqa: E402
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


SHAPES_K = 10


def shapes_models(shapes_epochs: int) -> list[tuple[str, ModelConfig, TrainConfig]]:
    """The models compared on shapes: the README's old setting (vae, beta-vae 4, batch 128), the
    disentangle preset (the issue's beta-VAE: beta 16, batch 64, 100 epochs) and beta-TCVAE."""
    _, preset_model, preset_train = apply_preset("disentangle", DataConfig(), ModelConfig(), TrainConfig())
    long_epochs = preset_train.epochs if shapes_epochs == 0 else shapes_epochs * 5
    short_epochs = shapes_epochs or 20
    mlp = dict(latent_dim=SHAPES_K, hidden=(400,))
    return [
        ("vae", ModelConfig(kind="vae", beta=1.0, **mlp), TrainConfig(epochs=short_epochs, batch_size=128)),
        ("beta-vae 4", ModelConfig(kind="vae", beta=4.0, **mlp), TrainConfig(epochs=short_epochs, batch_size=128)),
        ("beta-vae 16", preset_model, dataclasses.replace(preset_train, epochs=long_epochs)),
        ("beta-tcvae 6", ModelConfig(kind="beta-tcvae", beta=6.0, **mlp), TrainConfig(epochs=long_epochs, batch_size=64)),
        ("beta-tcvae 10", ModelConfig(kind="beta-tcvae", beta=10.0, **mlp),
         TrainConfig(epochs=long_epochs, batch_size=64)),
    ]


def is_preset(row: dict) -> bool:
    """Whether a shapes row was trained with the disentangle preset's model and training settings."""
    _, model, train = apply_preset("disentangle", DataConfig(), ModelConfig(), TrainConfig())
    return (row["kind"], row["beta"], row["epochs"], row["batch_size"]) == (model.kind, model.beta, train.epochs,
                                                                          train.batch_size)


def held_out_tc(model, x: np.ndarray) -> float:
    import torch
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        out = model(torch.as_tensor(x), sample=True)
    return set_total_correlation(out.z, out.mu, out.logvar)


def score_codes(codes: np.ndarray, data, val_idx: np.ndarray) -> dict:
    """MIG, DCI and SAP of the held-out split's codes (disentanglement_lib's estimators as
    app/core/analysis/disentanglement.py implements them)."""
    report = disentanglement_report(codes, data.factors[val_idx], data.factor_names).to_dict()
    return {"mig": report["mig"], "dci": report.get("dci_disentanglement"), "sap": report.get("sap"),
            "dci_models": report.get("dci_models"), "sap_versions": report.get("sap_versions")}


def shapes_seed(seed: int, shapes_epochs: int, only: set[str] | None = None) -> dict:
    """Every shapes model trained with one seed, scored on the held-out split (split seed 0)."""
    data_cfg = DataConfig(spec="shapes", val_fraction=0.2, split_seed=0)
    data = load_dataset(data_cfg)
    train_idx, val_idx = data.split(data_cfg.val_fraction, data_cfg.split_seed)
    results = {}
    for name, model_cfg, train_cfg in shapes_models(shapes_epochs):
        if only and name not in only:
            continue
        train_cfg = dataclasses.replace(train_cfg, seed=seed, device="cpu")
        prepared = prepare_training(data_cfg, model_cfg, train_cfg, data=data)
        start = time.perf_counter()
        finished = train_to_end(prepared.trainer)
        seconds = time.perf_counter() - start
        if not finished.ok:
            raise SystemExit(f"{name}: training failed: {finished.message}")
        encoded = encode_all(prepared.model, data.x[val_idx])
        start = time.perf_counter()
        row = score_codes(encoded.codes, data, val_idx)
        row.update(error=float(encoded.errors.mean()), active=int((encoded.codes.var(0) > 0.01).sum()),
                   tc=held_out_tc(prepared.model, data.x[val_idx]), train_seconds=round(seconds, 1),
                   score_seconds=round(time.perf_counter() - start, 1), epochs=train_cfg.epochs,
                   batch_size=train_cfg.batch_size, kind=model_cfg.kind, beta=model_cfg.beta)
        results[name] = row
        print(f"seed {seed} {name}: MIG {f(row['mig'])} DCI {f(row['dci'])} SAP {f(row['sap'])} "
              f"error {row['error']:.2f} ({seconds:.0f} s)", flush=True)
    return results


def shapes_pca() -> dict:
    data_cfg = DataConfig(spec="shapes", val_fraction=0.2, split_seed=0)
    data = load_dataset(data_cfg)
    train_idx, val_idx = data.split(data_cfg.val_fraction, data_cfg.split_seed)
    start = time.perf_counter()
    pca = fit_pca(data.x[train_idx], SHAPES_K)
    seconds = time.perf_counter() - start
    row = score_codes(pca_transform(pca, data.x[val_idx]), data, val_idx)
    row.update(error=float(pca_errors(pca, data.x[val_idx]).mean()), active=SHAPES_K, tc=None,
               train_seconds=round(seconds, 1))
    return row


def mean_sd(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def shapes_table(figures: dict) -> None:
    """Mean ± sd over the seeds of every figure in figures['shapes']['seeds']."""
    seeds = figures["shapes"]["seeds"]
    pca = figures["shapes"]["pca"]
    rows = [] if pca is None else [["PCA (k=10)", "-", f(pca["mig"]), f(pca["dci"]), f(pca["sap"]), str(SHAPES_K),
                                    f(pca["error"], 2), "-", f(pca["train_seconds"], 1)]]
    summary = {}
    names = list(dict.fromkeys(name for per_name in seeds.values() for name in per_name))
    for name in names:
        per_seed = [seeds[s][name] for s in seeds if name in seeds[s]]
        first = per_seed[0]
        setting = f"{first['kind']} beta {first['beta']:g}, batch {first['batch_size']}, {first['epochs']} ep"
        summary[name] = {k: float(np.mean([r[k] for r in per_seed if r[k] is not None]))
                         for k in ("mig", "dci", "sap", "active", "error", "tc", "train_seconds")
                         if any(r[k] is not None for r in per_seed)}
        summary[name]["mig_per_seed"] = [r["mig"] for r in per_seed]
        rows.append([name + (" (preset)" if is_preset(first) else ""), setting, mean_sd([r["mig"] for r in per_seed]), mean_sd([r["dci"] for r in per_seed]),
                     mean_sd([r["sap"] for r in per_seed]), mean_sd([r["active"] for r in per_seed]),
                     mean_sd([r["error"] for r in per_seed]), mean_sd([r["tc"] for r in per_seed]),
                     f"{np.mean([r['train_seconds'] for r in per_seed]):.0f}"])
    figures["shapes"]["summary"] = summary
    print(f"\nshapes (10,000 sprites 32x32; factors {', '.join(SHAPES_FACTORS)}), held-out split of 2,000 scored, "
          f"mean ± sd over seeds {', '.join(seeds)}; latent = PCA components = {SHAPES_K}, MLP 1024-400-{SHAPES_K}")
    print_table(["model", "setting", "MIG", "DCI dis.", "SAP", "active", "held-out error", "TC (nats)",
                 "train s"], rows)
    print("(DCI: gradient-boosted classifier + accuracy, SAP: discrete LinearSVC version - every shapes factor has "
          "<= 64 values, so all five are scored as discrete; active = dimensions with Var(mu) > 0.01; TC = total "
          "correlation of the held-out aggregate posterior; train s = seconds of training on this machine)")


SHAPES_FACTORS = ("shape", "scale", "rotation", "x", "y")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (about a minute or two on 2 cores)")
    parser.add_argument("--epochs", type=int, default=0, help="epochs per MNIST model (default 10, --quick 3)")
    parser.add_argument("--shapes-epochs", type=int, default=0,
                        help="epochs of the short shapes models; the long ones get 5x (default 20 and the preset's "
                             "100; --quick 2 and 10)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds of the shapes models (default 0,1,2)")
    parser.add_argument("--shapes-only", action="store_true", help="skip MNIST")
    parser.add_argument("--json-out", help="also write the figures to this JSON file")
    parser.add_argument("--only", default="", help="comma-separated shapes model names to train (default: all)")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="combine --json-out files of runs with different "
                        "--seeds into one shapes table (nothing is trained)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's choice; 1 is faster on a busy shared machine)")
    args = parser.parse_args()
    if args.merge:
        return merge(args.merge)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    epochs = args.epochs or (3 if args.quick else 10)
    shapes_epochs = args.shapes_epochs or (2 if args.quick else 0)
    print(machine_line())
    figures: dict = {}
    start = time.perf_counter()
    if args.shapes_only:
        mnist_status = "skipped (--shapes-only)"
    elif (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        mnist(epochs, figures)
        mnist_status = "done"
    else:
        mnist_status = f"not found in {MNIST_DIR}: skipped"
    print(f"MNIST: {mnist_status}")
    figures["shapes"] = {"pca": None if args.only else shapes_pca(), "seeds": {}}
    for seed in (int(s) for s in args.seeds.split(",")):
        figures["shapes"]["seeds"][str(seed)] = shapes_seed(seed, shapes_epochs, set(filter(None, args.only.split(","))))
    shapes_table(figures)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    print(f"\ntotal {figures['seconds']} s")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, default=float))
    print(json.dumps(figures, default=float))
    return 0


def merge(paths: list[str]) -> int:
    figures: dict = {"shapes": {"seeds": {}}, "seconds": 0.0}
    for path in paths:
        part = json.loads(Path(path).read_text())
        figures["shapes"]["pca"] = part["shapes"]["pca"] or figures["shapes"].get("pca")
        for seed, per_name in part["shapes"]["seeds"].items():
            figures["shapes"]["seeds"].setdefault(seed, {}).update(per_name)
        figures["seconds"] = max(figures["seconds"], part["seconds"])
        if "mnist" in part:
            figures["mnist"] = part["mnist"]
    shapes_table(figures)
    print(json.dumps(figures, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
