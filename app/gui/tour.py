"""`python main.py tour --out DIR`: the app photographs itself for the README.

Opens the real window offscreen on the built-in digits, trains a VAE, waits for the PCA, UMAP and
t-SNE maps, hovers a sample, moves a latent slider, and writes one PNG per view:
overview.png, training.png, projections.png, reconstructions.png, traversal.png, analysis.png.
Nothing is staged: every pixel comes from the same code paths a user drives.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

TOUR_EPOCHS = 40
WINDOW_SIZE = (1680, 1050)


def _wait(app, done, timeout_s: float, what: str) -> None:
    """Run the event loop until done() is true; fail loudly rather than photograph a half state.
    A real event loop checked by a timer, not a processEvents() spin, which DESIGN.md measured to
    slow the training thread fivefold."""
    from PySide6.QtCore import QEventLoop, QTimer

    if done():
        return
    loop = QEventLoop()
    deadline = time.monotonic() + timeout_s
    timer = QTimer()
    timer.timeout.connect(lambda: (done() or time.monotonic() > deadline) and loop.quit())
    timer.start(50)
    loop.exec()
    timer.stop()
    if not done():
        raise TimeoutError(f"tour: gave up waiting for {what} after {timeout_s:.0f} s")


def _settle(app, seconds: float) -> None:
    """Let queued redraws (debounced grids, throttled curves) happen before a photograph."""
    end = time.monotonic() + seconds
    _wait(app, lambda: time.monotonic() >= end, seconds + 5, "the views to redraw")


def run_tour(out_dir: str, epochs: int = TOUR_EPOCHS) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["LATENT_EXPLORER_NO_RECOVERY"] = "1"
    from PySide6.QtWidgets import QApplication

    from app.gui.app import configure_pyqtgraph

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName("LatentExplorer")
    app.setApplicationName("latent-explorer-tour")   # its own settings: the user's layout is not touched
    configure_pyqtgraph()
    from PySide6.QtCore import QSettings
    QSettings().clear()   # the default layout, whatever an earlier tour left

    from app.gui.main_window import MainWindow
    from app.gui.projection_view import ProjectionView
    from app.gui.traversal_view import TraversalView

    window = MainWindow(load_builtin="digits", warm_up_projections=True)
    window.confirm_close = False
    window.controller.autosave_enabled = False
    window.resize(*WINDOW_SIZE)
    window.show()
    state = window.state
    _wait(app, lambda: state.data is not None, 60, "the digits data")

    panel = window.training_panel
    model = panel.model_form.widgets
    model["kind"].setCurrentIndex(model["kind"].findData("vae"))
    model["latent_dim"].setValue(8)
    model["hidden"].setText("256")
    panel.train_form.widgets["epochs"].setValue(epochs)
    panel.train_form.widgets["lr"].setValue(3e-3)

    projections = next(v for v in window.views if isinstance(v, ProjectionView))
    traversal = next(v for v in window.views if isinstance(v, TraversalView))
    finished: set[str] = set()
    projections.projectionFinished.connect(finished.add)
    projections.projectionFailed.connect(lambda method, _msg: finished.add(method))
    stopped = []
    window.controller.trainingStopped.connect(stopped.append)
    if not window.start_training():
        print("tour: training did not start; see the messages above", file=sys.stderr)
        return 1
    _wait(app, lambda: bool(stopped), 600, "training")
    _wait(app, lambda: {"pca", "umap", "tsne"} <= finished, 600, "the PCA, UMAP and t-SNE maps")

    # A person would now hover a sample and drag a slider.
    labels = state.labels()
    position = int(next(i for i, y in enumerate(labels) if y == 3)) if labels is not None else 0
    state.set_hover(position)
    state.set_selection([position])
    stats = traversal.stats
    dim = int(stats.order[0]) if stats is not None else 0
    traversal.set_dimension_value(dim, 1.8)
    _settle(app, 1.0)

    _hide_stray_tab_bars(window)
    shots = {
        "overview.png": window,
        "training.png": window.docks["loss"],
        "projections.png": window.docks["ProjectionView"],
        "reconstructions.png": window.docks["ReconstructionView"],
        "traversal.png": window.docks["TraversalView"],
    }
    for name, widget in shots.items():
        widget.grab().save(str(out / name))
    window.docks["AnalysisView"].raise_()
    analysis = window.docks["AnalysisView"].widget()
    analysis.setCurrentWidget(analysis.pca_tab)
    analysis.pca_tab.compute()
    _wait(app, lambda: not analysis.pca_tab.running, 120, "the PCA comparison")
    _settle(app, 0.5)
    window.docks["AnalysisView"].grab().save(str(out / "analysis.png"))
    window.close()
    app.processEvents()
    for name in [*shots, "analysis.png"]:
        print(f"wrote {out / name}")
    return 0


def _hide_stray_tab_bars(window) -> None:
    """The offscreen platform paints tab bars that QMainWindow kept from intermediate dock
    arrangements (a real X11/Windows/macOS window does not show them). A real tab bar sits right
    under the dock it switches; hide the others before photographing."""
    from PySide6.QtWidgets import QTabBar

    docks = {dock.windowTitle(): dock for dock in window.docks.values()}
    for bar in window.findChildren(QTabBar):
        if bar.parent() is not window or bar.count() == 0:
            continue
        dock = docks.get(bar.tabText(bar.currentIndex()))
        if dock is not None and abs(bar.geometry().top() - dock.geometry().bottom()) > 4:
            bar.hide()
