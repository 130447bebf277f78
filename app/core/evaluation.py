"""Headless evaluation and export of a run directory (the CLI's `evaluate` and `export`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from app.core.atomic import atomic_write_bytes, atomic_write_text
from app.core.checkpoint import load_run
from app.core.session import encode_all, load_data_for_run, model_device


@torch.no_grad()
def objective(model, x: np.ndarray, batch_size: int = 1024, seed: int = 0) -> float:
    """The training objective per sample at the model's beta; for VAE kinds the negative ELBO with
    one sample of z, as PyTorch's VAE example reports its test loss. Seeded so it repeats."""
    model.eval()
    device = model_device(model)
    torch.manual_seed(seed)
    total = 0.0
    beta = float(getattr(model.cfg, "beta", 1.0))
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[i:i + batch_size], device=device)
        out = model(xb, sample=True)
        total += float(model.loss(xb, out, beta=beta)["total"]) * len(xb)
    return total / max(len(x), 1)


def evaluate_run(run_dir: str, spec: str | None = None, limit: int = 0, projections: bool = False,
                 anomaly_classes: str = "") -> dict:
    run = load_run(run_dir)
    data = load_data_for_run(run, spec, limit)
    encoded = encode_all(run.model, data.x)
    report = {
        "run": str(run_dir),
        "kind": run.meta["kind"],
        "data": data.name,
        "n": int(data.n),
        "loss": objective(run.model, data.x),
        "reconstruction_error": float(encoded.errors.mean()),
    }
    try:
        from app.core.analysis.report import extend_report
    except ImportError:  # the analysis package is optional at this layer's level
        return report
    report.update(extend_report(run, data, encoded, projections=projections, anomaly_classes=anomaly_classes))
    return report


def latents_csv(codes: np.ndarray, labels: np.ndarray | None, factors: np.ndarray | None,
                factor_names: list[str] | None, label_names: list[str] | None = None) -> str:
    """Columns z0..z{K-1}, then label when labels exist, then factor_<name> per factor."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = [f"z{i}" for i in range(codes.shape[1])]
    if labels is not None:
        header.append("label")
    names = list(factor_names or [f"{i}" for i in range(0 if factors is None else factors.shape[1])])
    if factors is not None:
        header += [f"factor_{n}" for n in names]
    writer.writerow(header)
    for i in range(len(codes)):
        row = [f"{v:.7g}" for v in codes[i]]
        if labels is not None:
            row.append(label_names[labels[i]] if label_names and 0 <= labels[i] < len(label_names) else int(labels[i]))
        if factors is not None:
            row += [f"{v:.7g}" for v in factors[i]]
        writer.writerow(row)
    return out.getvalue()


def scores_csv(scores: np.ndarray, labels: np.ndarray | None, threshold: float) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "score", "label", "flagged"])
    for i, score in enumerate(scores):
        writer.writerow([i, f"{score:.7g}", "" if labels is None else int(labels[i]), int(score > threshold)])
    return out.getvalue()


def export_run(run_dir: str, spec: str | None = None, limit: int = 0, latents: str | None = None,
               scores: str | None = None, traversal: str | None = None, percentile: float = 95.0) -> list[str]:
    run = load_run(run_dir)
    data = load_data_for_run(run, spec, limit)
    encoded = encode_all(run.model, data.x)
    written = []
    if latents:
        atomic_write_text(latents, latents_csv(encoded.codes, data.y, data.factors, data.factor_names))
        written.append(latents)
    if scores:
        threshold = float(np.percentile(encoded.errors, percentile))
        atomic_write_text(scores, scores_csv(encoded.errors, data.y, threshold))
        written.append(scores)
    if traversal:
        from app.core.latent import traversal_grid
        from app.core.imaging import grid_png

        grid = traversal_grid(run.model, base=np.zeros(run.model.latent_dim, np.float32), steps=9, span=3.0,
                              codes=encoded.codes, logvar=encoded.logvar)
        atomic_write_bytes(traversal, grid_png(grid.images, scale=4))
        written.append(traversal)
    return [str(Path(p)) for p in written]
