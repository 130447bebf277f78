"""The explorer window: docks, menus, drag and drop, dialogs and closing, around one ExplorerState.

Everything else (loading data and runs, encoding, training, saving, autosave recovery, the one
current model and data config) is the AppController's (app/gui/app_controller.py), a QObject
without widgets; the window shows what it reports and asks the user what it needs to know. The
actions are declared once in app/gui/actions.py (menus and the shortcuts dialog alike).
"""

from __future__ import annotations

import os

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractSpinBox, QComboBox, QDockWidget, QLineEdit, QMainWindow, QMessageBox,
                               QPlainTextEdit, QTextEdit, QWidget)

from app.gui.actions import build_actions
from app.gui.app_controller import AppController
from app.gui.data_panel import DataPanel
from app.gui.dialogs import WindowDialogs
from app.gui.gui_thread_gc import collect_garbage_on_gui_thread
from app.gui.loss_view import LossView
from app.gui.message_log import MessageLog
from app.gui.state import ExplorerState
from app.gui.training_panel import TrainingPanel
from app.gui.window_settings import fit_to_screen, restore_geometry, restore_layout, save_layout, status_widgets
from app.gui.workers import readable

NO_CLOSE_PROMPT_ENV = "LATENT_EXPLORER_NO_CLOSE_PROMPT"
SHUTDOWN_WAIT_MS = 10_000
STATUS_MESSAGE_MS = 8_000
FORWARDED_SIGNALS = ("dataLoaded", "dataLoadFailed", "runOpened", "runOpenFailed", "runSaved", "encodingFinished")


def is_typing_widget(widget: QWidget | None) -> bool:
    """Space belongs to the field being typed in, not to the pause shortcut."""
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return isinstance(widget, (QLineEdit, QAbstractSpinBox, QPlainTextEdit, QTextEdit))


