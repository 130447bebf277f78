"""app.core must never import Qt: checked in a fresh interpreter so nothing else hides it."""

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import app.core

ROOT = Path(__file__).resolve().parents[2]


def core_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(app.core.__path__, prefix="app.core.")]


def test_core_never_imports_qt():
    modules = core_modules()
    assert len(modules) > 10
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6', 'superqt', 'qtpy'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"app.core pulled in Qt modules: {out.stdout}"


def test_cli_never_imports_qt():
    code = "import sys, app.cli\nprint(','.join(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_no_unpickling_anywhere_in_app():
    """Loading never unpickles: no torch.load, pickle or allow_pickle=True in the app's code."""
    offenders = []
    for path in (ROOT / "app").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for needle in ("torch.load(", "import pickle", "pickle.load", "allow_pickle=True", "cloudpickle"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not offenders, offenders


def test_window_module_loads_without_torch_or_sklearn():
    """The window appears before torch (~1.3 s) and scikit-learn (~0.9 s) load: start-up budget."""
    code = ("import sys, app.gui.main_window, app.gui.app\n"
            "print(','.join(m for m in ('torch', 'sklearn', 'umap', 'openTSNE') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_window_is_built_without_torch():
    """Building the main window (before its first paint) loads neither torch nor scikit-learn: the
    run-follower once imported app.core.checkpoint, and with it torch, from the window's
    constructor, which moved the first paint from 0.5 s to 2.1 s (bench/startup.py)."""
    code = ("import sys\n"
            "from PySide6.QtWidgets import QApplication\n"
            "qt_app = QApplication([])\n"
            "from app.gui.main_window import MainWindow\n"
            "window = MainWindow(load_builtin=None)\n"
            "print(','.join(m for m in ('torch', 'sklearn', 'umap', 'openTSNE') if m in sys.modules))\n"
            "window.confirm_close = False\n"
            "window.close()\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "LATENT_EXPLORER_NO_CLOSE_PROMPT": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), out.stdout
