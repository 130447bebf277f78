"""The CSV of latent codes and their 2-D projections: one row per explored sample.

Columns: index (row in the data set), label, factor_<name>..., pca_x, pca_y, umap_x, umap_y,
tsne_x, tsne_y, z0..z{K-1}. label and factor columns appear when the data has them; a projection
not computed (or failed) leaves its two cells empty, so the columns never move. Pure numpy; no Qt.
"""

from __future__ import annotations

import re

import numpy as np

PROJECTION_COLUMNS = ("pca", "umap", "tsne")


def _safe_name(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_") or "factor"


def _fmt(values: np.ndarray) -> np.ndarray:
    return np.char.mod("%.7g", np.asarray(values, dtype=np.float64))


def projection_csv(indices: np.ndarray, codes: np.ndarray, embeddings: dict[str, np.ndarray],
                   labels: np.ndarray | None = None, factors: np.ndarray | None = None,
                   factor_names: list[str] | None = None) -> str:
    """indices (N,) into the data set, codes (N, K), embeddings {method: (N, 2)} -> CSV text."""
    n = len(codes)
    header: list[str] = ["index"]
    columns: list[np.ndarray] = [np.asarray(indices, dtype=np.int64).astype(str)]
    if labels is not None:
        header.append("label")
        columns.append(np.asarray(labels, dtype=np.int64).astype(str))
    if factors is not None:
        factors = np.asarray(factors).reshape(n, -1)
        names = list(factor_names or [])
        names += [str(i) for i in range(len(names), factors.shape[1])]
        for j in range(factors.shape[1]):
            header.append(f"factor_{_safe_name(names[j])}")
            columns.append(_fmt(factors[:, j]))
    empty = np.full(n, "", dtype=object)
    for method in PROJECTION_COLUMNS:
        header += [f"{method}_x", f"{method}_y"]
        emb = embeddings.get(method)
        if emb is not None and len(emb) == n:
            columns += [_fmt(emb[:, 0]), _fmt(emb[:, 1])]
        else:
            columns += [empty, empty]
    codes = np.asarray(codes).reshape(n, -1)
    for k in range(codes.shape[1]):
        header.append(f"z{k}")
        columns.append(_fmt(codes[:, k]))
    table = np.column_stack(columns).astype(str) if n else np.zeros((0, len(header)), dtype=str)
    lines = [",".join(header)] + [",".join(row) for row in table]
    return "\n".join(lines) + "\n"
