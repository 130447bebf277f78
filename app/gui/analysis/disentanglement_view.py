"""Does each latent dimension carry information, and does each capture one ground-truth factor?

Per-dimension KL (VAE kinds) and activity bars redraw by themselves after each encoding (Burda et
al.'s criterion: a unit is active when the variance of its mean code over the data exceeds 0.01).
With ground-truth factors, "Compute metrics" runs MIG, SAP and optionally DCI in the background and
fills the per-factor and per-dimension tables (the factor each dimension best explains is in the
per-dimension table and in `report`, None before computing).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QPushButton, QScrollArea,
                               QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from app.core.analysis.api import MAX_FACTOR_SAMPLES, DisentanglementReport, dimensions, disentanglement
from app.core.latent import ACTIVE_THRESHOLD, DimensionStats
from app.gui.analysis.common import AnalysisTab, big_label, fit_table_height, side_by_side, fmt, plain_numbers, plot_export_buttons
from app.gui.export import ask_save_path, export_text
from app.gui.state import ExplorerState

ACTIVE_BRUSH = pg.mkBrush(31, 119, 180)
INACTIVE_BRUSH = pg.mkBrush(180, 180, 180)
KL_BRUSH = pg.mkBrush(44, 160, 44)
THRESHOLD_PEN = pg.mkPen((214, 39, 40), width=1.5, style=Qt.DashLine)
FACTOR_COLUMNS = (("Factor", "factor"), ("Entropy (nats)", "entropy"), ("Best dim", "best_dim"),
                  ("MI with it (nats)", "best_mi"), ("MIG gap", "mig"), ("DCI completeness", "dci_completeness"),
                  ("SAP gap", "sap"))
DIMENSION_COLUMNS = ("Dim", "KL (nats)", "Variance", "Active", "Best explains", "MI / entropy")


def _item(text: str) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setTextAlignment(Qt.AlignCenter)
    return item


class DisentanglementView(AnalysisTab):
    no_model_text = "Train or load a model to see what each latent dimension carries."
    needs_encoding = True
    compute_text = "Compute metrics"
    compute_tip = "MIG, SAP (and DCI if ticked) against the ground-truth factors, in the background"

    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(state, parent)
        self.stats: DimensionStats | None = None
        self.report: DisentanglementReport | None = None

        self.dci_box = QCheckBox("Include DCI")
        self.dci_box.setChecked(True)
        self.dci_box.setToolTip("DCI disentanglement fits gradient-boosted trees per factor: the slowest of the "
                                "three metrics (seconds to a minute on 10,000 samples)")
        self.controls.insertWidget(0, self.dci_box)

        bars_bar = self._build_bars()
        metrics = self._build_metrics()

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(bars_bar)
        left_layout.addWidget(self.bars_widget, 1)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.metrics_note)
        right_layout.addLayout(metrics)
        right_layout.addWidget(QLabel("Per factor"))
        right_layout.addWidget(self.factor_table)
        right_layout.addWidget(QLabel("Per dimension"))
        right_layout.addWidget(self.dimension_table)
        right_layout.addWidget(self.export_button, 0, Qt.AlignRight)
        right_layout.addStretch(1)
        # The tables are as tall as all their rows; a short dock scrolls instead of squeezing them.
        right_scroll = QScrollArea()
        right_scroll.setWidgetResizable(True)
        right_scroll.setFrameShape(QScrollArea.NoFrame)
        right_scroll.setWidget(right)
        self.body_layout.addWidget(side_by_side(left, right_scroll))
        self.refresh()
        self.on_encoded()

    def _build_bars(self) -> QHBoxLayout:
        """KL and activity per dimension, one bar each."""
        self.active_label = big_label(scale=1.4)
        self.active_label.setToolTip(f"Burda et al. (2016): a unit is active when the variance of its mean code "
                                     f"over the samples exceeds {ACTIVE_THRESHOLD}")
        self.bars_widget = pg.GraphicsLayoutWidget()
        self.kl_plot = self.bars_widget.addPlot(row=0, col=0)
        self.kl_plot.setLabel("left", "KL (nats)")
        self.kl_plot.setTitle("Mean KL per dimension", size="9pt")
        self.kl_bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=KL_BRUSH)
        self.kl_plot.addItem(self.kl_bars)
        self.var_plot = self.bars_widget.addPlot(row=1, col=0)
        self.var_plot.setLabel("left", "variance of mean code")
        self.var_plot.setLabel("bottom", "latent dimension")
        self.var_plot.setTitle("Activity (grey: inactive)", size="9pt")
        self.var_bars = pg.BarGraphItem(x=[], height=[], width=0.7, brushes=[])
        self.var_plot.addItem(self.var_bars)
        self.threshold_line = pg.InfiniteLine(pos=ACTIVE_THRESHOLD, angle=0, movable=False, pen=THRESHOLD_PEN)
        self.threshold_line.setToolTip(f"Active-unit threshold: variance {ACTIVE_THRESHOLD}")
        self.var_plot.addItem(self.threshold_line)
        self.var_plot.setXLink(self.kl_plot)
        for plot in (self.kl_plot, self.var_plot):
            plot.showGrid(y=True, alpha=0.2)
            plain_numbers(plot.getAxis("left"))
            plot.setMenuEnabled(False, enableViewBoxMenu=True)
        bars_bar = QHBoxLayout()
        bars_bar.addWidget(self.active_label, 1)
        for button in plot_export_buttons(self, self.bars_widget.scene(), "latent_dimensions"):
            bars_bar.addWidget(button)

        return bars_bar

    def _build_metrics(self) -> QGridLayout:
        """MIG, DCI and SAP headlines and the per-factor and per-dimension tables."""
        self.metric_labels = {key: big_label(scale=1.4) for key in ("mig", "dci", "sap")}
        self.metric_labels["mig"].setToolTip("Mutual Information Gap (Chen et al. 2018), mean codes in 20 "
                                             "equal-width bins as in disentanglement_lib: 0 none, 1 perfect")
        self.metric_labels["dci"].setToolTip("DCI disentanglement (Eastwood & Williams 2018), gradient-boosted trees")
        self.metric_labels["sap"].setToolTip("Separated Attribute Predictability (Kumar et al. 2018)")
        self.dci_detail = QLabel()
        metrics = QGridLayout()
        for col, (key, title) in enumerate((("mig", "MIG"), ("dci", "DCI"), ("sap", "SAP"))):
            metrics.addWidget(QLabel(title), 0, col)
            metrics.addWidget(self.metric_labels[key], 1, col)
        metrics.addWidget(self.dci_detail, 2, 0, 1, 3)
        self.metrics_note = QLabel()
        self.metrics_note.setWordWrap(True)
        self.factor_table = QTableWidget(0, len(FACTOR_COLUMNS))
        self.factor_table.setHorizontalHeaderLabels([c[0] for c in FACTOR_COLUMNS])
        self.factor_table.setToolTip("Per factor: the dimension sharing the most information with it, the gap to "
                                     "the next one (normalised by the factor's entropy), DCI completeness, SAP gap")
        self.dimension_table = QTableWidget(0, len(DIMENSION_COLUMNS))
        self.dimension_table.setHorizontalHeaderLabels(list(DIMENSION_COLUMNS))
        self.dimension_table.setToolTip("Per latent dimension: its KL, activity, and the factor it best explains "
                                        "(mutual information over the factor's entropy, at least 0.1)")
        for table in (self.factor_table, self.dimension_table):
            table.setEditTriggers(QTableWidget.NoEditTriggers)
            table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
            table.verticalHeader().setVisible(False)
        self.export_button = QPushButton("Export tables CSV…")
        self.export_button.setToolTip("The per-factor and per-dimension tables as CSV")
        self.export_button.clicked.connect(self._ask_export)

        return metrics

    # --- state --------------------------------------------------------------------------------
    def refresh(self) -> None:
        super().refresh()
        data = self.state.data
        has_factors = data is not None and data.factors is not None
        self.compute_button.setEnabled(self.compute_button.isEnabled() and has_factors)
        self.dci_box.setEnabled(has_factors)
        if data is not None and not has_factors:
            self.compute_button.setToolTip("Needs ground-truth factors: the built-in shapes data, or an .npz "
                                           "with a `factors` array")
        else:
            self.compute_button.setToolTip(self.compute_tip)

    stale_on = ("encoding",)   # the metrics are of the codes they were started with

    def clear_results(self) -> None:
        self.stats = None
        self._clear_metrics()

    def _clear_metrics(self) -> None:
        self.report = None
        for label in self.metric_labels.values():
            label.setText("–")
        self.dci_detail.setText("")
        self.factor_table.setRowCount(0)
        fit_table_height(self.factor_table)

    def _on_model_changed(self) -> None:
        self.refresh()   # the new encoding follows shortly and redraws the bars

    def on_encoded(self) -> None:
        """Dimension statistics are cheap: redraw them now; factor metrics wait for the button."""
        self.refresh()
        encoded = self.state.encoded
        if self.requirement() is not None or encoded is None:
            return
        had_metrics = self.report is not None
        self._clear_metrics()
        self.stats = dimensions(encoded)
        self._draw_bars(self.stats)
        self._draw_dimension_table()
        data = self.state.data
        if data is None or data.factors is None:
            self.metrics_note.setText("This data set has no ground-truth factors, so MIG, DCI and SAP cannot be "
                                      "measured. The built-in `shapes` data has five; an .npz file can carry a "
                                      "`factors` array (and `factor_names`).")
        else:
            self.metrics_note.setText(f"Factors: {', '.join(data.factor_names or [])}. Press "
                                      f"{self.compute_text!r} to measure how well the codes separate them"
                                      + (" (the earlier numbers were for the previous model)." if had_metrics
                                         else "."))
        self.show_body()
        self.has_results = True
        self.set_note("")

    # --- drawing ------------------------------------------------------------------------------
    def _draw_bars(self, stats: DimensionStats) -> None:
        k = len(stats.variance)
        x = np.arange(k, dtype=np.float64)
        self.kl_plot.setVisible(stats.kl is not None)
        if stats.kl is not None:
            self.kl_bars.setOpts(x=x, height=stats.kl, width=0.7)
        brushes = [ACTIVE_BRUSH if a else INACTIVE_BRUSH for a in stats.active]   # two shared brushes
        self.var_bars.setOpts(x=x, height=stats.variance, width=0.7, brushes=brushes)
        ticks = [[(float(i), f"z{i}") for i in range(k)]] if k <= 32 else None
        self.var_plot.getAxis("bottom").setTicks(ticks)
        self.kl_plot.getAxis("bottom").setTicks(ticks)
        for plot in (self.kl_plot, self.var_plot):
            plot.enableAutoRange(axis="y")
            # A full bar of margin each side: pyqtgraph drops a tick label that would reach past the
            # axis end, which took "z0" away with the default padding.
            plot.setXRange(-1.0, k, padding=0)
        n_active = int(stats.active.sum())
        self.active_label.setText(f"Active units: {n_active} of {k}")

    def _draw_dimension_table(self) -> None:
        stats = self.stats
        if stats is None:
            return
        labels = self.report.dimension_labels if self.report is not None else None
        k = len(stats.variance)
        self.dimension_table.setRowCount(k)
        for i in range(k):
            best, score = labels[i] if labels is not None else (None, None)
            cells = (f"z{i}", fmt(None if stats.kl is None else stats.kl[i]), fmt(stats.variance[i]),
                     "yes" if stats.active[i] else "no",
                     ("–" if labels is None else (best or "none")), fmt(score, 3))
            for col, text in enumerate(cells):
                self.dimension_table.setItem(i, col, _item(text))
        fit_table_height(self.dimension_table)

    # --- metrics ------------------------------------------------------------------------------
    def compute(self) -> None:
        data, encoded = self.state.data, self.state.encoded
        if self.requirement() is not None or data is None or encoded is None or data.factors is None:
            return
        n = min(len(encoded.codes), MAX_FACTOR_SAMPLES)
        with_dci, subject, view_idx = self.dci_box.isChecked(), self.subject(), self.state.view_idx
        what = f"Measuring MIG, SAP{' and DCI' if with_dci else ''} on {n:,} samples…"
        self.run_in_background(
            lambda task: disentanglement(subject, view_idx, encoded, with_dci, should_stop=task.should_stop),
            on_result=self.show_report, what=what)

    def show_report(self, report: DisentanglementReport) -> None:
        self.report = report
        summary = report.to_dict()
        self.metric_labels["mig"].setText(fmt(summary["mig"], 3))
        self.metric_labels["dci"].setText(fmt(summary.get("dci_disentanglement"), 3) if report.dci else "not run")
        self.metric_labels["sap"].setText(fmt(summary.get("sap"), 3))
        self.dci_detail.setText("" if report.dci is None else
                                f"DCI completeness {fmt(report.dci.completeness, 3)}, informativeness (held-out R²) "
                                f"{fmt(report.dci.informativeness, 3)}")
        rows = report.table()
        self.factor_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (_, key) in enumerate(FACTOR_COLUMNS):
                value = row[key]
                text = value if isinstance(value, str) else (f"z{value}" if key == "best_dim" else fmt(value, 3))
                self.factor_table.setItem(r, c, _item(text))
        fit_table_height(self.factor_table)
        self._draw_dimension_table()
        self.metrics_note.setText(f"Factors: {', '.join(report.factor_names)}; measured on the mean codes of "
                                  f"{min(len(self.state.encoded.codes), MAX_FACTOR_SAMPLES):,} explored samples.")
        self.finished("")

    # --- export -------------------------------------------------------------------------------
    def tables_csv(self) -> str:
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for table in (self.factor_table, self.dimension_table):
            if table.rowCount() == 0:
                continue
            writer.writerow([table.horizontalHeaderItem(c).text() for c in range(table.columnCount())])
            for r in range(table.rowCount()):
                writer.writerow([table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount())])
            writer.writerow([])
        return out.getvalue()

    def _ask_export(self) -> None:
        path = ask_save_path(self, "Export tables", "disentanglement.csv", "CSV table (*.csv)")
        if path:
            self.write_file(lambda p: export_text(self.tables_csv(), p), path)
