"""The Search dock: define a hyperparameter search, run or follow it, open any trial.

The space is TOML (the same text `main.py search --space` reads); "Add setting" lists the training
form's own settings (the config metadata) and writes a starting range or choice list for the one
picked. Start writes SEARCH_DIR/search.json with the training panel's settings fixed, then runs
`python -m app search --out SEARCH_DIR` as a separate process, exactly as from a terminal; Stop sends
it Ctrl+C (SIGINT), which stops the running trials cleanly and keeps finished ones. A search folder
started anywhere else can be opened and is followed live: the journal is polled once a second.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QProcess, Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPlainTextEdit, QPushButton, QSpinBox, QSplitter, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from app.core.errors import LatentExplorerError
from app.core.search import (METHODS, OBJECTIVES, PRUNERS, SearchSpec, best_row, open_study,
                             progress_from_rows, read_spec, spec_from_settings, trial_rows)
from app.core.search_space import parse_space, searchable_fields, space_line
from app.gui.state import ExplorerState

EXAMPLE_SPACE = "lr = { low = 5e-4, high = 5e-3, log = true }\nlatent_dim = [4, 8, 16]\n"
FIXED_COLUMNS = ("trial", "state", "value", "seconds", "epochs")
ERROR_STYLE = "color: #b00020;"
POLL_MS = 1000


class NumberItem(QTableWidgetItem):
    """A cell that sorts by its number (empty cells last), not by its text."""

    def __init__(self, value):
        text = "" if value is None else (f"{value:.5g}" if isinstance(value, float) else str(value))
        super().__init__(text)
        self.value = value
        self.setFlags(self.flags() & ~Qt.ItemIsEditable)

    def __lt__(self, other) -> bool:
        a, b = self.value, getattr(other, "value", None)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return str("" if a is None else a) < str("" if b is None else b)


class SearchView(QWidget):
    openRunRequested = Signal(str)   # a trial's run directory, to load into every view

    def __init__(self, state: ExplorerState, parent: QWidget | None = None, configs=None, open_run=None):
        super().__init__(parent)
        self.state = state
        self._configs = configs          # () -> (DataConfig, ModelConfig, TrainConfig) of the training form
        self._open_run = open_run
        self.folder: Path | None = None
        self.spec: SearchSpec | None = None
        self.rows: list[dict] = []
        self._study = None
        self.process: QProcess | None = None
        self.timer = QTimer(self, interval=POLL_MS)
        self.timer.timeout.connect(self.poll)
        self._build()
        if open_run is not None:
            self.openRunRequested.connect(open_run)

    # --- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.space_edit = QPlainTextEdit(EXAMPLE_SPACE)
        self.space_edit.setToolTip("TOML: a range { low, high, log } or a list of choices per setting")
        self.space_edit.textChanged.connect(self._check_space)
        self.add_box = QComboBox()
        self.add_box.addItem("Add setting…", None)
        for name, (_, f) in searchable_fields().items():
            self.add_box.addItem(name, name)
            self.add_box.setItemData(self.add_box.count() - 1, f.metadata["help"], Qt.ToolTipRole)
        self.add_box.activated.connect(self._add_setting)
        self.method_box, self.objective_box, self.pruner_box = QComboBox(), QComboBox(), QComboBox()
        self.method_box.addItems(METHODS)
        self.method_box.setCurrentText("bayes")
        self.objective_box.addItems(list(OBJECTIVES))
        self.pruner_box.addItems(PRUNERS)
        self.trials_box = QSpinBox(minimum=1, maximum=100000, value=20)
        self.jobs_box = QSpinBox(minimum=1, maximum=max(1, os.cpu_count() or 1), value=1)
        self.folder_edit = QLineEdit(str(Path.home() / "latent-explorer-searches" / "search-1"))
        browse = QPushButton("…", maximumWidth=30)
        browse.clicked.connect(self._browse_folder)
        self.start_button = QPushButton("Start search")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop", enabled=False)
        self.stop_button.setToolTip("Stop the running trials cleanly; finished ones are kept and Start resumes")
        self.stop_button.clicked.connect(self.stop)
        self.follow_button = QPushButton("Open search folder…")
        self.follow_button.setToolTip("Open a search started from the command line (or earlier) and follow it live")
        self.follow_button.clicked.connect(self.ask_follow)
        self.status = QLabel("Define a space, then Start; or open a search folder.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form = QFormLayout()
        for label, widget in (("Method", self.method_box), ("Objective", self.objective_box),
                              ("Pruner", self.pruner_box), ("Trials", self.trials_box), ("Parallel jobs", self.jobs_box)):
            form.addRow(label, widget)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        form.addRow("Folder", folder_row)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.follow_button):
            buttons.addWidget(button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("Search space (TOML); other settings come from the Training panel:"))
        left_layout.addWidget(self.add_box)
        left_layout.addWidget(self.space_edit, 1)
        left_layout.addLayout(form)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.status)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self._build_results())
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

    def _build_results(self) -> QWidget:
        self.table = QTableWidget(0, len(FIXED_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(FIXED_COLUMNS))
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.open_trial(row))
        self.x_box = QComboBox()
        self.x_box.setToolTip("The setting on the scatter's horizontal axis")
        self.x_box.currentIndexChanged.connect(self._draw_scatter)
        self.open_button = QPushButton("Open this trial")
        self.open_button.setToolTip("Load the selected trial's run directory into every view (or double-click a row)")
        self.open_button.clicked.connect(lambda: self.open_trial(self.table.currentRow()))
        self.plot = pg.PlotWidget(background="w")
        self.plot.getPlotItem().showGrid(x=True, y=True, alpha=0.2)
        self.scatter = pg.ScatterPlotItem(size=9, pen=pg.mkPen("#1f77b4"), brush=pg.mkBrush(31, 119, 180, 150))
        self.best_marker = pg.ScatterPlotItem(size=15, symbol="star", brush=pg.mkBrush("#d62728"))
        self.plot.addItem(self.scatter)
        self.plot.addItem(self.best_marker)
        row = QHBoxLayout()
        row.addWidget(QLabel("Objective against"))
        row.addWidget(self.x_box, 1)
        row.addWidget(self.open_button)
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 3)
        layout.addLayout(row)
        layout.addWidget(self.plot, 2)
        return box

    # --- the space ----------------------------------------------------------------------------
    def _add_setting(self, index: int) -> None:
        name = self.add_box.itemData(index)
        self.add_box.setCurrentIndex(0)
        if name is None:
            return
        current = None
        if self._configs is not None:
            try:
                _, model_cfg, train_cfg = self._configs()
                cfg = model_cfg if hasattr(model_cfg, name) else train_cfg
                current = getattr(cfg, name, None)
            except LatentExplorerError:
                current = None
        text = self.space_edit.toPlainText().rstrip("\n")
        self.space_edit.setPlainText((text + "\n" if text else "") + space_line(name, current) + "\n")

    def _check_space(self) -> str | None:
        try:
            space = parse_space(self.space_edit.toPlainText(), "space")
        except LatentExplorerError as exc:
            self._say(str(exc), error=True)
            return None
        self._say("Space: " + "; ".join(space.describe()) + f" (a grid has {space.grid_size()} points)")
        return self.space_edit.toPlainText()

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet(ERROR_STYLE if error else "")
        self.status.setText(text)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Search folder", str(Path(self.folder_edit.text()).parent))
        if path:
            self.folder_edit.setText(path)

    # --- start, stop, follow ------------------------------------------------------------------
    def build_spec(self) -> SearchSpec:
        """The search the dock describes, with the training panel's settings fixed."""
        from app.core.config import DataConfig, ModelConfig, TrainConfig

        space = self._check_space()
        if space is None:
            raise LatentExplorerError(self.status.text())
        data_cfg, model_cfg, train_cfg = self._configs() if self._configs else (DataConfig(), ModelConfig(), TrainConfig())
        if self.state.data is not None and data_cfg.spec != self.state.data.spec:
            data_cfg = dataclasses.replace(data_cfg, spec=self.state.data.spec)
        return spec_from_settings(data_cfg, model_cfg, train_cfg, space, method=self.method_box.currentText(),
                                  trials=self.trials_box.value(), jobs=self.jobs_box.value(),
                                  objective=self.objective_box.currentText(), pruner=self.pruner_box.currentText())

    def start(self) -> bool:
        from app.core.search import prepare_search_dir

        if self.process is not None:
            return False
        folder = Path(self.folder_edit.text()).expanduser()
        try:
            prepare_search_dir(folder, self.build_spec())   # an existing folder must hold this same search
        except LatentExplorerError as exc:
            self._say(f"Cannot start the search: {exc}", error=True)
            return False
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.MergedChannels)
        self.process.finished.connect(self._process_finished)
        self.process.readyReadStandardOutput.connect(self._process_output)
        self.process.setWorkingDirectory(str(Path(__file__).resolve().parents[2]))
        self.process.start(sys.executable, ["-m", "app", "search", "--out", str(folder)])
        self.follow(folder)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.state.info(f"Search started in {folder}")
        return True

    def stop(self) -> None:
        """Ctrl+C for the search process: its trials stop between two steps, finished ones stay."""
        if self.process is None:
            return
        pid = int(self.process.processId())
        if pid and os.name == "posix":
            os.kill(pid, signal.SIGINT)
        else:
            self.process.terminate()
        self._say("Stopping: the running trials end after their current step…")

    def _process_output(self) -> None:
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace").strip().splitlines()
        errors = [line for line in text if line.startswith("error:")]
        if errors:
            self._say(errors[-1], error=True)
            self.state.error(f"Search: {errors[-1][6:].strip()}")

    def _process_finished(self, code: int, _status=None) -> None:
        self.process = None
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.poll()
        if code in (0, 130):
            self.state.info(f"Search in {self.folder} {'stopped' if code == 130 else 'finished'}")

    def ask_follow(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open search folder", self.folder_edit.text())
        if path:
            self.follow(Path(path))

    def follow(self, folder: Path) -> bool:
        try:
            self.spec = read_spec(folder)
        except LatentExplorerError as exc:
            self._say(str(exc), error=True)
            return False
        self.folder, self._study, self.rows = Path(folder), None, []
        self.folder_edit.setText(str(folder))
        self.space_edit.blockSignals(True)
        self.space_edit.setPlainText(self.spec.space)
        self.space_edit.blockSignals(False)
        for box, value in ((self.method_box, self.spec.method), (self.objective_box, self.spec.objective),
                           (self.pruner_box, self.spec.pruner)):
            box.setCurrentText(value)
        self.trials_box.setValue(self.spec.trials)
        self.jobs_box.setValue(min(self.spec.jobs, self.jobs_box.maximum()))
        self.poll()
        self.timer.start()
        return True

    def poll(self) -> None:
        """Re-read the journal (Optuna reads only what was appended) and redraw."""
        if self.folder is None or self.spec is None:
            return
        try:
            if self._study is None:
                if not (self.folder / "journal.log").exists():
                    return
                self._study = open_study(self.folder, self.spec, create=False)
            rows = trial_rows(self._study)
        except (KeyError, OSError, ValueError, LatentExplorerError):
            return   # the journal is being created: try again at the next tick
        if rows != self.rows:
            self.rows = rows
            self._fill_table()
            self._draw_scatter()
        progress = progress_from_rows(self.rows, self.spec)
        self._say(progress.line(self.spec.objective) + ("" if self.process is None else " — running"))
        if self.process is None and progress.running == 0 and progress.finished >= self.spec.trials:
            self.timer.stop()

    # --- table, scatter, opening ----------------------------------------------------------------
    def settings_columns(self) -> list[str]:
        names: list[str] = []
        for row in self.rows:
            names += [k for k in row if k not in FIXED_COLUMNS and k not in ("message", "run_dir", "started")
                      and k not in names]
        return names

    def _fill_table(self) -> None:
        settings = self.settings_columns()
        columns = [*FIXED_COLUMNS, *settings, "message"]
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels([self.spec.objective if c == "value" else c for c in columns])
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            for c, key in enumerate(columns):
                item = NumberItem(row.get(key))
                item.setData(Qt.UserRole, row["trial"])
                if key == "message":
                    item.setToolTip(row.get("message", ""))
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        current = self.x_box.currentText()
        self.x_box.blockSignals(True)
        self.x_box.clear()
        self.x_box.addItems(settings)
        if current in settings:
            self.x_box.setCurrentText(current)
        self.x_box.blockSignals(False)

    def _draw_scatter(self, *_args) -> None:
        name = self.x_box.currentText()
        done = [r for r in self.rows if r["state"] == "complete" and r.get("value") is not None and name in r]
        item = self.plot.getPlotItem()
        item.setLabel("left", self.spec.objective if self.spec else "objective")
        item.setLabel("bottom", name)
        if not done:
            self.scatter.setData([], [])
            self.best_marker.setData([], [])
            return
        values = [r[name] for r in done]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            log = bool(self.spec) and getattr(self.spec.parsed_space().params.get(name), "log", False)
            x = np.log10(np.asarray(values, float)) if log else np.asarray(values, float)
            ticks = None
            item.setLabel("bottom", f"{name} (log10)" if log else name)
        else:
            categories = sorted({str(v) for v in values})
            x = np.asarray([categories.index(str(v)) for v in values], float)
            ticks = [[(float(i), c) for i, c in enumerate(categories)]]
        item.getAxis("bottom").setTicks(ticks)
        y = np.asarray([r["value"] for r in done], float)
        self.scatter.setData(x, y, data=[r["trial"] for r in done])
        best = best_row(self.rows, self.spec.direction)
        index = next(i for i, r in enumerate(done) if r["trial"] == best["trial"])
        self.best_marker.setData([x[index]], [y[index]])

    def trial_dir(self, table_row: int) -> Path | None:
        if self.folder is None or table_row < 0 or self.table.item(table_row, 0) is None:
            return None
        number = self.table.item(table_row, 0).data(Qt.UserRole)
        row = next((r for r in self.rows if r["trial"] == number), None)
        return None if row is None or not row.get("run_dir") else self.folder / row["run_dir"]

    def open_trial(self, table_row: int) -> bool:
        path = self.trial_dir(table_row)
        if path is None or not (path / "model.json").exists():
            self._say("Pick a finished trial first (its run directory is written when it ends).", error=True)
            return False
        self.openRunRequested.emit(str(path))
        return True

    def shutdown(self) -> None:
        """The window closes: stop following; a running search is stopped cleanly."""
        self.timer.stop()
        if self.process is not None:
            self.stop()
            self.process.waitForFinished(30000)



def window_configs(window):
    """The training form's settings with the window's data (what a Train press would use)."""
    from app.core.config import DataConfig

    split, model_cfg, train_cfg = window.training_panel.configs()
    base = window.state.data_cfg
    if base is None:
        data = window.state.data
        base = DataConfig(spec=data.spec if data is not None else "digits")
    data_cfg = dataclasses.replace(base, val_fraction=split.val_fraction, split_seed=split.split_seed)
    return data_cfg, model_cfg, train_cfg
