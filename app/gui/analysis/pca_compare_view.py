"""Autoencoder vs PCA with the same number of components: held-out reconstruction error, PCA's
error curve for every k with the model's point on it, codes vs components as features for a linear
probe and k-NN, and the same held-out samples reconstructed by both.

A linear autoencoder with k units can do no better than PCA with k components (Baldi & Hornik 1989),
so this is the yardstick a non-linear model has to beat on the user's own data.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QGridLayout, QHBoxLayout, QHeaderView, QLabel,
                               QStackedWidget, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.gui.analysis.common import AnalysisTab, big_label, fmt, side_by_side, plain_numbers, plot_export_buttons
from app.core.analysis.api import MAX_PROBE_SAMPLES, PCAReport, pca_comparison
from app.gui.image_grid import ImageGrid
from app.gui.reconstruction_view import sample_name
from app.gui.signal_plot import Curve, PlotSpec, SignalPlot
from app.gui.state import ExplorerState

CURVE_PEN = pg.mkPen((31, 119, 180), width=2)
MODEL_PEN = pg.mkPen((214, 39, 40), width=1.5, style=Qt.DashLine)
MODEL_BRUSH = pg.mkBrush(214, 39, 40)
PCA_LINE_COLOUR = ("#7f7f7f",)
PROBE_ROWS = (("Linear probe (logistic regression)", "linear_probe_accuracy", "pca_linear_probe_accuracy"),
              ("k-NN (k = 5)", "knn_accuracy", "pca_knn_accuracy"))


class PCACompareView(AnalysisTab):
    no_model_text = "Train or load a model to compare its reconstructions with PCA's."
    compute_tip = ("Fit PCA on the training split and compare it with the model on the held-out samples "
                   "(runs in the background)")

    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(state, parent)
        self.result: PCAReport | None = None

        # Headline numbers
        self.model_error_label = big_label()
        self.pca_error_label = big_label()
        self.pca_title = QLabel("PCA")
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        numbers = QGridLayout()
        numbers.addWidget(QLabel("Autoencoder"), 0, 0)
        numbers.addWidget(self.pca_title, 0, 1)
        numbers.addWidget(self.model_error_label, 1, 0)
        numbers.addWidget(self.pca_error_label, 1, 1)
        numbers.addWidget(self.verdict, 2, 0, 1, 2)
        for label in (self.model_error_label, self.pca_error_label):
            label.setToolTip("Mean over held-out samples of the summed squared reconstruction error, in the "
                             "data's own scale (the same units as `evaluate`'s reconstruction_error)")

        curve_bar = self._build_curve()

        # Probes
        self.probe_table = QTableWidget(len(PROBE_ROWS), 2)
        self.probe_table.setHorizontalHeaderLabels(["Autoencoder codes", "PCA components"])
        self.probe_table.setVerticalHeaderLabels([row[0] for row in PROBE_ROWS])
        self.probe_table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.probe_table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.probe_table.setToolTip("Held-out accuracy of classifiers trained on the training split's codes "
                                    f"(at most {MAX_PROBE_SAMPLES:,} samples) versus PCA's first k components")
        self.probe_table.setMaximumHeight(90)
        self.probe_note = QLabel()
        self.probe_note.setWordWrap(True)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(numbers)
        left_layout.addLayout(curve_bar)
        left_layout.addWidget(self.plot_widget, 1)
        left_layout.addWidget(self.probe_note)
        left_layout.addWidget(self.probe_table)

        # Side by side
        self.grid = ImageGrid(export_name="ae_vs_pca.png", scale=4)
        self.lines = SignalPlot(export_name="ae_vs_pca.png", columns=2)
        for widget in (self.grid, self.lines):
            widget.exported.connect(lambda path: state.info(f"Saved {path}"))
            widget.exportFailed.connect(self.show_error)
        self.samples = QStackedWidget()
        self.samples.addWidget(self.grid)
        self.samples.addWidget(self.lines)

        self.body_layout.addWidget(side_by_side(left, self.samples, (3, 2)))
        self.refresh()

    def _build_curve(self) -> QHBoxLayout:
        """PCA's held-out error for every k, with the autoencoder as a point and a line."""
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLabel("bottom", "PCA components k")
        self.plot.setLabel("left", "held-out error")   # short: the plot may be ~100 px tall at 1440x900
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        plain_numbers(self.plot.getAxis("left"))
        self.plot_widget.setMinimumHeight(150)
        # No legend over the curve: the caption above names the colours; exports add a legend beside.
        self.curve_item = self.plot.plot(pen=CURVE_PEN, name="PCA with k components")
        self.model_line = pg.InfiniteLine(angle=0, movable=False, pen=MODEL_PEN)
        self.plot.addItem(self.model_line)
        self.model_point = pg.ScatterPlotItem(size=11, brush=MODEL_BRUSH, pen=pg.mkPen("w"),
                                              name="autoencoder (k = latent size)")
        self.plot.addItem(self.model_point)
        self.log_y = QCheckBox("Log y")
        self.log_y.setToolTip("Logarithmic error axis: shows how fast PCA's error falls for large k")
        self.log_y.toggled.connect(self._draw_curve)
        curve_bar = QHBoxLayout()
        caption = QLabel("Blue: PCA's held-out error for every number of components k; red point and line: "
                         "the autoencoder (k = its latent size)")
        caption.setWordWrap(True)
        curve_bar.addWidget(caption, 1)
        curve_bar.addWidget(self.log_y)
        for button in plot_export_buttons(self, self.plot, "pca_error_curve"):
            curve_bar.addWidget(button)
        return curve_bar

    # --- computing ----------------------------------------------------------------------------
    def compute(self) -> None:
        if self.requirement() is not None:
            return
        subject = self.subject()
        self.run_in_background(lambda task: pca_comparison(subject, should_stop=task.should_stop),
                               on_result=self.show_result, what="Fitting PCA and encoding the held-out samples…")

    def clear_results(self) -> None:
        self.result = None

    # --- drawing ------------------------------------------------------------------------------
    def show_result(self, result: PCAReport) -> None:
        self.result = result
        self.model_error_label.setText(fmt(result.model_error))
        self.pca_error_label.setText(fmt(result.pca_error))
        self.pca_title.setText(f"PCA, k = {result.k_pca}")
        self.verdict.setText(self._verdict(result))
        self._draw_curve()
        self._draw_probes(result.probes)
        self._draw_samples(result)
        epoch = self.state.snapshot.epoch if self.state.snapshot is not None else 0
        self.finished(f"Fitted on {result.n_train:,} training samples, scored on the {result.split}; model at "
                      f"epoch {epoch}.")

    @staticmethod
    def _verdict(result: PCAReport) -> str:
        if result.pca_error > 0:
            change = (result.pca_error - result.model_error) / result.pca_error
            text = (f"The autoencoder's held-out error is {abs(change):.0%} "
                    f"{'lower' if change >= 0 else 'higher'} than PCA's with the same number of components.")
        else:
            text = "PCA reconstructs the held-out samples exactly with this many components."
        matching = result.matching_k
        if matching is None:
            text += " No number of PCA components on the curve matches the autoencoder."
        elif matching > result.k:
            text += f" PCA needs {matching} components to do as well."
        else:
            text += f" PCA does as well with {matching} component{'s' if matching != 1 else ''}."
        if result.curve_capped:
            text += f" (The curve stops at {len(result.curve.ks) - 1} components.)"
        return text

    def _transform(self, values: np.ndarray) -> np.ndarray:
        """Values in the plot's coordinates: log10 on a log axis (zeros, PCA at full rank, are hidden)."""
        values = np.asarray(values, np.float64)
        if not self.log_y.isChecked():
            return values
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)

    def _draw_curve(self) -> None:
        result = self.result
        # Items are drawn in transformed coordinates, so the axis only relabels its ticks.
        self.plot.getAxis("left").setLogMode(self.log_y.isChecked())
        if result is None:
            self.curve_item.setData([], [])
            self.model_point.setData([], [])
            return
        y = self._transform(result.curve.errors)
        self.curve_item.setData(result.curve.ks.astype(np.float64), y, connect="finite")
        model_y = float(self._transform([result.model_error])[0])
        self.model_point.setData([float(result.k)], [model_y],
                                 data=[f"autoencoder: k = {result.k}, error {result.model_error:.4g}"])
        self.model_point.setToolTip(f"autoencoder: {result.k} latent dimensions, held-out error "
                                    f"{result.model_error:.4g}")
        self.model_line.setValue(model_y if np.isfinite(model_y) else 0.0)
        self.plot.enableAutoRange()

    def _draw_probes(self, probes: dict | None) -> None:
        has = probes is not None
        self.probe_table.setVisible(has)
        if not has:
            self.probe_note.setText("This data set has no labels (or a single class), so the codes cannot be "
                                    "compared with PCA's components as features for a classifier.")
            return
        self.probe_note.setText("Held-out accuracy of classifiers on the codes vs on PCA's components:")
        for row, (_, ae_key, pca_key) in enumerate(PROBE_ROWS):
            for col, key in enumerate((ae_key, pca_key)):
                value = probes.get(key)
                item = QTableWidgetItem("–" if value is None else f"{value:.1%}")
                item.setTextAlignment(Qt.AlignCenter)
                self.probe_table.setItem(row, col, item)

    def _draw_samples(self, result: PCAReport) -> None:
        names = [sample_name(self.state, int(i)) for i in result.shown_idx]
        if self.state.data is not None and self.state.data.modality == "image":
            images = np.stack([result.originals, result.model_recons, result.pca_recons])   # (3, S, C, H, W)

            def tooltip(row: int, col: int) -> str:
                what = ("original", "autoencoder reconstruction", f"PCA reconstruction (k = {result.k_pca})")[row]
                return f"{names[col]}: {what}"

            self.grid.set_grid(images, row_labels=["original", "autoencoder", f"PCA k={result.k_pca}"],
                               cell_tooltip=tooltip)
            self.grid.set_caption(f"{len(names)} held-out samples reconstructed by both")
            self.samples.setCurrentWidget(self.grid)
            return
        specs = [PlotSpec(names[i], [Curve(result.originals[i]), Curve(result.model_recons[i], dashed=True),
                                     Curve(result.pca_recons[i], colours=PCA_LINE_COLOUR, dashed=True)])
                 for i in range(len(names))]
        self.lines.set_plots(specs, columns=2)
        self.lines.set_caption("solid: original · dashed: autoencoder (channel colours) · grey dashed: PCA")
        self.samples.setCurrentWidget(self.lines)
