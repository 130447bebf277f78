"""The explorer window: docks for the data, the training panel, the loss curves, the exploring views
and the message log, around one shared ExplorerState.

The window is the conductor. It loads data and runs (on the worker pool, with a busy indicator),
starts training through the TrainingController, encodes the explored samples whenever the model or
the data changes, and routes every message to the status bar, the log and (errors) a dialog.
Everything slow happens off the GUI thread; a result that arrives after the user moved on (other
data requested, another model current) is dropped.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QAbstractSpinBox, QComboBox, QDockWidget, QFileDialog, QLabel, QLineEdit,
                               QMainWindow, QMessageBox, QPlainTextEdit, QProgressBar, QTextEdit, QWidget)

import app
from app.core.config import DataConfig
from app.core.errors import LatentExplorerError
from app.gui.data_panel import DataPanel
from app.gui.loss_view import LossView
from app.gui.message_log import MessageLog
from app.gui.run_io import ModelRecord, is_run_dir, open_run_with_data, save_record
from app.gui.state import ExplorerState
from app.gui.training_controller import TrainingController
from app.gui.training_panel import TrainingPanel
from app.gui.workers import Task, cancel_all_tasks, readable, wait_for_tasks

NO_CLOSE_PROMPT_ENV = "LATENT_EXPLORER_NO_CLOSE_PROMPT"
DATA_FILE_FILTER = ("Data files (*.npz *.npy *.csv *.tsv *.txt *.gz *-ubyte);;NumPy (*.npz *.npy);;"
                    "CSV / text (*.csv *.tsv *.txt);;IDX (*.gz *-ubyte);;All files (*)")
SHUTDOWN_WAIT_MS = 10_000
STATUS_MESSAGE_MS = 8_000

SHORTCUTS = [
    ("Ctrl+T", "Train a new model with the panel's settings"),
    ("Space", "Pause or resume training (when not typing in a field)"),
    ("Ctrl+. or Esc", "Stop training, keeping the model trained so far"),
    ("Ctrl+O", "Open a run directory"),
    ("Ctrl+Shift+O", "Open a data file"),
    ("Ctrl+S", "Save the current model as a run directory"),
    ("Ctrl+Q", "Quit"),
    ("Click a legend entry", "Hide or show that loss curve"),
]


def is_typing_widget(widget: QWidget | None) -> bool:
    """Space belongs to the field being typed in, not to the pause shortcut."""
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return isinstance(widget, (QLineEdit, QAbstractSpinBox, QPlainTextEdit, QTextEdit))


class MainWindow(QMainWindow):
    dataLoaded = Signal()            # a requested data set became state.data
    dataLoadFailed = Signal(str)     # the readable reason; the previous data is kept
    runOpened = Signal(str)          # a run directory became the current model
    runOpenFailed = Signal(str)
    runSaved = Signal(str)           # the run directory written
    encodingFinished = Signal()      # state.encoded now matches the current model and data
    recoveryOffered = Signal(str)
    viewsBuilt = Signal()            # the exploring views are docked (just after the first show)    # an autosave of a crashed session was offered (its checkpoint)

    def __init__(self, load_builtin: str | None = "digits", warm_up_projections: bool = True,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Latent Explorer")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self._fit_to_screen()
        self.confirm_close = True   # False (or LATENT_EXPLORER_NO_CLOSE_PROMPT=1): close without asking
        self.state = ExplorerState(self)
        self.controller = TrainingController(self.state, self)
        self._data_cfg: DataConfig | None = None       # how state.data was loaded
        self._record: ModelRecord | None = None         # the model being explored, for saving
        self._data_request = 0                           # newest data/run request; older results are dropped
        self._busy: dict[int, str] = {}
        self._busy_next = 0
        self._closed = False
        self._dialogs: list[QMessageBox] = []

        self.data_panel = DataPanel(self.state)
        self.training_panel = TrainingPanel()
        self.loss_view = LossView(self.state)
        self.message_log = MessageLog(self.state)
        self.docks: dict[str, QDockWidget] = {}
        self.views: list[QWidget] = []
        self._warm_up_projections = warm_up_projections
        self._sized = False
        self._layout_restored = False
        self._build_docks()
        self._build_status_bar()
        self._build_menus()
        self._connect()
        self._restore_geometry()
        # The views (and torch, which they need) are built just after the window first appears, so
        # it shows in well under two seconds; building them takes about one more second.
        QTimer.singleShot(1500, self._build_views)   # also when never painted (scripts, some tests)
        self.data_panel.installEventFilter(self)     # its first paint starts building the views
        if load_builtin:
            self.open_data(load_builtin)

    # --- construction -------------------------------------------------------------------------
    def _fit_to_screen(self) -> None:
        """Start large: the views need room. 92 % of the screen, at most 1680 x 1050 (until the
        user's own size is restored from the settings)."""
        from PySide6.QtGui import QGuiApplication

        screen = QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(1440, 900)
            return
        area = screen.availableGeometry()
        self.resize(min(1680, int(area.width() * 0.92)), min(1050, int(area.height() * 0.92)))

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea, key: str) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{key}")   # saveState/restoreState find docks by name
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        self.docks[key] = dock
        return dock

    def _build_docks(self) -> None:
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        # The settings column runs the full height; the views share the rest.
        self.setCorner(Qt.Corner.TopLeftCorner, left)
        self.setCorner(Qt.Corner.BottomLeftCorner, left)
        data_dock = self._dock("Data", self.data_panel, left, "data")
        training_dock = self._dock("Training", self.training_panel, left, "training")
        self.splitDockWidget(data_dock, training_dock, Qt.Orientation.Vertical)
        self._loss_dock = self._dock("Loss curves", self.loss_view, right, "loss")
        self._left_docks = (data_dock, training_dock)

    def _build_views(self) -> None:
        """Dock the exploring views, arrange the default layout, then restore the user's."""
        if self.views or self._closed:
            return
        from app.gui.views import build_views

        right = Qt.DockWidgetArea.RightDockWidgetArea
        loss_dock = self._loss_dock
        data_dock, training_dock = self._left_docks
        by_kind = {}
        for title, view, area in build_views(self.state, self, warm_up_projections=self._warm_up_projections):
            self.views.append(view)
            # Every view starts in the right-hand area: tabifying or splitting docks across areas
            # leaves stray copies of Qt's tab bars behind in the area they left.
            by_kind[type(view).__name__] = self._dock(title, view, right, type(view).__name__)
        log_dock = self._dock("Messages", self.message_log, right, "messages")
        # The default arrangement and sizes live in app/gui/default_layout.py.
        from app.gui.default_layout import arrange
        self._default_docks = arrange(self, by_kind, loss_dock, log_dock, data_dock, training_dock)
        self._default_state = self.saveState()
        view_actions = [dock.toggleViewAction() for key, dock in self.docks.items()
                        if key not in ("data", "training", "loss")]
        self.view_menu.insertActions(self._view_menu_separator, view_actions)
        self._restore_layout()
        if not self.controller.running:
            self._show_device(None)
        if self.isVisible() and not self._sized:
            self._sized = True
            if not self._layout_restored:
                self._apply_default_sizes()
        self.viewsBuilt.emit()

    def _apply_default_sizes(self) -> None:
        """Dock sizes only take once the window has its size, so this runs when it is first shown."""
        from app.gui.default_layout import apply_sizes
        apply_sizes(self, self._default_docks)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        # The first paint of the window's content has happened: the user sees the window, so the
        # second of building the views (and loading torch) no longer delays its appearance.
        if watched is self.data_panel and event.type() == QEvent.Type.Paint:
            self.data_panel.removeEventFilter(self)
            QTimer.singleShot(0, self._build_views)
        return False

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)

        if not self._sized and self.views:
            self._sized = True
            if not self._layout_restored:
                self._apply_default_sizes()

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.busy_label = QLabel()
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumWidth(120)
        self.busy_bar.setMaximumHeight(14)
        self.busy_bar.setToolTip("Working in the background; the window stays usable")
        self.busy_label.hide()
        self.busy_bar.hide()
        self.device_label = QLabel()
        self.device_label.setToolTip("The device training runs on (Training > Device)")
        bar.addPermanentWidget(self.busy_label)
        bar.addPermanentWidget(self.busy_bar)
        bar.addPermanentWidget(self.device_label)
        self.device_label.setText("Device: …")   # asking torch waits until the views (and torch) are loaded

    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setToolTip(tip or text)
        action.setStatusTip(tip or text)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_file_action = self._action(file_menu, "Open data file…", self.ask_open_data_file,
                                             QKeySequence("Ctrl+Shift+O"),
                                             "Open a .npz, .npy, .csv or IDX (.gz) data file")
        self.open_folder_action = self._action(file_menu, "Open data folder…", self.ask_open_data_folder, None,
                                               "Open a folder of images or of IDX files")
        builtin_menu = file_menu.addMenu("Open built-in data")
        from app.core.data import BUILTIN_DATASETS
        self.builtin_actions = [self._action(builtin_menu, name, lambda _=False, n=name: self.open_data(n), None, text)
                                for name, text in BUILTIN_DATASETS.items()]
        file_menu.addSeparator()
        self.open_run_action = self._action(file_menu, "Open run…", self.ask_open_run, QKeySequence.StandardKey.Open,
                                            "Open a run directory saved by the window or the command line")
        self.save_run_action = self._action(file_menu, "Save run as…", self.ask_save_run, QKeySequence.StandardKey.Save,
                                            "Save the current model, its settings and history as a run directory")
        file_menu.addSeparator()
        self._action(file_menu, "Quit", self.close, QKeySequence.StandardKey.Quit, "Close the window")

        train_menu = bar.addMenu("&Training")
        self.train_action = self._action(train_menu, "Train", self.start_training, "Ctrl+T",
                                         "Train a new model with the panel's settings")
        self.pause_action = self._action(train_menu, "Pause / resume", self._space_pressed, "Space",
                                         "Pause or resume training")
        self.stop_action = self._action(train_menu, "Stop", self.controller.stop, ["Ctrl+.", "Esc"],
                                        "Stop training, keeping the model trained so far")
        from app.gui.continue_training import add_continue_action   # resume an opened run (issue 13)
        self.continue_action = add_continue_action(self, train_menu)

        self.view_menu = bar.addMenu("&View")
        for dock in self.docks.values():
            self.view_menu.addAction(dock.toggleViewAction())
        self._view_menu_separator = self.view_menu.addSeparator()   # the views' entries go above
        self._action(self.view_menu, "Reset layout", self.reset_layout, None, "Put every panel back where it started")

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "Keyboard shortcuts", self.show_shortcuts, QKeySequence.StandardKey.HelpContents)
        self._action(help_menu, "About Latent Explorer", self.show_about)

    def _connect(self) -> None:
        state, panel = self.state, self.training_panel
        state.messageRaised.connect(self._show_message)
        self.data_panel.openRequested.connect(self.open_data)
        self.data_panel.openFileRequested.connect(self.ask_open_data_file)
        self.data_panel.openFolderRequested.connect(self.ask_open_data_folder)
        panel.trainRequested.connect(self.start_training)
        panel.pauseRequested.connect(self.controller.pause)
        panel.resumeRequested.connect(self.controller.resume)
        panel.stopRequested.connect(self.controller.stop)
        self.controller.progressed.connect(panel.show_progress)
        self.controller.progressed.connect(self.loss_view.add_progress)
        self.controller.epochEnded.connect(panel.show_epoch)
        self.controller.runStateChanged.connect(self._run_state_changed)
        self.controller.trainingStopped.connect(self._training_stopped)
        panel.model_form.changed.connect(self._update_actions)
        panel.train_form.changed.connect(self._update_actions)
        panel.data_form.changed.connect(self._update_actions)
        self._update_actions()

    # --- layout persistence -------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geometry = QSettings().value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)

    def _restore_layout(self) -> None:
        """The docks' arrangement; needs every dock to exist, so it runs once the views are built."""
        from app.gui.default_layout import LAYOUT_VERSION
        layout = QSettings().value("window/state")
        self._layout_restored = False
        if isinstance(layout, QByteArray) and not layout.isEmpty():
            self._layout_restored = self.restoreState(layout, LAYOUT_VERSION)   # older layouts: the new default

    def _save_layout(self) -> None:
        settings = QSettings()
        settings.setValue("window/geometry", self.saveGeometry())
        from app.gui.default_layout import LAYOUT_VERSION
        settings.setValue("window/state", self.saveState(LAYOUT_VERSION))

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for dock in self.docks.values():
            dock.setFloating(False)
            dock.show()
        self._apply_default_sizes()   # raises the default tabs too

    # --- messages -----------------------------------------------------------------------------
    def _show_message(self, level: str, text: str) -> None:
        self.statusBar().showMessage(text, STATUS_MESSAGE_MS * (2 if level != "info" else 1))
        if level == "error":
            self.show_error(text)

    def show_error(self, text: str) -> None:
        """A non-blocking dialog (tests replace this method to collect the messages)."""
        if self._closed:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Latent Explorer", text, QMessageBox.StandardButton.Ok, self)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _=0, b=box: self._dialogs.remove(b) if b in self._dialogs else None)
        self._dialogs.append(box)
        box.open()

    def _show_info_dialog(self, title: str, html_text: str) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Information, title, html_text, QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _=0, b=box: self._dialogs.remove(b) if b in self._dialogs else None)
        self._dialogs.append(box)
        box.open()
        return box

    def show_shortcuts(self) -> QMessageBox:
        rows = "".join(f"<tr><td style='padding-right:16px'><b>{keys}</b></td><td>{text}</td></tr>"
                       for keys, text in SHORTCUTS)
        return self._show_info_dialog("Keyboard shortcuts", f"<table>{rows}</table>")

    def show_about(self) -> QMessageBox:
        import PySide6
        import pyqtgraph
        return self._show_info_dialog(
            "About Latent Explorer",
            f"<h3>Latent Explorer {app.__version__}</h3>"
            "<p>Train autoencoders and look inside them: live losses, latent projections (PCA, UMAP, "
            "t-SNE), reconstructions and latent traversals.</p>"
            f"<p>PySide6 {PySide6.__version__}, pyqtgraph {pyqtgraph.__version__}. "
            "Run <code>python main.py --help</code> for the command line.</p>")

    # --- busy indicator -----------------------------------------------------------------------
    def _busy_start(self, text: str) -> int:
        self._busy_next += 1
        self._busy[self._busy_next] = text
        self._refresh_busy()
        return self._busy_next

    def _busy_end(self, token: int) -> None:
        self._busy.pop(token, None)
        self._refresh_busy()

    def _refresh_busy(self) -> None:
        text = next(reversed(self._busy.values()), None) if self._busy else None
        self.busy_label.setText(text or "")
        self.busy_label.setVisible(bool(text))
        self.busy_bar.setVisible(bool(text))

    @property
    def busy(self) -> bool:
        return bool(self._busy)

    def _job(self, text: str, fn, *args, on_done, on_error) -> None:
        """run_job with the busy indicator; nothing starts, and no callback runs, once the window closed
        (a training thread stopped on close still delivers its last signals afterwards)."""
        if self._closed:
            return
        token = self._busy_start(text)
        task = Task(self, text)

        def done(result):
            self._busy_end(token)
            task.deleteLater()
            if not self._closed:
                on_done(result)

        def failed(message):
            self._busy_end(token)
            task.deleteLater()
            if not self._closed:
                on_error(message)

        task.start(lambda _state: fn(*args), on_done=done, on_error=failed)

    # --- data ---------------------------------------------------------------------------------
    def _training_blocks(self, what: str) -> bool:
        if self.controller.running:
            self.state.warn(f"Stop training before {what}")
            return True
        return False

    def ask_open_data_file(self) -> None:
        from app.gui.export import last_folder, remember_folder
        path, _ = QFileDialog.getOpenFileName(self, "Open data file", last_folder(), DATA_FILE_FILTER)
        if path:
            remember_folder(path)
            self.open_data(path)

    def ask_open_data_folder(self) -> None:
        from app.gui.export import last_folder, remember_folder
        path = QFileDialog.getExistingDirectory(self, "Open data folder (images or IDX files)", last_folder())
        if path:
            remember_folder(path)   # the next dialog starts beside this folder
            self.open_data(path)

    def open_path(self, path: str) -> None:
        """A run directory opens as a run; anything else (a built-in name, a file, a folder) as data."""
        if is_run_dir(path):
            self.open_run(path)
        else:
            self.open_data(path)

    def open_data(self, spec: str) -> None:
        """Load `spec` on the worker pool; on failure the current data and model stay as they are."""
        if self._training_blocks("opening other data"):
            return
        try:
            split = self.training_panel.data_form.values()
        except LatentExplorerError:
            split = DataConfig()
        # Generated sets (shapes, sines) use the split seed as their generation seed too.
        cfg = DataConfig(spec=spec, val_fraction=split.val_fraction, split_seed=split.split_seed)
        self._data_request += 1
        request = self._data_request
        name = Path(spec).name or spec
        from app.core.data import load_dataset
        self._job(f"Loading {name}…", load_dataset, cfg,
                  on_done=lambda data: self._data_loaded(data, cfg, request),
                  on_error=lambda message: self._data_failed(message, spec, request))
        self.data_panel.set_busy(f"Loading {name}…")

    def _data_failed(self, message: str, spec: str, request: int) -> None:
        if request != self._data_request:
            return
        self.data_panel.set_busy(None)
        kept = f" The current data ({self.state.data.name}) is kept." if self.state.data is not None else ""
        self.state.error(f"Could not open {spec}: {message.rstrip('.')}.{kept}")
        self.dataLoadFailed.emit(message)

    def _data_loaded(self, data, cfg: DataConfig, request: int) -> None:
        if request != self._data_request:
            return   # the user asked for something else meanwhile
        self.data_panel.set_busy(None)
        self.state.info(f"Loaded {data.summary()}")   # first, so a warning about the model shows after it
        self._set_data(data, cfg)
        if data.skipped:
            self.state.warn(f"{len(data.skipped)} files in {data.name} were skipped (see the Data panel)")
        self.dataLoaded.emit()

    def _set_data(self, data, cfg: DataConfig) -> None:
        snapshot = self.state.snapshot
        fits = snapshot is not None and tuple(snapshot.info["input_shape"]) == tuple(data.sample_shape)
        if snapshot is not None and not fits:
            # Clear the model first, so no view ever pairs it with data of another shape.
            self.state.set_snapshot(None)
            self.state.warn(f"The current model expects samples of {'x'.join(map(str, snapshot.info['input_shape']))}"
                            f" but {data.name} has {'x'.join(map(str, data.sample_shape))}: train a new model"
                            + (" (save the current one first with File > Save run as…)"
                               if self._record is not None and self._record.unsaved else ""))
        self._data_cfg = cfg
        self.state.set_data(data, seed=cfg.split_seed)
        self.training_panel.set_data_shape(tuple(data.sample_shape), data.spec)
        self._update_actions()
        if fits:
            self.encode_explored()

    # --- encoding -----------------------------------------------------------------------------
    def encode_explored(self) -> None:
        """Encode data.x[view_idx] with the current snapshot, off the GUI thread."""
        snapshot, data = self.state.snapshot, self.state.data
        if snapshot is None or data is None or tuple(snapshot.info["input_shape"]) != tuple(data.sample_shape):
            return
        generation, view_idx = self.state.generation, self.state.view_idx

        def done(encoded) -> None:
            # state.set_encoded drops results of an older model; the data check drops older data.
            if self.state.data is data and self.state.view_idx is view_idx:
                if self.state.set_encoded(encoded, generation):
                    self.encodingFinished.emit()

        self._job(f"Encoding {len(view_idx):,} samples…", snapshot.encode_all, data.x[view_idx],
                  on_done=done, on_error=lambda message: self.state.error(f"Could not encode the data: {message}"))

    # --- training -----------------------------------------------------------------------------
    def start_training(self) -> bool:
        if self.controller.running:
            return False
        panel = self.training_panel
        try:
            split, model_cfg, train_cfg = panel.configs()
        except LatentExplorerError as exc:
            self.state.error(f"Cannot start training: {exc}")
            return False
        if self.state.data is None or self._data_cfg is None:
            self.state.error("Load data before training (File > Open data…, or pick a built-in data set)")
            return False
        data_cfg = dataclasses.replace(self._data_cfg, val_fraction=split.val_fraction, split_seed=split.split_seed)
        panel.reset_progress()
        self.loss_view.clear_live()
        if not self.controller.start(data_cfg, model_cfg, train_cfg):
            panel.show_finished("Not training", complete=False)
            return False
        self._record = self.controller.record
        self._show_device(self.controller.device_name)
        return True

    def _space_pressed(self) -> None:
        if is_typing_widget(self.focusWidget()):
            return
        self.controller.toggle_pause()

    def _run_state_changed(self, run_state: str) -> None:
        self.training_panel.set_run_state(run_state)
        self.data_panel.set_enabled_for_training(run_state == "idle")
        self._update_actions()

    def _training_stopped(self, finished) -> None:
        if finished is not None:
            done = finished.epochs_run
            self.training_panel.show_finished(f"{finished.reason.replace('_', ' ').capitalize()} after {done} "
                                              f"epoch{'s' if done != 1 else ''}: {finished.message}",
                                              complete=finished.reason == "completed")
        else:
            self.training_panel.show_finished("Training failed; see Messages", complete=False)
        self.encode_explored()
        self._update_actions()

    def _show_device(self, name: str | None) -> None:
        if name is None:
            from app.core.device import describe_device, resolve_device
            name = describe_device(resolve_device("auto"))
            self.device_label.setText(f"Device: {name}")
        else:
            self.device_label.setText(f"Training on: {name}")

    def _update_actions(self, *_args) -> None:
        idle = not self.controller.running
        run_state = self.controller.run_state
        self.train_action.setEnabled(self.training_panel.train_button.isEnabled())
        self.pause_action.setEnabled(not idle)
        self.stop_action.setEnabled(not idle)
        for action in (self.open_file_action, self.open_folder_action, self.open_run_action, *self.builtin_actions):
            action.setEnabled(idle)
        self.save_run_action.setEnabled(idle and self._record is not None)
        self.pause_action.setText("Resume" if run_state == "paused" else "Pause")

    # --- runs ---------------------------------------------------------------------------------
    def ask_open_run(self) -> None:
        from app.gui.export import last_folder, remember_folder
        path = QFileDialog.getExistingDirectory(self, "Open run directory", last_folder())
        if path:
            remember_folder(path)
            self.open_run(path)

    def open_run(self, path: str) -> None:
        """Open a run directory and its data on the worker pool; the data is optional."""
        if self._training_blocks("opening a run"):
            return
        self._data_request += 1   # a data load still in flight must not replace the run's data
        request = self._data_request
        self._job(f"Opening {Path(path).name}…", open_run_with_data, path,
                  on_done=lambda opened: self._run_opened(opened, request),
                  on_error=lambda message: self._run_failed(message, path))

    def _run_failed(self, message: str, path: str) -> None:
        self.data_panel.set_busy(None)   # a data load it superseded may have left the indicator on
        self.state.error(f"Could not open the run {path}: {message}")
        self.runOpenFailed.emit(message)

    def _run_opened(self, opened, request: int) -> None:
        from app.core.snapshot import ModelSnapshot

        if request != self._data_request or self.controller.running:
            self.state.warn(f"Ignored the run {opened.run.path}: something else was opened meanwhile")
            return
        run, data = opened.run, opened.data
        self.data_panel.set_busy(None)
        self.state.set_snapshot(None)   # no view may pair the new model with the old data or back
        if data is not None:
            self._data_cfg = run.data_cfg
            self.state.set_data(data, seed=run.data_cfg.split_seed)
            self.state.data_cfg = run.data_cfg
            self.training_panel.set_data_shape(tuple(data.sample_shape), data.spec)
        generation = self.state.next_generation()
        epochs = len(run.history) or int((run.meta.get("metrics") or {}).get("epoch") or 0)
        self.state.set_snapshot(ModelSnapshot.of(run.model, generation, epochs, run.modality))
        self.state.set_history(run.history)
        self.loss_view.clear_live()
        split = DataConfig(val_fraction=run.data_cfg.val_fraction, split_seed=run.data_cfg.split_seed)
        self.training_panel.set_configs(split, run.model_cfg, run.train_cfg)
        self._record = ModelRecord.from_run(run)
        self._update_actions()
        self.state.info(f"Opened the run {run.path}: {run.model_cfg.kind}, latent size {run.model.latent_dim}, "
                        f"{epochs} epochs")
        if opened.data_error:
            here = self.state.data
            fits = here is not None and tuple(here.sample_shape) == tuple(run.model.input_shape)
            kept = (f"; exploring it with the data already open ({here.name})" if fits else
                    "; its history and traversals are shown, but nothing can be encoded until you open data "
                    "of the same shape")
            self.state.error(f"Opened the model from {run.path}, but its data could not be loaded: "
                             f"{opened.data_error}{kept}")
        self.encode_explored()
        self.runOpened.emit(str(run.path))

    def ask_save_run(self) -> None:
        from app.gui.export import ask_save_path
        if self._record is None:
            self.state.warn("There is no model to save yet: train one or open a run")
            return
        name = f"{self._data_cfg.spec if self._data_cfg else 'run'}-{self._record.model_cfg.kind}"
        path = ask_save_path(self, "Save run as (a folder is created)", Path(name).name, "Run folder (*)")
        if path:
            self.save_run_to(path)

    def save_run_to(self, path: str) -> None:
        """Write the current model as a run directory on the worker pool."""
        record = self._record
        if record is None:
            self.state.warn("There is no model to save yet: train one or open a run")
            return
        if self.controller.running:
            self.state.warn("Stop training before saving, so the saved weights are those of a finished step")
            return

        def saved(run_dir) -> None:
            record.saved_to = Path(run_dir)
            self.state.info(f"Saved the run to {run_dir}")
            self.runSaved.emit(str(run_dir))

        self._job(f"Saving {Path(path).name}…", save_record, record, path, on_done=saved,
                  on_error=lambda message: self.state.error(f"Could not save the run: {message}"))

    # --- drag and drop ------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if urls and urls[0].isLocalFile():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if not urls:
            event.ignore()
            return
        event.acceptProposedAction()
        if len(urls) > 1:
            self.state.warn(f"Dropped {len(urls)} items; opening only {urls[0].toLocalFile()}")
        self.open_path(urls[0].toLocalFile())

    # --- closing ------------------------------------------------------------------------------
    def _prompt_on_close(self) -> bool:
        return self.confirm_close and os.environ.get(NO_CLOSE_PROMPT_ENV) != "1"

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._closed:
            event.accept()
            return
        if self.controller.running and not self.controller.shutdown(SHUTDOWN_WAIT_MS):
            self.state.error("Training did not stop within 10 seconds; wait a moment and close again")
            event.ignore()
            return
        record = self._record
        if record is not None and record.unsaved and self._prompt_on_close():
            if not self._offer_save(record):
                event.ignore()
                return
        self._closed = True
        if self.views:   # closed before the views were built: keep the layout saved last time
            self._save_layout()
        for view in self.views:
            shutdown = getattr(view, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception as exc:  # noqa: BLE001 - closing must go on; say what failed
                    print(f"latent-explorer: closing {type(view).__name__} failed: {readable(exc)}")
        cancel_all_tasks()
        wait_for_tasks()
        self.controller.close_autosave(clean=True)   # a normal close: nothing to offer next time
        for box in list(self._dialogs):
            box.close()
        event.accept()

    # --- recovery after a crash ------------------------------------------------------------
    def offer_recovery(self) -> None:
        """If an earlier window died while training, offer its last autosave (found on the pool:
        each candidate is test-loaded)."""
        if os.environ.get("LATENT_EXPLORER_NO_RECOVERY") == "1" or self._closed:
            return
        from app.core.autosave import find_recoverable, prune_sessions

        def scan():
            prune_sessions()
            return find_recoverable()

        self._job("Looking for autosaves…", scan, on_done=self._recovery_found,
                  on_error=lambda message: self.state.warn(f"Could not look for autosaves: {message}"))

    def _recovery_found(self, found) -> None:
        if not found or self._closed:
            return
        latest = found[0]
        box = QMessageBox(QMessageBox.Icon.Question, "Latent Explorer",
                          f"Latent Explorer closed unexpectedly while training "
                          f"{latest.info.get('label') or 'a model'} (autosaved "
                          f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(latest.saved_at))}).\n\n"
                          f"Reopen the last autosave?", QMessageBox.StandardButton.Open
                          | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Ignore, self)
        box.setInformativeText(f"It is kept in {latest.session_dir} until you discard it.")

        def answered(button) -> None:
            from app.core.autosave import CLEAN_EXIT, discard_session
            role = box.standardButton(button)
            if role == QMessageBox.StandardButton.Open:
                self.open_run(str(latest.checkpoint))
                (Path(latest.session_dir) / CLEAN_EXIT).write_text("reopened\n")   # offer it only once
            elif role == QMessageBox.StandardButton.Discard:
                discard_session(latest.session_dir)

        box.buttonClicked.connect(answered)
        self._dialogs.append(box)
        box.open()
        self.recoveryOffered.emit(str(latest.checkpoint))

    def _offer_save(self, record: ModelRecord) -> bool:
        """Save / Discard / Cancel for a trained, unsaved model; returns whether to go on closing."""
        answer = QMessageBox.question(
            self, "Latent Explorer",
            f"Save the trained model before closing?\n\n{record.model_cfg.kind}, {record.epochs_trained} epochs, "
            f"not saved yet.",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Cancel:
            return False
        if answer == QMessageBox.StandardButton.Discard:
            return True
        from app.gui.export import ask_save_path
        path = ask_save_path(self, "Save run as (a folder is created)", f"run-{record.model_cfg.kind}",
                             "Run folder (*)")
        if not path:
            return False
        try:
            save_record(record, path)   # on the GUI thread: the window is about to go
        except LatentExplorerError as exc:
            QMessageBox.warning(self, "Latent Explorer", f"Could not save the run: {exc}")
            return False
        record.saved_to = Path(path)
        return True
