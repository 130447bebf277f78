"""`python main.py tour --out DIR`: the app photographs itself for the README.

Opens the real window offscreen on the built-in digits, trains a VAE, waits for the PCA, UMAP and
t-SNE maps, hovers a sample, moves a latent slider, and writes one PNG per view:
overview.png, training.png, projections.png, reconstructions.png, traversal.png, analysis.png;
then runs a small hyperparameter search from the Search dock (search.png: its trial table and
objective-against-setting plot) and computes the Analysis "Few labels" curve (few_labels.png).
Nothing is staged: every pixel comes from the same code paths a user drives.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

TOUR_EPOCHS = 40
# The search and the few-label curve are kept small: the tour runs in CI on 2 cores.
SEARCH_SPACE = "lr = { low = 5e-4, high = 5e-3, log = true }\nlatent_dim = [4, 8, 16]\n"
SEARCH_TRIALS = 8
SEARCH_EPOCHS = 4           # per trial; the Hyperband pruner stops the worst after an epoch or two
FEW_LABELS_SIZES = "5,20,100"   # digits has about 140 training samples per class; each draw fine-tunes the encoder once
FEW_LABELS_DRAWS = 3
WINDOW_SIZE = "1440x900"   # a laptop screen; the README's screenshots are taken at this size


def parse_size(text: str) -> tuple[int, int]:
    """'1440x900' -> (1440, 900); ConfigError naming the fix otherwise."""
    from app.core.errors import ConfigError

    width, sep, height = str(text).lower().partition("x")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        raise ConfigError(f"--size {text!r}: give the window size as WIDTHxHEIGHT, e.g. 1440x900")
    size = int(width), int(height)
    if not (800 <= size[0] <= 7680 and 600 <= size[1] <= 4320):
        raise ConfigError(f"--size {text}: use a window between 800x600 and 7680x4320")
    return size


def _wait(app, done, timeout_s: float, what: str) -> None:
    """Run the event loop until done() is true; fail loudly rather than photograph a half state.
    A real event loop checked by a timer, not a processEvents() spin, which docs/DESIGN.md measured to
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


def run_tour(out_dir: str, epochs: int = TOUR_EPOCHS, size: str = WINDOW_SIZE) -> int:
    window_size = parse_size(size)
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
    window.resize(*window_size)
    window.show()
    state = window.state
    # The views are docked just after the first show and the data arrives on a worker: either may
    # come first on a busy machine.
    _wait(app, lambda: state.data is not None and bool(window.views), 60, "the digits data and the views")

    panel = window.training_panel
    model = panel.model_form.widgets
    model["kind"].setCurrentIndex(model["kind"].findData("vae"))
    panel.apply_recommended()   # the shots show exactly what "Use recommended" gives a new user
    panel.train_form.widgets["epochs"].setValue(epochs)

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

    written = _photograph(app, window, out)
    window.close()
    app.processEvents()
    for path in written:
        print(f"wrote {path}")
    return 0


def _photograph(app, window, out: Path) -> list[Path]:
    """One PNG per view, each dock raised first (the big views share one tabbed area), and
    geometry.json: the measured size of every map's and plot's view box and the traversal grid's
    label rectangles, for tests/gui/test_layout_geometry.py and the README."""
    import json

    docks = window.docks
    shots = [("overview.png", window, "ProjectionView"), ("training.png", docks["loss"], "loss"),
             ("projections.png", docks["ProjectionView"], "ProjectionView"),
             ("reconstructions.png", docks["ReconstructionView"], "ReconstructionView"),
             ("traversal.png", docks["TraversalView"], "TraversalView")]
    geometry = {"window": [window.width(), window.height()], "views": {}}
    written = []
    for name, widget, raised in shots:
        docks[raised].raise_()
        _settle(app, 0.3)
        _hide_stray_tab_bars(window)
        geometry["views"].update(layout_geometry(window))
        widget.grab().save(str(out / name))
        written.append(out / name)
    docks["AnalysisView"].raise_()
    analysis = docks["AnalysisView"].widget()
    analysis.setCurrentWidget(analysis.pca_tab)
    analysis.pca_tab.compute()
    _wait(app, lambda: not analysis.pca_tab.running, 120, "the PCA comparison")
    _settle(app, 0.5)
    _hide_stray_tab_bars(window)
    geometry["views"].update(layout_geometry(window))
    docks["AnalysisView"].grab().save(str(out / "analysis.png"))
    written.append(out / "analysis.png")
    search_folder = Path(tempfile.mkdtemp(prefix="tour-")) / "digits-search"
    try:
        written += _photograph_search_and_few_labels(app, window, out, search_folder, geometry)
    finally:
        shutil.rmtree(search_folder.parent, ignore_errors=True)
    docks["ProjectionView"].raise_()
    (out / "geometry.json").write_text(json.dumps(geometry, indent=1) + "\n")
    written.append(out / "geometry.json")
    return written


