"""Few labels: how much a pretrained autoencoder's codes help a classifier when labels are scarce.

The label-efficiency curve (app/core/analysis/transfer.py): held-out accuracy against labels per
class for logistic regression on the codes, on PCA components of the same size and on the raw
inputs, and for the encoder fine-tuned with a linear head; each point the mean of several label
draws with a ±1 standard deviation error bar. Exports PNG/SVG (the plot) and CSV (the numbers).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QLabel, QLineEdit, QSpinBox, QToolButton, QWidget

from app.core.analysis.api import ANCHOR, METHOD_LABELS, TransferResult, few_labels
from app.core.config import parse_int_tuple
from app.core.errors import LatentExplorerError
from app.gui.analysis.common import AnalysisTab, plain_numbers, plot_export_buttons
from app.gui.export import ask_save_path, export_text
from app.gui.state import ExplorerState

COLOURS = {"codes": "#1f77b4", "pca": "#ff7f0e", "raw": "#7f7f7f", "fine_tuned": "#2ca02c"}
CAPTION = ("Held-out accuracy against labels per class (log scale); each point is the mean over label draws, "
           "bars ±1 standard deviation. Anchor: " + ANCHOR + ", a model that also learns from the unlabelled "
           "data; here labels reach only the classifier (or the fine-tuned encoder).")


class FewLabelsView(AnalysisTab):
    no_model_text = "Train or load an autoencoder to see whether its codes help a classifier with few labels."
    compute_text = "Compute curve"
    compute_tip = ("Fit classifiers on n labelled training samples per class (several draws) and score them on the "
                   "held-out split")

    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(state, parent)
        self.result: TransferResult | None = None
        self.sizes_edit = QLineEdit("10,100,1000")
        self.sizes_edit.setMaximumWidth(120)
        self.sizes_edit.setToolTip("Labels per class, comma-separated; sizes above the smallest class are capped")
        self.draws_box = QSpinBox(minimum=1, maximum=50, value=5)
        self.draws_box.setToolTip("Label draws per size: the error bars are their standard deviation")
        self.fine_tune_box = QCheckBox("fine-tune the encoder", checked=True)
        self.fine_tune_box.setToolTip("(d): train a copy of the encoder with a linear head on the labelled samples")
        for widget in (QLabel("Labels per class:"), self.sizes_edit, QLabel("draws:"), self.draws_box,
                       self.fine_tune_box):
            self.controls.insertWidget(self.controls.count() - 3, widget)

        self.plot = pg.PlotWidget(background="w")
        item = self.plot.getPlotItem()
        item.setLogMode(x=True, y=False)
        item.setLabel("bottom", "labelled samples per class")
        item.setLabel("left", "held-out accuracy")
        item.showGrid(x=True, y=True, alpha=0.2)
        item.addLegend(offset=(-10, -10))   # bottom right: the curves rise towards the top right
        plain_numbers(item.getAxis("left"))
        self.caption = QLabel(CAPTION)
        self.caption.setWordWrap(True)
        self.csv_button = QToolButton(text="CSV…")
        self.csv_button.setToolTip("Export the curve's numbers (mean and std per method and size)")
        self.csv_button.clicked.connect(self.ask_csv)
        for button in (*plot_export_buttons(self, item, "few_labels"), self.csv_button):
            self.controls.insertWidget(self.controls.count() - 3, button)
        self.body_layout.addWidget(self.plot, 1)
        self.body_layout.addWidget(self.caption)
        self.refresh()

    def requirement(self) -> str | None:
        data = self.state.data
        if data is not None and data.y is None:
            return f"{data.name} has no labels: the few-label curve needs labelled data (e.g. digits or MNIST)."
        return super().requirement()

    def compute(self) -> None:
        if self.requirement() is not None:
            return
        try:
            sizes = parse_int_tuple(self.sizes_edit.text(), "labels per class")
            if not sizes or min(sizes) < 1:
                raise LatentExplorerError("labels per class: give whole numbers >= 1, e.g. 10,100,1000")
        except LatentExplorerError as exc:
            self.show_error(str(exc))
            return
        subject, draws, fine_tune = self.subject(), self.draws_box.value(), self.fine_tune_box.isChecked()
        self.run_in_background(lambda task: few_labels(subject, sizes, draws, fine_tune, should_stop=task.should_stop,
                                                       progress=task.progress),
                               on_result=self.show_result,
                               what="Fitting classifiers on few labels (the fine-tuned encoder takes longest)…")

    def clear_results(self) -> None:
        self.result = None
        self.plot.getPlotItem().clear()

    def show_result(self, result: TransferResult) -> None:
        self.result = result
        item = self.plot.getPlotItem()
        item.clear()
        sizes = np.asarray(result.used_per_class, float)
        item.getAxis("bottom").setTicks([[(float(np.log10(n)), str(int(n))) for n in sizes]])
        for method in result.accuracies:
            mean, std = np.asarray(result.mean(method)), np.asarray(result.std(method))
            pen = pg.mkPen(COLOURS[method], width=2)
            item.plot(sizes, mean, pen=pen, symbol="o", symbolBrush=COLOURS[method], symbolSize=7,
                      name=METHOD_LABELS[method])
            # ErrorBarItem is not log-transformed by the plot: give it log10 positions itself.
            item.addItem(pg.ErrorBarItem(x=np.log10(sizes), y=mean, height=2 * std, beam=0.04, pen=pen))
        notes = "; ".join(result.notes)
        self.finished(f"Scored on the {result.split}." + (f" {notes}." if notes else ""))

    def ask_csv(self) -> None:
        if self.result is None:
            self.show_error("Compute the curve first; there is nothing to export yet.")
            return
        path = ask_save_path(self, "Export the few-label curve", "few_labels.csv", "CSV table (*.csv)")
        if path:
            self.write_file(lambda p: export_text(self.result.to_csv(), p), path)
