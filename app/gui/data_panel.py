"""The data panel: what is loaded (samples, shape, labels, factors, skipped files) and the ways to
load something else (a built-in set, a file, a folder; dropping onto the window works too), how
many of its samples the window explores (a persisted setting), and the encoding's progress.

The panel only asks for data (`openRequested`, `openFileRequested`, `openFolderRequested`); the
main window loads it on a worker and reports through the shared state. How data is read (image
size, label column, limit, image shape, normal classes, memory map, ...) is the DataConfig form
below, generated from the same dataclass as the CLI's flags (folded under "Advanced"); the split
settings live in the training panel. `load_config` joins the two for the next open.
"""

from __future__ import annotations

import dataclasses
import html

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar,
                               QPushButton, QSizePolicy, QVBoxLayout, QWidget)

from app.core.config import DataConfig
from app.core.data import BUILTIN_DATASETS
from app.core.errors import ConfigError
from app.gui.config_form import ConfigForm
from app.gui.state import EXPLORE_ALL, MAX_EXPLORED_SAMPLES, ExplorerState
from app.gui.window_settings import load_explore_limit, save_explore_limit

MAX_LABELS_LISTED = 12
EXPLORE_CHOICES = (10_000, 100_000, 1_000_000, EXPLORE_ALL)
EXPLORE_TOOLTIP = ("How many samples the maps, reconstructions and analyses use: a seeded subset of the data "
                   "(the same samples every time; a larger number keeps the smaller one's samples and adds more). "
                   "Larger numbers take longer: every one is encoded, and the maps and analyses grow with them. "
                   "Kept for the next session.")


def explore_text(limit: int) -> str:
    return "all samples" if limit == EXPLORE_ALL else f"{limit:,} samples"
SPLIT_FIELDS = ("spec", "val_fraction", "split_seed")   # the spec is what is opened; the split is the training panel's
LOAD_FIELDS = tuple(f.name for f in dataclasses.fields(DataConfig) if f.name not in SPLIT_FIELDS)


def describe_data(data) -> list[tuple[str, str]]:
    """(field, value) rows a person reads to check that the right data arrived."""
    rows = [("Data", data.name), ("Samples", f"{data.n:,}"),
            ("Shape", f"{'×'.join(map(str, data.sample_shape))} ({data.modality})")]
    if data.y is not None:
        classes = np.unique(data.y)
        names = data.label_names or []
        shown = [names[c] if 0 <= c < len(names) else str(c) for c in classes[:MAX_LABELS_LISTED]]
        more = "…" if len(classes) > MAX_LABELS_LISTED else ""
        rows.append(("Labels", f"{len(classes)} classes: {', '.join(shown)}{more}"))
    else:
        rows.append(("Labels", "none"))
    rows.append(("Factors", ", ".join(data.factor_names or []) if data.factors is not None else "none"))
    x = data.x
    rows.append(("Values", f"{float(x.min()):.3g} to {float(x.max()):.3g}"
                 + (" (standardised)" if data.normalisation.get("mean") is not None else "")))
    if data.skipped:
        rows.append(("Skipped", f"{len(data.skipped)} files (listed below)"))
    return rows


