"""Several saved runs side by side (kind, beta, latent size, losses, MIG, probe accuracy, the PCA
baseline), e.g. a sweep of beta-VAEs, so the trade-off between reconstruction and disentanglement
reads off one sortable table.

Each run is measured by the engine's compare_runs on its own data's held-out split, in the
background with a progress bar, one run at a time (each row appears when measured; Cancel stops
before the next run); a run that cannot be loaded gets a row with its error.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QFileDialog, QHeaderView, QProgressBar, QPushButton,
                               QTableWidget, QTableWidgetItem, QWidget)

from app.core.analysis.api import RUN_COLUMNS, compare_runs
from app.core.checkpoint import META
from app.gui.analysis.common import AnalysisTab, fmt
from app.gui.export import ask_save_path, export_text, last_folder, remember_folder
from app.gui.state import ExplorerState

# (header, row key, tooltip)
TABLE_COLUMNS = (
    ("Run", "run", "The run folder"),
    ("Error", "error", "Why a run could not be measured"),
    ("Kind", "kind", "Model kind"),
    ("β", "beta", "Weight of the KL term (VAE kinds)"),
    ("Latent", "latent_dim", "Latent size k"),
    ("Epochs", "epochs", "Epochs trained"),
    ("Train loss", "train_loss", "Final training loss per sample"),
    ("Val loss", "val_loss", "Final validation loss per sample"),
    ("Recon. error", "reconstruction_error", "Held-out summed squared reconstruction error"),
    ("PCA error", "pca_reconstruction_error", "The same for PCA with k components, fitted on the training split"),
    ("Active", "active_units", "Active latent units (variance of the mean code > 0.01)"),
    ("KL", "kl_total", "Total mean KL, nats (VAE kinds)"),
    ("MIG", "mig", "Mutual Information Gap (data with ground-truth factors)"),
    ("DCI", "dci_disentanglement", "DCI disentanglement (when 'Include DCI' is ticked)"),
    ("SAP", "sap", "Separated Attribute Predictability"),
    ("Linear probe", "linear_probe_accuracy", "Held-out logistic-regression accuracy on the codes"),
    ("PCA linear probe", "pca_linear_probe_accuracy", "The same on PCA's k components"),
    ("k-NN", "knn_accuracy", "Held-out 5-NN accuracy on the codes"),
    ("PCA k-NN", "pca_knn_accuracy", "The same on PCA's k components"),
)
ERROR_COLUMN = 1
ERROR_WIDTH = 240      # pixels; the whole message is in each cell's tooltip
ERROR_BRUSH = QBrush(QColor(253, 226, 226))


class SortableItem(QTableWidgetItem):
    """Sorts by the number behind the text; missing values sort after every number."""

    def __init__(self, text: str, key=None):
        super().__init__(text)
        self.key = key

    def __lt__(self, other) -> bool:
        a, b = self.key, getattr(other, "key", None)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        if isinstance(a, (int, float)) != isinstance(b, (int, float)):
            return isinstance(a, (int, float))       # numbers first, blanks last
        return self.text() < other.text()


def run_folders(folder: str | Path) -> list[Path]:
    """The folder itself when it is a run, otherwise the runs directly inside it (a sweep's folder)."""
    folder = Path(folder)
    if (folder / META).is_file():
        return [folder]
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and (p / META).is_file())
    except OSError:
        return []


