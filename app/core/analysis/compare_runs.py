"""A table of several runs side by side, e.g. beta-VAEs with growing beta: the trade-off between
reconstruction and disentanglement in one glance.

Each run is measured on its own data's held-out split (the split training used), against a PCA
with as many components as its latent size fitted on its training split. A run that cannot be
loaded gets a row with an `error` message instead of stopping the table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from app.core.analysis.disentanglement import disentanglement_report
from app.core.analysis.pca_baseline import fit_pca, heldout_split, pca_errors, pca_transform, split_for_run
from app.core.analysis.probes import compare_probes
from app.core.errors import LatentExplorerError

COLUMNS = ("run", "kind", "beta", "latent_dim", "hidden", "epochs", "train_loss", "val_loss",
           "reconstruction_error", "pca_reconstruction_error", "active_units", "kl_total", "mig",
           "dci_disentanglement", "sap", "linear_probe_accuracy", "pca_linear_probe_accuracy",
           "knn_accuracy", "pca_knn_accuracy")


def _final_losses(run) -> tuple[float | None, float | None, int | None]:
    metrics = run.meta.get("metrics") or {}
    last = run.history[-1] if run.history else {}
    train = last.get("train_loss", metrics.get("train_loss"))
    val = last.get("val_loss", metrics.get("val_loss"))
    epoch = last.get("epoch", metrics.get("epoch"))
    clean = [None if v in (None, "") else float(v) for v in (train, val)]
    return clean[0], clean[1], None if epoch in (None, "") else int(epoch)


def _data_key(run) -> str:
    from app.core.config import to_dict

    return json.dumps([to_dict(run.data_cfg), list(run.model.input_shape),
                       (run.meta.get("data_info") or {}).get("normalisation")], sort_keys=True, default=str)


def run_row(run, data, with_dci: bool = True, with_probes: bool = True) -> dict:
    """The table row of one loaded run measured on `data` (its own training data)."""
    from app.core.session import encode_all

    train_idx, val_idx = split_for_run(run, data)
    if len(val_idx) == 0:
        train_idx, val_idx = heldout_split(data, 0.0, run.data_cfg.split_seed)
    train_loss, val_loss, epochs = _final_losses(run)
    cfg = run.model_cfg
    row: dict = {"run": str(run.path), "kind": cfg.kind, "beta": float(cfg.beta) if run.model.variational else None,
                 "latent_dim": int(cfg.latent_dim), "hidden": list(cfg.hidden), "epochs": epochs,
                 "train_loss": train_loss, "val_loss": val_loss}
    encoded = encode_all(run.model, data.x)
    pca = fit_pca(data.x[train_idx], run.model.latent_dim, seed=run.data_cfg.split_seed)
    row["reconstruction_error"] = float(encoded.errors[val_idx].mean())
    row["pca_reconstruction_error"] = float(pca_errors(pca, data.x[val_idx]).mean())
    from app.core.latent import dimension_stats
    stats = dimension_stats(encoded.codes, encoded.logvar)
    # Active units count a VAE's informative posteriors; on deterministic codes they depend on the scale.
    row["active_units"] = int(stats.active.sum()) if encoded.logvar is not None else None
    row["kl_total"] = None if stats.kl is None else float(stats.kl.sum())
    if data.factors is not None:
        logvar = None if encoded.logvar is None else encoded.logvar[val_idx]   # scored on the held-out split
        result = disentanglement_report(encoded.codes[val_idx], data.factors[val_idx], data.factor_names, logvar,
                                        with_dci=with_dci, with_sap=True)
        summary = result.to_dict()
        row.update(mig=summary["mig"], dci_disentanglement=summary.get("dci_disentanglement"), sap=summary.get("sap"),
                   factor_per_dim=summary["factor_per_dim"])
    if with_probes and data.y is not None and len(np.unique(data.y[train_idx])) >= 2:
        comps = pca_transform(pca, data.x)
        row.update(compare_probes(encoded.codes[train_idx], encoded.codes[val_idx], comps[train_idx], comps[val_idx],
                                  data.y[train_idx], data.y[val_idx]))
    return row


def compare_runs(run_dirs: list[str | Path], with_dci: bool = True, with_probes: bool = True,
                 progress: Callable[[int, int, str], None] | None = None) -> list[dict]:
    """One dict per run directory (keys: see COLUMNS; missing ones are None). Runs on the same data
    share one load of it."""
    from app.core.checkpoint import load_run
    from app.core.session import load_data_for_run

    cache: dict = {}
    rows = []
    for i, run_dir in enumerate(run_dirs):
        if progress is not None:
            progress(i, len(run_dirs), str(run_dir))
        try:
            run = load_run(run_dir)
            key = _data_key(run)
            if key not in cache:
                cache[key] = load_data_for_run(run)
            row = run_row(run, cache[key], with_dci=with_dci, with_probes=with_probes)
        except LatentExplorerError as exc:
            row = {"run": str(run_dir), "error": str(exc)}
        rows.append({**{c: None for c in COLUMNS}, **row})
    if progress is not None:
        progress(len(run_dirs), len(run_dirs), "")
    return rows


def format_table(rows: list[dict], columns: tuple[str, ...] | None = None) -> str:
    """A plain-text table (for the CLI and the benchmark)."""
    columns = columns or tuple(c for c in COLUMNS if any(r.get(c) is not None for r in rows))
    cells = [[_cell(r.get(c)) if c != "run" else Path(str(r.get(c))).name for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
