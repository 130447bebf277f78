"""The default layout is legible on a laptop screen: the tour at 1440x900 measures, from the widgets'
geometry, every map's and plot's view box, the traversal grid's cells and its tick labels."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.gui.image_grid import spaced_labels

ROOT = Path(__file__).resolve().parents[2]
MIN_MAP_PX = 300   # issue 12: each map at least 300 px square at 1440x900


def overlapping(rects) -> list:
    """Pairs of (x, y, w, h) rectangles that intersect."""
    def meet(a, b):
        return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
    return [(a, b) for a, b in itertools.combinations(rects, 2) if meet(a, b)]


@pytest.fixture(scope="module")
def geometry(tmp_path_factory):
    out = tmp_path_factory.mktemp("tour")
    run = subprocess.run([sys.executable, "main.py", "tour", "--size", "1440x900", "--out", str(out), "--epochs", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(out / "config")})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((out / "geometry.json").read_text())


def test_the_window_is_the_size_asked_for(geometry):
    assert geometry["window"] == [1440, 900]


def test_each_map_gets_at_least_300_px_square(geometry):
    maps = geometry["views"]["maps"]
    assert set(maps) >= {"pca", "umap", "tsne"}
    for method, (width, height) in maps.items():
        assert width >= MIN_MAP_PX and height >= MIN_MAP_PX, (method, width, height)


def test_plots_and_grids_have_room(geometry):
    views = geometry["views"]
    for name, (min_w, min_h) in {"loss": (300, 180), "reconstructions": (300, 200), "traversal_grid": (300, 250),
                                 "pca_error_plot": (300, 100)}.items():
        width, height = views[name]
        assert width >= min_w and height >= min_h, (name, width, height)
    assert views["pca_error_titles_fit"]


def test_traversal_cells_are_square_and_its_labels_never_touch(geometry):
    views = geometry["views"]
    cell_w, cell_h = views["traversal_cell_px"]
    assert cell_w >= 16 and abs(cell_w - cell_h) < 0.5
    for axis in ("bottom", "left"):
        rects = views["traversal_labels"][axis]
        assert rects, axis
        assert not overlapping(rects), axis
    assert not overlapping(views["pca_error_labels"]["bottom"])


def test_crowded_labels_are_thinned_from_the_middle_and_ends_of_a_sparse_row_kept():
    labels = ["-3", "-2.25", "-1.5", "-0.75", "0", "+0.75", "+1.5", "+2.25", "+3"]
    kept = spaced_labels([i * 20.0 for i in range(9)], [30.0] * 9, labels, gap=6)
    assert kept == [0, 2, 4, 6, 8]
    assert spaced_labels([i * 60.0 for i in range(9)], [30.0] * 9, labels) == list(range(9))
    ends = ["#12 (3)"] + [""] * 8 + ["#40 (7)"]
    assert spaced_labels([i * 20.0 for i in range(10)], [50.0] * 10, ends) == [0, 9]