class MainWindow(QMainWindow):
    recoveryOffered = Signal(str)    # an autosave of a crashed session was offered (its checkpoint)
    viewsBuilt = Signal()            # the exploring views are docked (just after the first show)

    def __init__(self, load_builtin: str | None = "digits", warm_up_projections: bool = True,
                 parent: QWidget | None = None):
        super().__init__(parent)
        collect_garbage_on_gui_thread()   # never in a worker thread: app/gui/gui_thread_gc.py
        self.setWindowTitle("Latent Explorer")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        fit_to_screen(self)
        self.confirm_close = True   # False (or LATENT_EXPLORER_NO_CLOSE_PROMPT=1): close without asking
        self.state = ExplorerState(self)
        self.app = AppController(self.state, self)
        self.controller = self.app.training
        for name in FORWARDED_SIGNALS:   # the controller's signals, under the window's names
            setattr(self, name, getattr(self.app, name))
        self.dialogs = WindowDialogs(self)
        self._dialogs = self.dialogs.boxes
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
        self.busy_label, self.busy_bar, self.device_label = status_widgets(self)
        from app.gui.live_run import LiveBadge   # "live · updated …" while following a run (issue 14)
        self.live_badge = LiveBadge(self.app.live, self)
        self.statusBar().addPermanentWidget(self.live_badge)
        self._show_busy("")
        self._build_menus()
        self._connect()
        restore_geometry(self)
        # The views (and torch, which they need) are built just after the window first appears, so
        # it shows in well under two seconds; building them takes about one more second.
        QTimer.singleShot(1500, self._build_views)   # also when never painted (scripts, some tests)
        self.data_panel.installEventFilter(self)     # its first paint starts building the views
        if load_builtin:
            self.open_data(load_builtin)

    # --- construction -------------------------------------------------------------------------
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
        if self.views or self.app.closed:
            return
        from app.gui.views import build_views

        right = Qt.DockWidgetArea.RightDockWidgetArea
        loss_dock = self._loss_dock
        data_dock, training_dock = self._left_docks
        by_kind = {}
        for title, view in build_views(self.state, self, warm_up_projections=self._warm_up_projections):
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
        self._layout_restored = restore_layout(self)
        if not self.controller.running:
            self.training.show_device(None)
        self.analysis_view().anomaly_tab.retrainRequested.connect(self.training.retrain)
        if self.isVisible():
            self._size_once()
        self.viewsBuilt.emit()

    def _size_once(self) -> None:
        """Dock sizes only take once the window has its size: the first show after the views exist."""
        if not self._sized and self.views:
            self._sized = True
            if not self._layout_restored:
                self._apply_default_sizes()

    def _apply_default_sizes(self) -> None:
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
        self._size_once()

    def _build_menus(self) -> None:
        bar = self.menuBar()
        menus = {title: bar.addMenu(title) for title in ("&File", "&Training", "&View", "&Help")}
        build_actions(self, menus)
        from app.core.data import BUILTIN_DATASETS
        builtin_menu = menus["&File"].addMenu("Open built-in data")
        menus["&File"].insertMenu(self.open_run_action, builtin_menu)
        self.builtin_actions = []
        for name, text in BUILTIN_DATASETS.items():
            action = builtin_menu.addAction(name, lambda n=name: self.open_data(n))
            action.setToolTip(text)
            self.builtin_actions.append(action)
        from app.gui.continue_training import add_continue_action   # resume an opened run (issue 13)
        self.continue_action = add_continue_action(self, menus["&Training"])
        self.view_menu = menus["&View"]
        reset = self.view_menu.actions()[0]
        for dock in self.docks.values():
            self.view_menu.insertAction(reset, dock.toggleViewAction())
        self._view_menu_separator = self.view_menu.insertSeparator(reset)   # the views' entries go above

    def _connect(self) -> None:
        state = self.state
        state.messageRaised.connect(self._show_message)
        self.app.busyChanged.connect(self._show_busy)
        self.data_panel.bind(self.app)   # loading, the explore setting, the encoding's progress and Cancel
        self.app.recoveryFound.connect(self._offer_autosave)
        self.data_panel.openRequested.connect(self.open_data)
        self.data_panel.openFileRequested.connect(self.ask_open_data_file)
        self.data_panel.openFolderRequested.connect(self.ask_open_data_folder)
        from app.gui.training_binding import TrainingBinding
        self.training = TrainingBinding(self)
        self.training.update_actions()

    def analysis_view(self):
        from app.gui.analysis import AnalysisView
        return next(view for view in self.views if isinstance(view, AnalysisView))

    # --- layout -------------------------------------------------------------------------------
    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for dock in self.docks.values():
            dock.setFloating(False)
            dock.show()
        self._apply_default_sizes()   # raises the default tabs too

    # --- messages and dialogs -----------------------------------------------------------------
    def _show_message(self, level: str, text: str) -> None:
        self.statusBar().showMessage(text, STATUS_MESSAGE_MS * (2 if level != "info" else 1))
        if level == "error":
            self.show_error(text)

    def show_error(self, text: str) -> None:
        """A non-blocking dialog (tests replace this method to collect the messages)."""
        if not self.app.closed:
            self.dialogs.error(text)

    def show_shortcuts(self) -> QMessageBox:
        return self.dialogs.shortcuts()

    def show_about(self) -> QMessageBox:
        return self.dialogs.about()

    def _show_busy(self, text: str) -> None:
        self.busy_label.setText(text)
        self.busy_label.setVisible(bool(text))
        self.busy_bar.setVisible(bool(text))

    @property
    def busy(self) -> bool:
        return self.app.busy

    # --- data and runs: dialogs in front of the controller -------------------------------------
    def open_data(self, spec: str) -> None:
        if (cfg := self.data_panel.load_config(self.training.split())) is not None:
            self.app.open_data(spec, cfg)

    def open_path(self, path: str) -> None:
        if (cfg := self.data_panel.load_config(self.training.split())) is not None:
            self.app.open_path(path, cfg)

    def open_run(self, path: str) -> None:
        self.app.open_run(path)

    def save_run_to(self, path: str) -> None:
        self.app.save_run_to(path)

    def ask_open_data_file(self) -> None:
        if path := self.dialogs.ask_path("Open data file", folder=False):
            self.open_data(path)

    def ask_open_data_folder(self) -> None:
        if path := self.dialogs.ask_path("Open data folder (images or IDX files)", folder=True):
            self.open_data(path)

    def ask_open_run(self) -> None:
        if path := self.dialogs.ask_path("Open run directory", folder=True):
            self.open_run(path)

    def ask_save_run(self) -> None:
        if self.app.record is None:
            self.state.warn("There is no model to save yet: train one or open a run")
        elif path := self.dialogs.ask_run_folder(self.app.record, self.state.data_cfg.spec if self.state.data_cfg
                                                 else "run"):
            self.save_run_to(path)

    # --- training -----------------------------------------------------------------------------
    def start_training(self, normal_classes: str | None = None) -> bool:
        """Train a new model with the panel's settings, after asking about an unsaved one."""
        if self.controller.running or not self._may_replace_model("training a new one"):
            return False
        return self.training.start(normal_classes)

    def _may_replace_model(self, what: str) -> bool:
        """Save / Discard / Cancel before a trained, unsaved model is replaced; whether to go on."""
        record = self.app.record
        if record is None or not record.unsaved or not self._prompt_on_close():
            return True
        return self.dialogs.ask_save_model(record, what, self.app.save_now, self._stop_for_saving)

    def _stop_for_saving(self) -> bool:
        if self.app.shutdown_training(SHUTDOWN_WAIT_MS):
            return True
        self.state.error("Training did not stop within 10 seconds; wait a moment and try again")
        return False

    def space_pressed(self) -> None:
        if not is_typing_widget(self.focusWidget()):
            self.controller.toggle_pause()

    def stop_training(self) -> None:
        self.controller.stop()

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
        """Ask about an unsaved model first (training goes on while the question is open, and after
        Cancel); then stop training, the views and the background work, and close promptly."""
        if self.app.closed:
            event.accept()
            return
        if not self._may_replace_model("closing"):
            event.ignore()
            return
        if not self.app.shutdown_training(SHUTDOWN_WAIT_MS):
            self.state.error("Training did not stop within 10 seconds; wait a moment and close again")
            event.ignore()
            return
        if self.views:   # closed before the views were built: keep the layout saved last time
            save_layout(self)
        for view in self.views:
            shutdown = getattr(view, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception as exc:  # noqa: BLE001 - closing must go on; say what failed
                    print(f"latent-explorer: closing {type(view).__name__} failed: {readable(exc)}")
        self.app.close()   # cancels and waits for background work, marks the autosave clean
        self.dialogs.close_all()
        event.accept()

    # --- recovery after a crash -----------------------------------------------------------------
    def offer_recovery(self) -> None:
        """If an earlier window died while training, offer its last autosave."""
        self.app.look_for_recovery()

    def _offer_autosave(self, latest) -> None:
        self.dialogs.offer_autosave(latest, self.app.reopen_autosave, self.app.discard_autosave)
        self.recoveryOffered.emit(str(latest.checkpoint))