class RunsTableView(AnalysisTab):
    compute_text = "Add run folder…"
    compute_tip = ("Add a run folder, or a folder holding several runs (e.g. a beta sweep); add as many as you "
                   "like, one dialog at a time")

    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(state, parent)
        self.rows: dict[str, dict] = {}     # run path -> compare_runs row, in the order added
        self._queue: list[str] = []         # added while a job was running
        self._batch_size = 0
        self.task.progressed.connect(self._on_progress)   # runs done, runs in the batch, the run measured now
        self.task.yielded.connect(self._add_row)          # one compare_runs row

        self.dci_box = QCheckBox("Include DCI")
        self.dci_box.setToolTip("Also measure DCI disentanglement on data with factors (gradient-boosted trees: slow)")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected rows")
        self.remove_button.clicked.connect(self.remove_selected)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Every column of every run as CSV")
        self.export_button.clicked.connect(self._ask_export)
        self.cancel_button.setToolTip("Stop after the run being measured now")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        for widget in (self.dci_box, self.remove_button, self.export_button):
            self.controls.insertWidget(self.controls.count() - 3, widget)
        self.controls.insertWidget(self.controls.indexOf(self.cancel_button), self.progress)

        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels([c[0] for c in TABLE_COLUMNS])
        for col, (_, _, tip) in enumerate(TABLE_COLUMNS):
            self.table.horizontalHeaderItem(col).setToolTip(tip)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(ERROR_COLUMN, QHeaderView.Interactive)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.AscendingOrder)   # the order added, until a click
        self.body_layout.addWidget(self.table)
        self._update_buttons()
        self.refresh()

    # --- independent of the explored data ------------------------------------------------------
    def requirement(self) -> str | None:
        return None

    stale_on = ()   # saved runs: neither the window's model nor its data matter

    def refresh(self) -> None:
        self.compute_button.setEnabled(True)
        if not self.rows:
            self.show_placeholder("Add run folders (saved by File > Save run as…, or by `python main.py train`) to "
                                  "compare them: kind, β, latent size, losses, MIG, probe accuracy and the PCA "
                                  "baseline, one row each. A folder holding several runs adds them all.")

    def _on_data_changed(self) -> None:
        """Nothing to clear: each run in the table is measured on its own data."""

    def _on_model_changed(self) -> None:
        """Nothing to clear: the table lists saved runs, not the window's current model."""

    def on_encoded(self) -> None:
        pass   # new codes of the window's model change none of the saved runs the table lists

    # --- adding runs --------------------------------------------------------------------------
    def compute(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add run folder", last_folder())
        if folder:
            remember_folder(folder)          # the next dialog opens beside it: sweeps sit side by side
            self.add_runs([folder])

    def add_runs(self, folders: list[str]) -> None:
        """Measure the runs in these folders (each a run or a folder of runs) in the background."""
        paths = []
        for folder in folders:
            found = run_folders(folder) or [Path(folder)]   # not a run: its row will say why
            paths += [str(p) for p in found]
        new = [p for p in dict.fromkeys(paths) if p not in self.rows and p not in self._queue]
        if not new:
            self.set_note("Those runs are already in the table.")
            return
        self._queue += new
        if not self.running:
            self._start_next()

    def _start_next(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        self.progress.setRange(0, len(batch))
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self._batch_size = len(batch)
        with_dci = self.dci_box.isChecked()
        self.run_in_background(lambda task: self._measure(task, batch, with_dci), on_result=self._batch_done,
                               what=f"Measuring {len(batch)} run{'s' if len(batch) != 1 else ''}…")
        self._update_buttons()

    @staticmethod
    def _measure(task, batch: list[str], with_dci: bool) -> tuple[int, int]:
        """On the worker thread: compare_runs one run at a time, so each row appears as soon as it
        is measured and Cancel takes effect between runs. Returns (measured, total)."""
        for i, path in enumerate(batch):
            if task.should_stop():
                return i, len(batch)
            task.progress(i, len(batch), path)
            task.partial(compare_runs([path], with_dci=with_dci)[0])
        return len(batch), len(batch)

    def _on_progress(self, done: int, total: int, run: str) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.set_note(f"Measuring {Path(run).name} ({done + 1} of {total})…")

    def _add_row(self, row: dict) -> None:
        self.rows[row["run"]] = row
        self.progress.setValue(self.progress.value() + 1)
        self._fill_table()
        self._update_buttons()

    def _batch_done(self, counts: tuple[int, int]) -> None:
        measured, total = counts
        self.progress.setVisible(False)
        errors = sum(1 for row in self.rows.values() if row.get("error"))
        note = f"{len(self.rows)} run{'s' if len(self.rows) != 1 else ''} in the table"
        if errors:
            note += f"; {errors} could not be measured (see the Error column)"
        if measured < total:
            note += f"; cancelled before {total - measured} more"
        if self.rows:
            self.finished(note + ".")
        else:
            self.refresh()
            self.set_note(note + ".")
        self._update_buttons()
        self._start_next()

    def _set_running(self, running: bool) -> None:
        super()._set_running(running)
        self.busy.setVisible(False)     # the determinate progress bar shows the work instead
        if not running:
            self.progress.setVisible(False)
            self._update_buttons()

    def cancel(self) -> None:
        self._queue = []
        if self.task.cancel():
            left = self._batch_size - self.progress.value()
            self.set_note(f"{len(self.rows)} run{'s' if len(self.rows) != 1 else ''} in the table; cancelled "
                          f"before {left} more.")

    def remove_selected(self) -> None:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()}, reverse=True)
        for row in rows:
            self.rows.pop(self.table.item(row, 0).data(Qt.UserRole), None)
        self._fill_table()
        self._update_buttons()
        if not self.rows:
            self.has_results = False
            self.refresh()

    def _update_buttons(self) -> None:
        self.cancel_button.setVisible(self.running)
        self.export_button.setEnabled(bool(self.rows))
        self.remove_button.setEnabled(bool(self.rows))

    # --- table --------------------------------------------------------------------------------
    def _fill_table(self) -> None:
        self.table.setSortingEnabled(False)     # filling a sorted table moves rows under our feet
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows.values()):
            for c, (_, key, _) in enumerate(TABLE_COLUMNS):
                value = row.get(key)
                if key == "run":
                    item = SortableItem(Path(str(value)).name, None)
                    item.setData(Qt.UserRole, str(value))
                    item.setToolTip(str(value))
                elif key == "error":
                    item = SortableItem(value or "", None)
                    item.setToolTip(value or "")
                elif key.endswith("accuracy") and value is not None:
                    item = SortableItem(f"{float(value):.1%}", float(value))
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    item = SortableItem(fmt(value) if isinstance(value, float) else str(value), value)
                else:
                    item = SortableItem("–" if value is None else str(value), None)
                if row.get("error"):
                    item.setBackground(ERROR_BRUSH)
                    item.setToolTip(row["error"])
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.setColumnWidth(ERROR_COLUMN, ERROR_WIDTH if any(r.get("error") for r in self.rows.values()) else 50)
        self.show_body()

    # --- export -------------------------------------------------------------------------------
    def table_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        columns = list(RUN_COLUMNS) + ["error"]
        writer.writerow(columns)
        for row in self.rows.values():
            writer.writerow(["" if row.get(c) is None else
                             (",".join(map(str, row[c])) if isinstance(row[c], list) else row[c]) for c in columns])
        return out.getvalue()

    def export_csv(self, path: str) -> bool:
        return self.write_file(lambda p: export_text(self.table_csv(), p), path)

    def _ask_export(self) -> None:
        path = ask_save_path(self, "Export runs table", "runs.csv", "CSV table (*.csv)")
        if path:
            self.export_csv(path)
