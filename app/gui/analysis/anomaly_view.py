"""Anomaly detection by reconstruction: a histogram of per-sample scores with a draggable threshold
(set by value or percentile), the count above it, the highest-scoring samples (click one to select
it in every view), the scores as CSV, and, with labels, ROC AUC / average precision against PCA.

Scores are those of the explored samples (state.encoded), so the histogram redraws by itself after
each encoding; only the evaluation against PCA is a background job.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QGroupBox, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.core.analysis.api import (anomaly_detection, anomaly_scores, parse_classes, score_histogram, scores_csv,
                                   threshold_scores, top_k)
from app.core.errors import LatentExplorerError
from app.gui.analysis.common import AnalysisTab, fit_table_height, side_by_side, fmt, plain_numbers, plot_export_buttons
from app.gui.export import ask_save_path, export_text
from app.gui.image_grid import ImageGrid, cell_at
from app.gui.reconstruction_view import sample_name
from app.gui.state import ExplorerState

SCORE_NAMES = {"reconstruction": "Reconstruction error", "neg_elbo": "Negative ELBO"}
HIST_PEN = pg.mkPen((31, 119, 180))
HIST_BRUSH = pg.mkBrush(31, 119, 180, 90)
THRESHOLD_PEN = pg.mkPen((214, 39, 40), width=2)
GALLERY_COLUMNS = 8
DEFAULT_PERCENTILE = 95.0
HISTOGRAM_MIN_HEIGHT = 160
WARNING_STYLE = "color: #8a5a00;"


class AnomalyView(AnalysisTab):
    retrainRequested = Signal(str)   # the normal classes ("0,1,2"): train a model on those only
    no_model_text = "Train or load a model to score every sample by how badly it is reconstructed."
    needs_encoding = True
    compute_text = "Redraw"
    compute_tip = "Redraw the histogram and the gallery from the latest encoding (done by itself after each)"

    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(state, parent)
        self.scores: np.ndarray | None = None     # (N,) for the explored samples
        self.score_kind = "reconstruction"
        self.threshold = 0.0
        self.top_positions = np.zeros(0, np.int64)
        self.detection: dict | None = None
        self.flagged_count = 0
        self._classes: list[int] = []
        self._syncing = False      # set while this view moves its own threshold controls

        self.kind_box = QComboBox()
        self.kind_box.setToolTip("Reconstruction error: summed squared error per sample (every kind).\n"
                                 "Negative ELBO: reconstruction loss plus KL, z at the mean (VAE kinds).")
        self.kind_box.currentIndexChanged.connect(self._kind_changed)
        self.value_box = QDoubleSpinBox()
        self.value_box.setRange(-1e12, 1e12)
        self.value_box.setDecimals(4)
        self.value_box.setToolTip("Samples scoring strictly above this value are flagged")
        self.value_box.valueChanged.connect(lambda v: self.set_threshold(value=v, source=self.value_box))
        self.percentile_box = QDoubleSpinBox()
        self.percentile_box.setRange(0.0, 100.0)
        self.percentile_box.setDecimals(2)
        self.percentile_box.setSuffix(" %")
        self.percentile_box.setValue(DEFAULT_PERCENTILE)
        self.percentile_box.setToolTip("Set the threshold at this percentile of the scores: 95 flags the top 5%")
        self.percentile_box.valueChanged.connect(lambda p: self.set_threshold(percentile=p,
                                                                              source=self.percentile_box))
        self.export_button = QPushButton("Export scores CSV…")
        self.export_button.setToolTip("index,score,label,flagged for every explored sample")
        self.export_button.clicked.connect(self._ask_export)
        for widget in (QLabel("Score:"), self.kind_box, QLabel("Threshold:"), self.value_box, QLabel("percentile"),
                       self.percentile_box, self.export_button):
            self.controls.insertWidget(self.controls.count() - 3, widget)

        # Histogram with its threshold line
        self.count_label = QLabel()
        self.count_label.setWordWrap(True)
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLabel("left", "samples")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        plain_numbers(self.plot.getAxis("left"), self.plot.getAxis("bottom"))
        self.hist_item = pg.PlotDataItem(stepMode="center", fillLevel=0, pen=HIST_PEN, brush=HIST_BRUSH)
        self.plot.addItem(self.hist_item)
        self.threshold_line = pg.InfiniteLine(angle=90, movable=True, pen=THRESHOLD_PEN,
                                              label="threshold", labelOpts={"position": 0.9, "color": (214, 39, 40)})
        self.threshold_line.setToolTip("Drag to move the threshold; samples to the right are flagged")
        self.threshold_line.sigPositionChanged.connect(
            lambda line: self.set_threshold(value=float(line.value()), source=self.threshold_line))
        self.plot.addItem(self.threshold_line)
        hist_bar = QHBoxLayout()
        hist_bar.addWidget(self.count_label, 1)
        for button in plot_export_buttons(self, self.plot, "anomaly_scores_histogram"):
            hist_bar.addWidget(button)

        gallery_bar = self._build_gallery()
        self._build_evaluation()

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(hist_bar)
        self.plot_widget.setMinimumHeight(HISTOGRAM_MIN_HEIGHT)   # the evaluation below never squeezes it
        left_layout.addWidget(self.plot_widget, 1)
        left_layout.addWidget(self.eval_group, 0)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(gallery_bar)
        right_layout.addWidget(self.gallery, 2)
        right_layout.addWidget(self.top_list, 1)
        self.body_layout.addWidget(side_by_side(left, right, (3, 2)))
        self.refresh()
        self.on_encoded()

    def _build_gallery(self) -> QHBoxLayout:
        """The highest-scoring samples: a gallery (images) and a clickable list."""
        state = self.state
        self.top_box = QSpinBox()
        self.top_box.setRange(1, 128)
        self.top_box.setValue(16)
        self.top_box.setToolTip("How many of the highest-scoring samples to show")
        self.top_box.valueChanged.connect(self._draw_gallery)
        self.gallery = ImageGrid(export_name="top_anomalies.png", scale=3)
        self.gallery.exported.connect(lambda path: state.info(f"Saved {path}"))
        self.gallery.exportFailed.connect(self.show_error)
        self.gallery.graphics.scene().sigMouseClicked.connect(self._gallery_clicked)
        self.top_list = QListWidget()
        self.top_list.setToolTip("Click a sample to select it in the projections and the other views")
        self.top_list.itemClicked.connect(lambda item: self.select_position(int(item.data(Qt.UserRole))))
        gallery_bar = QHBoxLayout()
        gallery_bar.addWidget(QLabel("Highest scores (click one to select it):"), 1)
        gallery_bar.addWidget(QLabel("show"))
        gallery_bar.addWidget(self.top_box)

        return gallery_bar

    def _build_evaluation(self) -> None:
        """ROC AUC / average precision against PCA and IsolationForest for classes declared anomalous."""
        self.eval_group = QGroupBox("Evaluate with labels")
        self.classes_edit = QLineEdit()
        self.classes_edit.setPlaceholderText("e.g. 9 or 8,9 (label values or names)")
        self.classes_edit.setToolTip("Classes treated as anomalous; comma separated label values or names")
        self.classes_edit.returnPressed.connect(self.evaluate)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("ROC AUC and average precision of the model's scores and of PCA's "
                                        "reconstruction error at finding these classes (runs in the background)")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.retrain_button = QPushButton("Retrain on normal classes only")
        self.retrain_button.setToolTip("Train a new model with the training form's settings on every class but "
                                       "these (the validation split keeps all of them), then evaluate it here")
        self.retrain_button.clicked.connect(self.request_retrain)
        self.detection_table = QTableWidget(0, 2)
        self.detection_table.setHorizontalHeaderLabels(["ROC AUC", "Average precision"])
        self.detection_table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.detection_table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.detection_note = QLabel()
        self.detection_note.setWordWrap(True)
        self.classes_hint = QLabel()
        self.classes_hint.setWordWrap(True)
        eval_row = QHBoxLayout()
        eval_row.addWidget(QLabel("Anomalous classes:"))
        eval_row.addWidget(self.classes_edit, 1)
        eval_row.addWidget(self.evaluate_button)
        eval_row.addWidget(self.retrain_button)
        eval_layout = QVBoxLayout(self.eval_group)
        eval_layout.addWidget(self.classes_hint)
        eval_layout.addLayout(eval_row)
        eval_layout.addWidget(self.detection_table)
        eval_layout.addWidget(self.detection_note)
        self.detection_table.setVisible(False)

    # --- state --------------------------------------------------------------------------------
    stale_on = ("encoding",)   # an evaluation is of the scores it was started with

    def clear_results(self) -> None:
        self.scores = None
        self.detection = None
        self.detection_table.setVisible(False)
        self.detection_note.setText("")

    def on_encoded(self) -> None:
        """Cheap (a histogram and a few images): redraw at once from the new encoding."""
        self.refresh()
        if self.requirement() is None:
            self.compute()
            if self.detection is not None:     # the evaluation shown was for the previous scores
                self.evaluate()

    def _on_model_changed(self) -> None:
        self.refresh()   # the new encoding follows shortly and redraws everything

    # --- scores and threshold -----------------------------------------------------------------
    def compute(self) -> None:
        encoded = self.state.encoded
        if self.requirement() is not None or encoded is None:
            return
        kinds = ["reconstruction"] + (["neg_elbo"] if encoded.neg_elbo is not None else [])
        if [self.kind_box.itemData(i) for i in range(self.kind_box.count())] != kinds:
            self.kind_box.blockSignals(True)
            self.kind_box.clear()
            for kind in kinds:
                self.kind_box.addItem(SCORE_NAMES[kind], kind)
            if self.score_kind not in kinds:
                self.score_kind = "reconstruction"
            self.kind_box.setCurrentIndex(kinds.index(self.score_kind))
            self.kind_box.blockSignals(False)
        self.kind_box.setEnabled(len(kinds) > 1)
        try:
            scores = anomaly_scores(encoded, self.score_kind)
        except LatentExplorerError as exc:
            self.show_error(str(exc))
            return
        if len(scores) == 0:
            self.show_placeholder("There are no encoded samples to score.")
            return
        self.scores = scores
        finite = scores[np.isfinite(scores)]
        if len(finite) == 0:
            self.show_placeholder("Every score is NaN or infinite: the model has diverged.")
            return
        counts, edges = score_histogram(finite, bins=min(60, max(10, len(finite) // 20)))
        self.hist_item.setData(edges, counts.astype(np.float64))
        self.plot.setLabel("bottom", SCORE_NAMES[self.score_kind].lower())
        spread = float(finite.max() - finite.min())
        self.value_box.setSingleStep(max(spread / 200.0, 1e-6))
        self._update_classes_hint()
        self.set_threshold(percentile=self.percentile_box.value(), source=None)
        self._draw_gallery()
        self.finished("")

    def _kind_changed(self, index: int) -> None:
        kind = self.kind_box.itemData(index)
        if kind and kind != self.score_kind:
            self.score_kind = kind
            self.compute()

    def set_threshold(self, value: float | None = None, percentile: float | None = None, source=None) -> None:
        """Move the threshold (by value or percentile) and update every control but the one that moved it."""
        if self.scores is None or self._syncing:
            return
        result = threshold_scores(self.scores, value=value, percentile=percentile)
        self.threshold = result.value
        self._syncing = True       # the controls moved below call back here; ignore those echoes
        try:
            if source is not self.value_box:
                self.value_box.setValue(result.value)
            if percentile is None:      # set by value: show where it sits; by percentile: keep the user's
                self.percentile_box.setValue(result.percentile)
            if source is not self.threshold_line:
                self.threshold_line.setValue(result.value)
        finally:
            self._syncing = False
        n = len(self.scores)
        self.flagged_count = result.count
        self.count_label.setText(f"{result.count:,} of {n:,} explored samples ({result.count / n:.1%}) score above "
                                 f"{result.value:.4g} (percentile {result.percentile:.1f})")

    # --- gallery ------------------------------------------------------------------------------
    def _draw_gallery(self) -> None:
        data, scores = self.state.data, self.scores
        if data is None or scores is None:
            return
        finite = np.where(np.isfinite(scores), scores, np.inf)   # a diverged sample is the most anomalous
        self.top_positions = top_k(finite, self.top_box.value())
        indices = self.state.view_idx[self.top_positions]
        self.top_list.clear()
        for rank, (position, index) in enumerate(zip(self.top_positions, indices)):
            item = QListWidgetItem(f"{rank + 1}. {sample_name(self.state, int(index))} · score {fmt(scores[position])}")
            item.setData(Qt.UserRole, int(position))
            self.top_list.addItem(item)
        if data.modality != "image":
            self.gallery.show_message("The highest-scoring samples are listed below (a gallery is drawn for images).")
            return
        n = len(indices)
        columns = min(GALLERY_COLUMNS, n)
        rows = -(-n // columns)
        images = np.full((rows * columns, *data.sample_shape), 0.5, np.float32)
        images[:n] = data.x[indices]
        images = images.reshape(rows, columns, *data.sample_shape)

        def tooltip(row: int, col: int) -> str:
            i = row * columns + col
            if i >= n:
                return ""
            return (f"{i + 1}. {sample_name(self.state, int(indices[i]))}\nscore {fmt(scores[self.top_positions[i]])}"
                    "\nclick to select")

        self.gallery.set_grid(images, cell_tooltip=tooltip)
        self.gallery.set_caption(f"top {n} by {SCORE_NAMES[self.score_kind].lower()}, highest first")

    def gallery_position_at(self, x: float, y: float) -> int:
        """The explored-sample position of the gallery cell at mosaic coordinates (x, y), or -1."""
        rows, columns = self.gallery.grid_shape
        if self.state.data is None or rows == 0 or self.state.data.modality != "image":
            return -1
        h, w = self.state.data.sample_shape[-2:]
        row, col = cell_at(y, rows, h, self.gallery.pad), cell_at(x, columns, w, self.gallery.pad)
        i = row * columns + col
        return int(self.top_positions[i]) if row >= 0 and col >= 0 and i < len(self.top_positions) else -1

    def _gallery_clicked(self, event) -> None:
        point = self.gallery.plot.vb.mapSceneToView(event.scenePos())
        position = self.gallery_position_at(point.x(), point.y())
        if position >= 0:
            self.select_position(position)

    def select_position(self, position: int) -> None:
        """Select one explored sample: the projections highlight it, the other views show it."""
        self.state.set_selection([position])

    # --- export -------------------------------------------------------------------------------
    def scores_csv(self) -> str:
        if self.scores is None:
            raise ValueError("there are no scores yet")
        return scores_csv(self.scores, self.state.labels(), self.threshold, index=self.state.view_idx)

    def export_scores(self, path: str) -> bool:
        return self.write_file(lambda p: export_text(self.scores_csv(), p), path)

    def _ask_export(self) -> None:
        if self.scores is None:
            return
        path = ask_save_path(self, "Export anomaly scores", "anomaly_scores.csv", "CSV table (*.csv)")
        if path:
            self.export_scores(path)

    # --- evaluation with labels ---------------------------------------------------------------
    def _update_classes_hint(self) -> None:
        data = self.state.data
        has_labels = data is not None and data.y is not None
        self.eval_group.setVisible(has_labels)
        if not has_labels:
            return
        values = [int(v) for v in np.unique(data.y)]
        names = [data.label_names[v] if data.label_names and v < len(data.label_names) else str(v) for v in values]
        shown = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
        normal = self.subject().split.normal_classes if self.state.snapshot is not None else ""
        trained = (f"The model here was trained on the normal classes {normal!r} only (the usual protocol)."
                   if normal else "The model here was trained on every class, anomalies included; "
                   f"{self.retrain_button.text()!r} trains one on the other classes only (the usual protocol).")
        self.classes_hint.setText(
            f"Treat some classes as anomalies and measure how well each score finds them (classes: {shown}). "
            f"Scored on all explored samples (training split included), like `evaluate --split all "
            f"--anomaly-classes`. {trained}")

    def evaluate(self) -> None:
        data, encoded, snapshot = self.state.data, self.state.encoded, self.state.snapshot
        if self.requirement() is not None or data is None or encoded is None or snapshot is None:
            return
        try:
            classes = parse_classes(self.classes_edit.text(), data)
        except LatentExplorerError as exc:
            self.show_error(str(exc))
            return
        self._classes = classes
        subject, view_idx = self.subject(), self.state.view_idx
        self.run_in_background(
            lambda task: anomaly_detection(subject, view_idx, encoded, classes, should_stop=task.should_stop),
            on_result=self.show_detection, what="Fitting PCA and scoring both detectors…")

    def show_detection(self, result: dict) -> None:
        self.detection = result
        data = self.state.data
        detectors = [("Autoencoder: reconstruction error", "anomaly_auc", "anomaly_average_precision")]
        if "anomaly_auc_neg_elbo" in result:
            detectors.append(("Autoencoder: negative ELBO", "anomaly_auc_neg_elbo",
                              "anomaly_average_precision_neg_elbo"))
        detectors.append((f"PCA (k = {result['k_pca']}): reconstruction error", "pca_anomaly_auc",
                          "pca_anomaly_average_precision"))
        if "iforest_anomaly_auc" in result:
            detectors.append(("IsolationForest on the inputs", "iforest_anomaly_auc",
                              "iforest_anomaly_average_precision"))
        self.detection_table.setRowCount(len(detectors))
        self.detection_table.setVerticalHeaderLabels([d[0] for d in detectors])
        for row, (_, auc_key, ap_key) in enumerate(detectors):
            for col, key in enumerate((auc_key, ap_key)):
                item = QTableWidgetItem(fmt(result.get(key), 3))
                item.setTextAlignment(Qt.AlignCenter)
                self.detection_table.setItem(row, col, item)
        fit_table_height(self.detection_table)
        self.detection_table.setVisible(True)
        names = [data.label_names[c] if data is not None and data.label_names and c < len(data.label_names)
                 else str(c) for c in self._classes]
        chance = result["n_anomalies"] / max(result["n"], 1)
        note = (f"Anomalous: {', '.join(names)} ({result['n_anomalies']:,} of {result['n']:,} samples). "
                f"Chance level: AUC 0.5, average precision {chance:.3f}.")
        if result.get("anomaly_auc") is None:
            note += " The metrics need both anomalous and normal samples among the explored ones."
        seen = result.get("seen_in_training") or []
        if seen:
            note += (f" Warning: the model was trained on {', '.join(seen)} too, so it learned to reconstruct "
                     f"them; press {self.retrain_button.text()!r} for a fair test.")
        self.detection_note.setStyleSheet(WARNING_STYLE if seen else "")
        self.detection_note.setText(note)
        self.set_note("")
        self.computed.emit()

    def request_retrain(self) -> None:
        """Ask the window to train on every class but the anomalous ones (DataConfig.normal_classes)."""
        data = self.state.data
        if data is None or data.y is None:
            return
        try:
            anomalous = parse_classes(self.classes_edit.text(), data)
        except LatentExplorerError as exc:
            self.show_error(str(exc))
            return
        normal = [int(v) for v in np.unique(data.y) if int(v) not in anomalous]
        if not normal:
            self.show_error("Every class is marked anomalous: leave at least one normal class to train on.")
            return
        self.set_note(f"Training on the normal classes {','.join(map(str, normal))} only…")
        self.retrainRequested.emit(",".join(map(str, normal)))
