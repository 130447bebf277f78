"""`main.py tour` photographs the real window: each view's PNG is written and the process exits 0."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VIEWS = ("overview", "training", "projections", "reconstructions", "traversal", "analysis")


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