class DataPanel(QWidget):
    openRequested = Signal(str)       # a built-in name or a path
    openFileRequested = Signal()      # the window shows its file dialog
    openFolderRequested = Signal()
    exploreLimitChosen = Signal(int)  # the user picked how many samples to explore (EXPLORE_ALL: all)

    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state

        self.builtin_combo = QComboBox()
        for name, text in BUILTIN_DATASETS.items():
            self.builtin_combo.addItem(name, name)
            self.builtin_combo.setItemData(self.builtin_combo.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.builtin_combo.setToolTip("Data sets that need no file")
        self.load_builtin_button = QPushButton("Load")
        self.load_builtin_button.setToolTip("Load the chosen built-in data set")
        self.load_builtin_button.clicked.connect(lambda: self.openRequested.emit(self.builtin_combo.currentData()))
        self.open_file_button = QPushButton("Open file…")
        self.open_file_button.setToolTip("Open a .npz, .npy, .csv or IDX (.gz) file; or drop it on the window")
        self.open_file_button.clicked.connect(self.openFileRequested)
        self.open_folder_button = QPushButton("Open folder…")
        self.open_folder_button.setToolTip("Open a folder of images (class sub-folders become labels) or of "
                                           "IDX files; or drop it on the window")
        self.open_folder_button.clicked.connect(self.openFolderRequested)

        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)   # an indeterminate "working" bar: loaders report no fraction
        self.busy_bar.setMaximumHeight(10)
        self.busy_bar.setTextVisible(False)
        self.busy_label = QLabel()
        self.busy_bar.hide()
        self.busy_label.hide()

        self.summary = QLabel("No data loaded. Pick a built-in data set, open a file or folder, or drop one here.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.skipped = QPlainTextEdit()
        self.skipped.setReadOnly(True)
        self.skipped.setMaximumHeight(90)
        self.skipped.setToolTip("Files the loader could not read, with the reason")
        self.skipped.hide()
        self._build_explore_row()
        self.form = ConfigForm(DataConfig, LOAD_FIELDS)
        self.form.setToolTip("How the next data set is read (the same settings as `main.py train`'s data flags)")

        row = QHBoxLayout()
        row.addWidget(QLabel("Built-in:"))
        row.addWidget(self.builtin_combo, 1)
        row.addWidget(self.load_builtin_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_file_button)
        buttons.addWidget(self.open_folder_button)
        grid = QGridLayout()
        grid.addWidget(self.busy_label, 0, 0)
        grid.addWidget(self.busy_bar, 1, 0)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(buttons)
        layout.addWidget(self.form)
        layout.addLayout(grid)
        layout.addLayout(self.explore_row)
        layout.addLayout(self.encoding_row)
        layout.addWidget(self.summary)
        layout.addWidget(self.skipped)
        layout.addStretch(1)
        # Preferred, not Maximum: the wrapped summary needs more than its one-line size hint, and a
        # Maximum policy capped the dock there and cut the last row (default_layout.py sizes the dock).
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

        state.dataChanged.connect(self.refresh)
        state.encodedChanged.connect(lambda: self.encode_button.hide())

    def _build_explore_row(self) -> None:
        """'Explore [10,000 samples]' with the explored count, and the encoding's progress below it."""
        self.explore_combo = QComboBox()
        for limit in EXPLORE_CHOICES:
            self.explore_combo.addItem(explore_text(limit), limit)
        self.explore_combo.setToolTip(EXPLORE_TOOLTIP)
        self.explore_combo.setCurrentIndex(EXPLORE_CHOICES.index(MAX_EXPLORED_SAMPLES))
        self.explore_combo.activated.connect(lambda _i: self._explore_chosen(int(self.explore_combo.currentData())))
        self.explore_label = QLabel("")
        self.explore_label.setToolTip(EXPLORE_TOOLTIP)
        self.explore_row = QHBoxLayout()
        explore = QLabel("Explore:")
        explore.setToolTip(EXPLORE_TOOLTIP)
        self.explore_row.addWidget(explore)
        self.explore_row.addWidget(self.explore_combo)
        self.explore_row.addWidget(self.explore_label, 1)

        self.encoding_bar = QProgressBar()
        self.encoding_bar.setMaximumHeight(12)
        self.encoding_bar.setTextVisible(False)
        self.encoding_label = QLabel("")
        self.encoding_label.setWordWrap(True)
        self.cancel_encoding_button = QPushButton("Cancel")
        self.cancel_encoding_button.setToolTip("Stop encoding; the maps and analyses then wait for codes")
        self.encode_button = QPushButton("Encode")
        self.encode_button.setToolTip("Encode the explored samples with the current model (the maps and analyses "
                                      "need the codes)")
        self.encoding_row = QGridLayout()
        self.encoding_row.addWidget(self.encoding_label, 0, 0, 1, 2)
        self.encoding_row.addWidget(self.encoding_bar, 1, 0)
        self.encoding_row.addWidget(self.cancel_encoding_button, 1, 1)
        self.encoding_row.addWidget(self.encode_button, 1, 1)
        for widget in (self.encoding_bar, self.encoding_label, self.cancel_encoding_button, self.encode_button):
            widget.hide()

    def bind(self, app) -> None:
        """Follow the app controller (app_controller.AppController): data loading, the encoding's
        progress and its Cancel; apply the explore setting saved by an earlier session."""
        app.loadingChanged.connect(lambda text: self.set_busy(text or None))
        app.encodingProgressed.connect(self.show_encoding)
        self.cancel_encoding_button.clicked.connect(self._cancel_encoding)
        self.cancel_encoding_button.clicked.connect(app.cancel_encoding)
        self.encode_button.clicked.connect(app.encode_explored)
        self.exploreLimitChosen.connect(app.set_explore_limit)
        self.set_explore_limit(load_explore_limit(MAX_EXPLORED_SAMPLES))
        app.set_explore_limit(self.explore_limit())

    def explore_limit(self) -> int:
        return int(self.explore_combo.currentData())

    def set_explore_limit(self, limit: int) -> None:
        """Show `limit` in the box (an unlisted number, e.g. from an edited settings file, is added)."""
        index = self.explore_combo.findData(int(limit))
        if index < 0:
            self.explore_combo.addItem(explore_text(int(limit)), int(limit))
            index = self.explore_combo.count() - 1
        self.explore_combo.setCurrentIndex(index)

    def choose_explore_limit(self, limit: int) -> None:
        """What picking `limit` in the box does (tests and scripts call it too)."""
        self.set_explore_limit(limit)
        self._explore_chosen(int(limit))

    def _explore_chosen(self, limit: int) -> None:
        save_explore_limit(limit)
        self.exploreLimitChosen.emit(limit)

    def show_encoding(self, done: int, total: int, text: str) -> None:
        """The encoding's progress (total 0: it ended)."""
        running = total > 0
        if running:
            self.encoding_bar.setRange(0, total)
            self.encoding_bar.setValue(done)
            self.encode_button.hide()
        self.encoding_label.setText(text)
        for widget in (self.encoding_bar, self.encoding_label, self.cancel_encoding_button):
            widget.setVisible(running)

    def _cancel_encoding(self) -> None:
        self.encode_button.show()   # the codes are missing until asked for again

    def load_config(self, split: DataConfig) -> DataConfig | None:
        """The DataConfig the next open uses: this form's reading settings with `split`'s split
        fields; None (and the reason in the status bar) while a field is invalid."""
        try:
            settings = self.form.values()
        except ConfigError as exc:
            self.state.error(f"Cannot open data: {exc}")
            return None
        return dataclasses.replace(settings, val_fraction=split.val_fraction, split_seed=split.split_seed)

    def set_busy(self, text: str | None) -> None:
        """Show what is loading (None: nothing)."""
        self.busy_label.setText(text or "")
        self.busy_label.setVisible(bool(text))
        self.busy_bar.setVisible(bool(text))

    def set_enabled_for_training(self, idle: bool) -> None:
        """Other data cannot be opened while a model trains on this data."""
        for widget in (self.builtin_combo, self.load_builtin_button, self.open_file_button, self.open_folder_button,
                       self.form):
            widget.setEnabled(idle)

    def refresh(self) -> None:
        data = self.state.data
        if data is None:
            return
        shown = len(self.state.view_idx)
        self.explore_label.setText(f"all {data.n:,}" if shown == data.n else
                                   f"{shown:,} of {data.n:,} (seeded subset)")
        if self.state.data_cfg is not None:
            self.form.set_values(self.state.data_cfg)   # the settings the loaded data was read with
        rows = "".join(f"<tr><td style='padding-right:8px'><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>"
                       for k, v in describe_data(data))
        self.summary.setText(f"<table>{rows}</table>")
        self.summary.setToolTip(data.summary())
        if data.skipped:
            self.skipped.setPlainText("\n".join(data.skipped))
        self.skipped.setVisible(bool(data.skipped))
        index = self.builtin_combo.findData(data.spec)
        if index >= 0:
            self.builtin_combo.setCurrentIndex(index)
