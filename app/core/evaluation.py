"""Headless evaluation and export of a run directory (the CLI's `evaluate` and `export`)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from app.core.atomic import atomic_write_bytes, atomic_write_text
from app.core.checkpoint import load_run
from app.core.data.dataset import Dataset
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


SPLITS = ("validation", "all")


@dataclass
class ScoredSplit:
    """The samples `evaluate` / `export` score, and where they come from."""
    data: Dataset                  # the samples scored
    split: str                     # "validation" | "all" | "external"
    run_data: Dataset | None       # the run's own data set (None when scoring external data)
    train_idx: np.ndarray | None   # the run's training split, indices into run_data
    warnings: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.data.n


def _is_run_data(run, spec: str | None, data: Dataset) -> bool:
    """True when `data` is the very data set the run was trained on (same spec, same size)."""
    info = run.meta.get("data_info", {}) or {}
    same_spec = spec is None or str(spec) == str(run.data_cfg.spec)
    return same_spec and (info.get("n") is None or int(info["n"]) == data.n)


def scored_split(run, spec: str | None = None, limit: int = 0, split: str = "validation") -> ScoredSplit:
    """Load the data to score. On the run's own data the default is its held-out split (same seed
    and fraction as training); `split="all"` scores every sample, training ones included. Other
    data (`spec` naming another set) is scored whole and called "external"."""
    from app.core.data.splits import split_for_config
    from app.core.errors import ConfigError

    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    own_spec = spec is None or str(spec) == str(run.data_cfg.spec)
    data = load_data_for_run(run, spec, 0 if own_spec else limit)
    warnings: list[str] = []
    if not _is_run_data(run, spec, data):
        if own_spec:
            warnings.append(f"{data.name} now holds {data.n:,} samples, not the {run.meta['data_info']['n']:,} the "
                            f"run was trained on, so its split cannot be rebuilt: scored as external data")
        if own_spec and limit:
            data = data.subset(np.arange(min(limit, data.n)))
        return ScoredSplit(data, "external", None, None, warnings)
    train_idx, val_idx = split_for_config(data, run.data_cfg)
    chosen = val_idx
    if split == "all":
        chosen = np.arange(data.n)
    elif len(val_idx) == 0:
        warnings.append("the run held no samples out (validation fraction 0), so every sample is scored, "
                        "training ones included")
        split, chosen = "all", np.arange(data.n)
    if limit:
        chosen = chosen[:limit]
    return ScoredSplit(data.subset(chosen), "validation" if split != "all" else "all", data, train_idx, warnings)


def model_selection(run) -> str:
    """Where the saved weights were chosen: with early stopping (patience > 0) the best epoch on the
    validation split (so scores there are slightly optimistic), otherwise simply the last epoch."""
    return "validation" if run.train_cfg.patience > 0 else "last_epoch"


def evaluate_run(run_dir: str, spec: str | None = None, limit: int = 0, projections: bool = False,
                 anomaly_classes: str = "", split: str = "validation") -> dict:
    run = load_run(run_dir)
    scored = scored_split(run, spec, limit, split)
    data = scored.data
    encoded = encode_all(run.model, data.x)
    report = {
        "run": str(run_dir),
        "kind": run.meta["kind"],
        "data": data.name,
        "split": scored.split,
        "n": int(data.n),
        "model_selected_on": model_selection(run),
        "loss": objective(run.model, data.x),
        "reconstruction_error": float(encoded.errors.mean()),
    }
    warnings = list(scored.warnings)
    if report["model_selected_on"] == "validation" and scored.split == "validation":
        warnings.append(f"early stopping chose the best epoch on this validation split, so its figures are slightly "
                        f"optimistic; for an unbiased figure score a separate test set with --data")
    try:
        from app.core.analysis.report import extend_report
    except ImportError:  # the analysis package is optional at this layer's level
        report["warnings"] = warnings
        return report
    extra = extend_report(run, data, encoded, projections=projections, anomaly_classes=anomaly_classes,
                          scored=scored)
    warnings += extra.pop("warnings", [])
    report.update(extra)
    report["warnings"] = warnings
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


def export_run(run_dir: str, spec: str | None = None, limit: int = 0, latents: str | None = None,
               scores: str | None = None, traversal: str | None = None, percentile: float = 95.0,
               split: str = "all", notes: list | None = None) -> list[str]:
    """Write the files asked for. Rows are the samples of `split` (default all, so row i is sample i
    of the data file); `notes` (a list) receives one line per thing worth telling the user."""
    run = load_run(run_dir)
    scored = scored_split(run, spec, limit, split)
    data = scored.data
    encoded = encode_all(run.model, data.x)
    if notes is not None:
        notes.extend(scored.warnings)
        notes.append(f"scored {data.n:,} samples ({scored.split} split of {data.name})")
        if scores:
            from app.core.analysis.anomaly import anomaly_recommendation
            tip = anomaly_recommendation(run)
            if tip:
                notes.append(tip)
    written = []
    if latents:
        atomic_write_text(latents, latents_csv(encoded.codes, data.y, data.factors, data.factor_names))
        written.append(latents)
    if scores:
        threshold = float(np.percentile(encoded.errors, percentile))
        from app.core.analysis.api import scores_csv   # the one scores CSV, the window's too

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