def _photograph_search_and_few_labels(app, window, out: Path, folder: Path, geometry: dict) -> list[Path]:
    """Start a small search from the Search dock as a user would (the trials' epochs set in the
    training form, the dock's space, method and trial count, Start), photograph its table and plot
    when it ends; then compute the Few labels curve of the tour's model and photograph it. One after
    the other: on 2 cores the trials and the fine-tuning slowed each other several-fold."""
    from PySide6.QtCore import Qt

    from app.core.search import best_row

    docks = window.docks
    search = docks["SearchView"].widget()
    window.training_panel.train_form.widgets["epochs"].setValue(SEARCH_EPOCHS)
    search.space_edit.setPlainText(SEARCH_SPACE)
    search.method_box.setCurrentText("bayes")
    search.trials_box.setValue(SEARCH_TRIALS)
    search.jobs_box.setValue(1)
    search.folder_edit.setText(str(folder))
    docks["SearchView"].raise_()
    started = time.monotonic()
    if not search.start():
        raise RuntimeError(f"tour: the search did not start: {search.status.text()}")
    _wait(app, lambda: search.process is None, 600, "the search")
    print(f"tour: search of {SEARCH_TRIALS} trials in {time.monotonic() - started:.0f} s", file=sys.stderr)
    search.poll()
    if not any(r["state"] == "complete" for r in search.rows):
        raise RuntimeError(f"tour: the search finished no trial: {search.status.text()}")
    best = best_row(search.rows, search.spec.direction)
    table_row = next(i for i in range(search.table.rowCount())
                     if search.table.item(i, 0).data(Qt.UserRole) == best["trial"])
    search.table.selectRow(table_row)   # the row "Open this trial" would load
    _settle(app, 0.5)
    _hide_stray_tab_bars(window)
    geometry["views"].update(layout_geometry(window))
    docks["SearchView"].grab().save(str(out / "search.png"))

    analysis = docks["AnalysisView"].widget()
    tab = analysis.few_labels_tab
    docks["AnalysisView"].raise_()
    analysis.setCurrentWidget(tab)
    tab.sizes_edit.setText(FEW_LABELS_SIZES)
    tab.draws_box.setValue(FEW_LABELS_DRAWS)
    started = time.monotonic()
    tab.compute()
    _wait(app, lambda: not tab.running, 600, "the few-label curve")
    print(f"tour: few-label curve in {time.monotonic() - started:.0f} s", file=sys.stderr)
    if tab.result is None:
        raise RuntimeError("tour: the few-label curve was not computed; see the messages above")
    _settle(app, 0.5)
    _hide_stray_tab_bars(window)
    geometry["views"].update(layout_geometry(window))
    docks["AnalysisView"].grab().save(str(out / "few_labels.png"))
    return [out / "search.png", out / "few_labels.png"]


def _view_box(plot_item) -> list[int]:
    rect = plot_item.getViewBox().sceneBoundingRect()
    return [round(rect.width()), round(rect.height())]


def _labels(axis) -> list[list[float]]:
    """The rectangles (x, y, w, h in the axis' coordinates) where the axis draws its tick labels."""
    from PySide6.QtGui import QImage, QPainter

    image = QImage(4, 4, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    painter.setFont(axis.style.get("tickFont") or axis.font())
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    text_specs = specs[2] if specs else []
    return [[r.x(), r.y(), r.width(), r.height()] for r, _flags, _text in text_specs]


def layout_geometry(window) -> dict:
    """What each visible view shows now: view box sizes (w, h) in pixels, and tick label rectangles."""
    from app.gui.loss_view import LossView
    from app.gui.projection_view import ProjectionView
    from app.gui.reconstruction_view import ReconstructionView
    from app.gui.traversal_view import TraversalView

    found: dict = {}
    for view in [window.loss_view, *window.views]:
        if not view.isVisible():
            continue
        if isinstance(view, ProjectionView):
            found["maps"] = {m: _view_box(p.scatter.getPlotItem()) for m, p in view.panels.items() if p.isVisible()}
        elif isinstance(view, LossView):
            found["loss"] = _view_box(view.plot_item)
        elif isinstance(view, ReconstructionView) and view.grid.isVisible():
            found["reconstructions"] = _view_box(view.grid.plot)
        elif isinstance(view, TraversalView) and view.traversal_image.isVisible():
            grid = view.traversal_image
            found["traversal_grid"] = _view_box(grid.plot)
            found["traversal_cell_px"] = _cell_pixels(grid)
            found["traversal_labels"] = {a: _labels(grid.plot.getAxis(a)) for a in ("bottom", "left")}
        elif type(view).__name__ == "AnalysisView" and view.pca_tab.isVisible():
            found["pca_error_plot"] = _view_box(view.pca_tab.plot)
            found["pca_error_labels"] = {a: _labels(view.pca_tab.plot.getAxis(a)) for a in ("bottom", "left")}
            found["pca_error_titles_fit"] = _titles_fit(view.pca_tab.plot)
        elif type(view).__name__ == "AnalysisView" and view.few_labels_tab.isVisible():
            found["few_labels_plot"] = _view_box(view.few_labels_tab.plot.getPlotItem())
            found["few_labels_titles_fit"] = _titles_fit(view.few_labels_tab.plot.getPlotItem())
        elif type(view).__name__ == "SearchView" and view.isVisible():
            found["search_table"] = [view.table.viewport().width(), view.table.viewport().height()]
            found["search_plot"] = _view_box(view.plot.getPlotItem())
            found["search_plot_titles_fit"] = _titles_fit(view.plot.getPlotItem())
    return found


def _titles_fit(plot_item) -> bool:
    """Each shown axis title is no longer than its axis (pyqtgraph cuts it otherwise)."""
    fits = True
    for name in ("left", "bottom"):
        axis = plot_item.getAxis(name)
        if axis.isVisible() and axis.label.isVisible() and axis.labelText:
            length = axis.height() if name == "left" else axis.width()
            fits &= axis.label.boundingRect().width() <= length
    return bool(fits)


def _cell_pixels(grid) -> list[float]:
    """On-screen width and height of one image cell of an image grid."""
    h, w = grid._cell_size
    box = grid.plot.getViewBox()
    (x0, x1), (y0, y1) = box.viewRange()
    return [round(w * box.width() / max(x1 - x0, 1e-9), 2), round(h * box.height() / max(y1 - y0, 1e-9), 2)]


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
