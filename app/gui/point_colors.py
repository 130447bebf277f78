"""Colouring points by a label, a factor or a continuous score, as a few shared colours.

A scatter with one brush per point is slow in pyqtgraph (docs/DESIGN.md), so every colouring here is a
small palette plus one group index per point: classes map to a categorical palette, continuous
values to one of CONTINUOUS_BINS colours looked up in a pyqtgraph ColorMap. The legend entries say
what each shown colour means, so an exported figure explains itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

CONTINUOUS_BINS = 32
LEGEND_TICKS = 5          # colour swatches shown for a continuous value
MAX_LEGEND_CLASSES = 20   # beyond this a legend covers the plot; the combo box still names the mode
UNIFORM_COLOR = QColor(60, 110, 180)
# matplotlib's tab10, the palette readers of ML figures know; more classes get evenly spaced hues.
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


@dataclass
class Colouring:
    groups: np.ndarray                 # (N,) int64, index into colors
    colors: list[QColor]
    legend: list[tuple[int, str]]      # (group, text) swatches to show; empty for none
    summary: str                       # one line for the view's status ("error 0.012 - 3.4")


def categorical_colors(n: int) -> list[QColor]:
    if n <= len(TAB10):
        return [QColor(c) for c in TAB10[:n]]
    return [pg.intColor(i, hues=n, values=1, maxValue=220, minValue=150, sat=200) for i in range(n)]


def uniform(n: int) -> Colouring:
    return Colouring(np.zeros(n, dtype=np.int64), [UNIFORM_COLOR], [], "one colour")


def by_class(labels: np.ndarray, names: list[str] | None = None) -> Colouring:
    """Integer labels (N,) -> one colour per class; the legend lists the classes present."""
    labels = np.asarray(labels, dtype=np.int64)
    present = np.unique(labels)
    n_colors = int(max(present.max() + 1 if len(present) else 1, len(names or [])))
    if len(present) and present.min() < 0:   # unlabelled rows (-1) get the last colour, grey
        labels = np.where(labels < 0, n_colors, labels)
        colors = categorical_colors(n_colors) + [QColor(170, 170, 170)]
    else:
        colors = categorical_colors(n_colors)

    def name(c: int) -> str:
        if c < 0:
            return "unlabelled"
        return str(names[c]) if names and c < len(names) else str(c)

    legend = [(int(c) if c >= 0 else n_colors, name(int(c))) for c in present[:MAX_LEGEND_CLASSES]]
    return Colouring(labels, colors, legend, f"{len(present)} classes")


def by_value(values: np.ndarray, name: str, robust: bool = False, colormap: str = "viridis") -> Colouring:
    """Continuous values (N,) -> CONTINUOUS_BINS colours of a colour map, low to high.

    `robust` spans the 1st-99th percentiles (reconstruction errors have a long tail that would
    otherwise squeeze every ordinary sample into the lowest colour); values beyond are clipped."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return uniform(len(values))
    lo, hi = (np.percentile(finite, [1, 99]) if robust else (finite.min(), finite.max()))
    lo, hi = float(lo), float(hi)
    span = hi - lo if hi > lo else 1.0
    scaled = np.nan_to_num((values - lo) / span, nan=0.0)
    groups = np.clip((scaled * CONTINUOUS_BINS).astype(np.int64), 0, CONTINUOUS_BINS - 1)
    cmap = pg.colormap.get(colormap)
    colors = list(cmap.map(np.linspace(0.0, 1.0, CONTINUOUS_BINS), mode="qcolor"))
    ticks = np.linspace(0, CONTINUOUS_BINS - 1, LEGEND_TICKS).round().astype(int)
    legend = []
    for i, b in enumerate(ticks):
        value = lo + (b + 0.5) / CONTINUOUS_BINS * span if 0 < i < len(ticks) - 1 else (lo if i == 0 else hi)
        prefix = ("≤ " if i == 0 else "≥ " if i == len(ticks) - 1 else "") if robust else ""
        text = f"{prefix}{value:.3g}"
        legend.append((int(b), f"{name} {text}" if i == 0 else text))
    return Colouring(groups, colors, legend, f"{name} {lo:.3g} – {hi:.3g}")
