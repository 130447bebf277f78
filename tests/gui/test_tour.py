"""`main.py tour` photographs the real window: each view's PNG is written and the process exits 0,
including a finished search in the Search dock and the Few labels curve."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VIEWS = ("overview", "training", "projections", "reconstructions", "traversal", "analysis", "search", "few_labels")


def test_tour_writes_one_png_per_view(tmp_path):
    out = subprocess.run([sys.executable, "main.py", "tour", "--out", str(tmp_path), "--epochs", "3"], cwd=ROOT,
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen",
                              "XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert out.returncode == 0, out.stderr[-3000:]
    from PIL import Image
    for name in VIEWS:
        path = tmp_path / f"{name}.png"
        assert path.exists(), name
        with Image.open(path) as image:
            assert image.width > 300 and image.height > 150
            # Not a blank capture: a real view has many distinct colours.
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 20
    views = json.loads((tmp_path / "geometry.json").read_text())["views"]
    for name, (min_w, min_h) in {"search_table": (300, 150), "search_plot": (300, 100),
                                 "few_labels_plot": (300, 150)}.items():
        width, height = views[name]
        assert width >= min_w and height >= min_h, (name, width, height)
    assert views["search_plot_titles_fit"] and views["few_labels_titles_fit"]
    assert "tour: search of" in out.stderr and "few-label curve in" in out.stderr
