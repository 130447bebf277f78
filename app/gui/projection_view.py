"""Latent projections side by side: PCA, UMAP and t-SNE of the same codes (and the raw latent space
when it is one- or two-dimensional), linked by hover and selection, with a preview of the sample
under the mouse and its reconstruction.

Projections run in the ProjectionService child process (docs/DESIGN.md: UMAP's kernels hold the GIL
and would stall the window from a thread). The view submits jobs, polls for their events on a
timer, and drops any result made for codes other than the ones shown now (a newer model, a newer
encoding, a job that was replaced). Each panel fails alone: an error stays in its own panel.
"""

from __future__ import annotations


import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel,
                               QPushButton, QSpinBox, QSplitter, QStackedWidget, QToolButton, QVBoxLayout,
                               QWidget)

from app.gui import point_colors
from app.gui.export import ask_save_path, export_text
from app.gui.projection_csv import projection_csv
from app.gui.projection_panel import ProjectionPanel
from app.gui.projection_runner import ProjectionJob, ProjectionRunner
from app.gui.sample_preview import SamplePreview
from app.gui.scatter import default_marker_style
from app.gui.state import ExplorerState
from app.gui.workers import readable

METHODS = ("pca", "umap", "tsne")          # computed by the projection service
LATENT = "latent"                           # the codes themselves, when K <= 2
TITLES = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE", LATENT: "Latent (2-D)"}
TOOLTIPS = {
    "pca": "Principal component analysis: the linear view of the codes, fast and faithful to large distances",
    "umap": "UMAP (McInnes et al. 2018): a non-linear map that keeps neighbourhoods; "
            "its first run compiles code and takes longer",
    "tsne": "t-SNE (van der Maaten & Hinton 2008): a non-linear map that keeps local neighbourhoods; "
            "distances between clusters mean little",
    LATENT: "The latent codes themselves (z0 against z1), shown when the latent space is 2-D",
}
TSNE_SINGLE_THREAD_BELOW = 5_000
AUTO_RECOMPUTE_DELAY_MS = 300   # several encodings in a burst (training epochs) give one recompute
NO_MODEL_TEXT = "Train or load a model to see its latent codes projected here."


class ProjectionView(QWidget):
    projectionFinished = Signal(str)        # method whose embedding was accepted and drawn
    projectionFailed = Signal(str, str)     # method, readable message (shown in its panel)
    projectionDropped = Signal(str)         # method whose result arrived for outdated codes
    trustworthinessComputed = Signal(str, float)

    def __init__(self, state: ExplorerState, parent: QWidget | None = None, warm_up: bool = True):
        super().__init__(parent)
        self.state = state
        self.auto_methods: tuple[str, ...] = METHODS   # what new codes recompute when "Auto" is on
        self.embeddings: dict[str, np.ndarray] = {}
        self.seconds: dict[str, float] = {}
        self.trust: dict[str, float] = {}
        self.fit_captions: dict[str, str] = {}   # "UMAP fitted on 20,000 of 1,000,000 codes; …", "" when on all
        self.colouring: point_colors.Colouring | None = None
        self.color_mode = "none"
        self._chosen_color_mode = ""   # what the user picked; until then the data's first choice (label)
        self._dirty_params: set[str] = set()  # methods whose parameters changed since they ran
        self._preview_position = -1
        self.runner = ProjectionRunner(warm_up, parent=self)
        self.runner.progressed.connect(self._on_progressed)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)

        self.panels: dict[str, ProjectionPanel] = {}
        self._build_controls()
        self.splitter = QSplitter(Qt.Horizontal)
        for method in (*METHODS, LATENT):
            panel = ProjectionPanel(method, TITLES[method], TOOLTIPS[method])
            panel.cancelRequested.connect(self.cancel)
            panel.recomputeRequested.connect(lambda m: self.recompute([m]))
            panel.exportFailed.connect(self.state.error)
            panel.exported.connect(lambda path, title=TITLES[method]: self.state.info(f"Exported the {title} map to {path}"))
            panel.scatter.pointHovered.connect(self._on_point_hovered)
            panel.scatter.pointsSelected.connect(self._on_points_selected)
            if method == LATENT:   # the codes themselves: nothing to compute, cancel or recompute
                panel.recompute_action.setVisible(False)
            self.panels[method] = panel
            self.splitter.addWidget(panel)
        self.preview = SamplePreview()
        self.splitter.addWidget(self.preview)
        self.splitter.setStretchFactor(len(self.panels), 0)

        self.placeholder = QLabel(NO_MODEL_TEXT)
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.placeholder)
        self.pages.addWidget(self.splitter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(self.controls)
        layout.addLayout(self.settings)
        layout.addWidget(self.pages, 1)

        self._auto_timer = QTimer(self)
        self._auto_timer.setSingleShot(True)
        self._auto_timer.setInterval(AUTO_RECOMPUTE_DELAY_MS)
        self._auto_timer.timeout.connect(self._auto_recompute)

        state.dataChanged.connect(self._on_data_changed)
        state.snapshotChanged.connect(self._on_snapshot_changed)
        state.encodedChanged.connect(self._on_encoded_changed)
        state.selectionChanged.connect(self._draw_selection)
        state.hoverChanged.connect(self._draw_hover)

        self._rebuild_color_choices()
        if state.data is not None:
            QTimer.singleShot(0, self.runner.start)   # start warming up, but after the window shows
        if state.encoded is not None:
            self._on_encoded_changed()

    # --- controls -----------------------------------------------------------------------------
    def _build_controls(self) -> None:
        self.color_combo = QComboBox()
        self.color_combo.setToolTip("What the point colours show")
        self.color_combo.currentIndexChanged.connect(self._on_color_combo)
        self.legend_check = QCheckBox("Legend in plots")
        # Off by default: three legends inside three small plots hide the points; the colour key
        # beside the settings says the same once. Exported figures follow this box, with the key beside the points.
        self.legend_check.setChecked(False)
        self.legend_check.setToolTip("Also draw the colour key inside each plot; exported figures then carry it "
                                     "beside the points")
        self.legend_check.toggled.connect(self._on_legend_toggled)

        self.mode_group = QButtonGroup(self)
        self.mode_group.setExclusive(True)
        self.mode_buttons: dict[str, QToolButton] = {}
        for mode, text, tip in (("pan", "Pan/zoom", "Drag to pan, wheel to zoom, click a point to select it; "
                                                     "Shift-drag selects a rectangle"),
                                ("rect", "Rectangle", "Drag a rectangle to select the points inside "
                                                      "(hold Ctrl to add to the selection)"),
                                ("lasso", "Lasso", "Draw an outline to select the points inside "
                                                   "(hold Ctrl to add to the selection)")):
            button = QToolButton()
            button.setText(text)
            button.setCheckable(True)
            button.setToolTip(tip)
            button.toggled.connect(lambda on, m=mode: on and self.set_selection_mode(m))
            self.mode_group.addButton(button)
            self.mode_buttons[mode] = button
        self.mode_buttons["pan"].setChecked(True)

        self.clear_button = QPushButton("Clear selection")
        self.clear_button.setToolTip("Unselect all points (in every view)")
        self.clear_button.clicked.connect(lambda: self.state.set_selection([]))
        self.selection_label = QLabel("")
        self.recompute_button = QPushButton("Recompute")
        self.recompute_button.setToolTip("Compute the projections again: only those whose settings changed, "
                                         "that failed or were cancelled; all of them otherwise")
        self.recompute_button.clicked.connect(self._on_recompute_clicked)
        self.auto_check = QCheckBox("Auto")
        self.auto_check.setChecked(True)
        self.auto_check.setToolTip("Recompute the projections whenever new codes arrive (after training or loading)")
        self.csv_button = QPushButton("Export CSV…")
        self.csv_button.setToolTip("Save the latent codes, their 2-D projections and the labels/factors as CSV")
        self.csv_button.clicked.connect(self._ask_export_csv)

        self.controls = QHBoxLayout()
        self.controls.addWidget(QLabel("Colour by"))
        self.controls.addWidget(self.color_combo)
        self.controls.addWidget(self.legend_check)
        self.controls.addSpacing(12)
        for button in self.mode_buttons.values():
            self.controls.addWidget(button)
        self.controls.addWidget(self.clear_button)
        self.controls.addWidget(self.selection_label)
        self.controls.addStretch(1)
        self.controls.addWidget(self.auto_check)
        self.controls.addWidget(self.recompute_button)
        self.controls.addWidget(self.csv_button)
        self._build_settings_row()

    def _build_settings_row(self) -> None:
        """The second row: each method's parameters, the marker style and the colour key."""
        self.neighbors_spin = QSpinBox()
        self.neighbors_spin.setRange(2, 500)
        self.neighbors_spin.setValue(15)
        self.neighbors_spin.setToolTip("UMAP n_neighbors: larger keeps more global structure, smaller more local")
        self.min_dist_spin = QDoubleSpinBox()
        self.min_dist_spin.setRange(0.0, 0.99)
        self.min_dist_spin.setSingleStep(0.05)
        self.min_dist_spin.setValue(0.1)
        self.min_dist_spin.setToolTip("UMAP min_dist: how tightly points may pack together")
        self.perplexity_spin = QDoubleSpinBox()
        self.perplexity_spin.setRange(2.0, 200.0)
        self.perplexity_spin.setDecimals(0)
        self.perplexity_spin.setValue(30.0)
        self.perplexity_spin.setToolTip("t-SNE perplexity: roughly the number of neighbours each point considers")
        self.neighbors_spin.valueChanged.connect(lambda _: self._dirty_params.add("umap"))
        self.min_dist_spin.valueChanged.connect(lambda _: self._dirty_params.add("umap"))
        self.perplexity_spin.valueChanged.connect(lambda _: self._dirty_params.add("tsne"))
        self._build_marker_controls()
        self.settings = QHBoxLayout()
        for text, spin in (("UMAP neighbours", self.neighbors_spin), ("min dist", self.min_dist_spin),
                           ("t-SNE perplexity", self.perplexity_spin), ("Marker", self.marker_size_spin),
                           ("opacity", self.marker_opacity_spin)):
            self.settings.addWidget(QLabel(text))
            self.settings.addWidget(spin)
        self.settings.addStretch(1)
        self.color_summary = QLabel("")
        self.settings.addWidget(self.color_summary)

    def _build_marker_controls(self) -> None:
        # Marker size and opacity: chosen from the point count until the user sets them
        # (10,000 large opaque markers merge into solid masses).
        self._marker_auto = True
        self.marker_size_spin = QSpinBox()
        self.marker_size_spin.setRange(1, 20)
        self.marker_size_spin.setSuffix(" px")
        self.marker_size_spin.setToolTip("Marker size in screen pixels (default chosen from the number of points)")
        self.marker_opacity_spin = QDoubleSpinBox()
        self.marker_opacity_spin.setRange(0.05, 1.0)
        self.marker_opacity_spin.setSingleStep(0.05)
        self.marker_opacity_spin.setDecimals(2)
        self.marker_opacity_spin.setToolTip("Marker opacity: lower shows where points pile up "
                                            "(default chosen from the number of points)")
        size, opacity = default_marker_style(0)
        self.marker_size_spin.setValue(size)
        self.marker_opacity_spin.setValue(opacity)
        self.marker_size_spin.valueChanged.connect(self._on_marker_edited)
        self.marker_opacity_spin.valueChanged.connect(self._on_marker_edited)

    def _on_marker_edited(self, *_args) -> None:
        self._marker_auto = False
        self._apply_marker_style()

    def _apply_marker_style(self) -> None:
        if self._marker_auto:   # follow the number of points shown
            n = 0 if self.state.encoded is None else len(self.state.encoded.codes)
            size, opacity = default_marker_style(n)
            for spin, value in ((self.marker_size_spin, size), (self.marker_opacity_spin, opacity)):
                spin.blockSignals(True)
                spin.setValue(value)
                spin.blockSignals(False)
        for panel in self.panels.values():
            panel.scatter.set_marker_style(self.marker_size_spin.value(), self.marker_opacity_spin.value())

    def projection_seed(self) -> int:
        """The seed UMAP and t-SNE use: the run's own (TrainConfig.seed, kept by the state), so a
        map and its trustworthiness repeat exactly for the same model; 0 when none is known."""
        seed = getattr(self.state, "run_seed", None)
        return int(seed) if isinstance(seed, (int, np.integer)) and seed >= 0 else 0

    def params(self, method: str) -> dict:
        if method == "umap":
            return {"n_neighbors": int(self.neighbors_spin.value()), "min_dist": float(self.min_dist_spin.value()),
                    "seed": self.projection_seed()}
        if method == "tsne":
            params = {"perplexity": float(self.perplexity_spin.value()), "seed": self.projection_seed()}
            n = 0 if self.state.encoded is None else len(self.state.encoded.codes)
            if n < TSNE_SINGLE_THREAD_BELOW:
                # Measured on a busy 2-core machine: openTSNE on 300 codes took 2-8 s with one
                # thread and 23-45 s with all of them, on 3,000 codes 28 s against 58-63 s (its
                # thread pool's synchronisation dominates small problems when cores are contended).
                params["n_jobs"] = 1
            return params
        return {"seed": self.projection_seed()}

    # --- projections ---------------------------------------------------------------------------
    def recompute(self, methods=None) -> None:
        """(Re)compute the given projections (default: all) of the current codes in the background."""
        methods = list(METHODS if methods is None else methods)
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown projection {unknown[0]!r}; use one of {', '.join(METHODS)}")
        encoded = self.state.encoded
        if not self.runner.alive or encoded is None or len(encoded.codes) == 0:
            return
        if not self.runner.warm:
            # The child runs jobs in order, and an unwarmed UMAP spends up to a minute compiling:
            # let PCA and t-SNE appear first.
            methods.sort(key=lambda m: m == "umap")
        for method in methods:
            self._dirty_params.discard(method)
            panel = self.panels[method]
            if encoded.codes.shape[1] < 2:
                self.runner.cancel(method)
                self.embeddings.pop(method, None)
                panel.scatter.clear_points()
                panel.set_title(panel.title)
                panel.set_idle("The latent space has one dimension: see the Latent panel.", status="note")
                continue
            if self.runner.submit(method, encoded.codes, self.params(method), self.state.generation):
                panel.set_running(0.0, "starting…")

    def cancel(self, method: str) -> None:
        """Stop computing `method`; its panel says so and offers Recompute."""
        if self.runner.cancel(method):
            panel = self.panels[method]
            panel.set_idle("Cancelled. Press Recompute to compute it again.", status="cancelled")
            panel.set_title(panel.title)

    def running(self) -> list[str]:
        return self.runner.running()

    def _on_progressed(self, method: str, fraction: float, text: str) -> None:
        self.panels[method].set_running(fraction, text)

    def _on_finished(self, job: ProjectionJob, embedding: np.ndarray, seconds: float, trust: float) -> None:
        encoded = self.state.encoded
        if job.generation != self.state.generation or encoded is None or encoded.codes is not job.codes:
            self.panels[job.method].set_idle("Result dropped: the model changed while it was computed.")
            self.projectionDropped.emit(job.method)
            return
        method = job.method
        self.embeddings[method] = embedding
        self.seconds[method] = seconds
        self.trust.pop(method, None)
        self._draw_panel(method)
        self.panels[method].show_result(seconds)
        self.fit_captions[method] = job.fit_caption or fit_caption(method, job.fitted_on, len(embedding))
        self._show_fit_caption(method)
        self.projectionFinished.emit(method)
        # Trustworthiness comes with the map, computed in the projection process (on a thread
        # here its scikit-learn call held the GIL and stalled the window for ~0.2 s).
        if np.isfinite(trust):
            self._on_trustworthiness(method, embedding, trust)
        else:
            self._on_trustworthiness_failed(method, "too few points to score")

    def _show_fit_caption(self, method: str) -> None:
        """Under a map fitted on a sample of the codes, say so (the panel's note line)."""
        caption = self.fit_captions.get(method, "")
        if caption:
            self.panels[method].set_idle(caption, status="done")

    def _on_failed(self, method: str, message: str) -> None:
        self.embeddings.pop(method, None)
        self.panels[method].show_error(message)
        self.projectionFailed.emit(method, message)

    def _on_cancelled(self, method: str) -> None:
        self.panels[method].set_idle("Cancelled. Press Recompute to compute it again.", status="cancelled")

    def _on_trustworthiness(self, method: str, embedding: np.ndarray, value) -> None:
        if not self.runner.alive or self.embeddings.get(method) is not embedding:
            return   # the view closed, or the embedding was replaced meanwhile
        self.trust[method] = float(value)
        self.panels[method].show_result(self.seconds.get(method), self.trust[method])
        self._show_fit_caption(method)
        self.trustworthinessComputed.emit(method, self.trust[method])

    def _on_trustworthiness_failed(self, method: str, message: str) -> None:
        if self.runner.alive:
            self.panels[method].setToolTip(f"Trustworthiness could not be computed: {message}")

    def shutdown(self) -> None:
        """Cancel all projections and end the projection process (the window calls this on close)."""
        self._auto_timer.stop()
        self.runner.close()

    # --- reacting to the shared state ---------------------------------------------------------
    def _on_data_changed(self) -> None:
        self.runner.cancel_all()
        self.embeddings.clear()
        self.seconds.clear()
        self.trust.clear()
        self.fit_captions.clear()
        for panel in self.panels.values():
            panel.scatter.clear_points()
            panel.set_title(panel.title)
            panel.set_idle("")
        self.preview.clear()
        self._rebuild_color_choices()
        self.colouring = None                 # the old data's key (a factor's scale) must not linger
        self.color_summary.setText("")
        self.color_summary.setToolTip("")
        self._show_placeholder(self.state.encoded is None)
        self.runner.start()
        self._prepare_panels(list(self.panels))

    def _prepare_panels(self, methods: list[str]) -> None:
        """Build each map's marker items and legend for the new data's colour groups ahead of its
        first map, one panel per turn of the event loop (each ~40 ms), so neither this nor the
        map's arrival stalls the window for long."""
        if not methods or self.state.data is None:
            return
        method, rest = methods[0], methods[1:]
        if method not in self.embeddings:
            c = self._make_colouring()
            self.panels[method].scatter.prepare(c.colors, c.legend)
        if rest:
            QTimer.singleShot(0, self, lambda: self._prepare_panels(rest))   # dropped if the view is gone

    def _on_snapshot_changed(self) -> None:
        self.runner.start()   # a model is being trained or was loaded: warm up now
        for method in self.runner.running():
            if self.runner.job(method).generation != self.state.generation:
                self.runner.cancel(method)   # for a model that is gone: free the process
                self.panels[method].set_idle("Result dropped: the model changed while it was computed.")
        if self._preview_position >= 0:
            self._show_preview(self._preview_position)

    def _on_encoded_changed(self) -> None:
        encoded = self.state.encoded
        if encoded is None or len(encoded.codes) == 0:
            self._show_placeholder(True)
            return
        n = len(encoded.codes)
        for method in list(self.embeddings):   # keep old maps on screen until new ones arrive, if they fit
            if len(self.embeddings[method]) != n:
                self.embeddings.pop(method)
                self.panels[method].scatter.clear_points()
        self._show_placeholder(False)
        self._update_latent_panel()
        if self._marker_auto:
            self._apply_marker_style()
        if not self._recolour() and LATENT in self.embeddings:
            self._draw_panel(LATENT)   # the codes themselves moved, whatever the colours
        automatic = self.auto_methods if self.auto_check.isChecked() else ()
        for method in METHODS:
            panel = self.panels[method]
            if method not in self.embeddings and method not in self.runner.running() and method not in automatic \
                    and panel.status in ("empty", "cancelled"):
                panel.set_idle("Not computed yet: press Recompute.")
        self._auto_timer.start()

    def _auto_recompute(self) -> None:
        if self.auto_check.isChecked():
            self.recompute(self.auto_methods)

    def _show_placeholder(self, show: bool) -> None:
        self.pages.setCurrentWidget(self.placeholder if show else self.splitter)

    def _update_latent_panel(self) -> None:
        codes = self.state.encoded.codes
        panel = self.panels[LATENT]
        k = codes.shape[1]
        panel.setVisible(k <= 2)
        if k > 2:
            self.embeddings.pop(LATENT, None)
            return
        if k == 2:
            self.embeddings[LATENT] = codes.astype(np.float64)
            panel.title = "Latent (2-D)"
            panel.scatter.getPlotItem().setLabels(bottom="z0", left="z1")
        else:
            self.embeddings[LATENT] = np.column_stack([np.arange(len(codes)), codes[:, 0]]).astype(np.float64)
            panel.title = "Latent (1-D): z0 by sample"
            panel.scatter.getPlotItem().setLabels(bottom="sample", left="z0")
        panel.scatter.getPlotItem().showAxis("left")
        panel.scatter.getPlotItem().showAxis("bottom")
        panel.show_result(None)

    def _on_recompute_clicked(self) -> None:
        pending = {m for m in METHODS if m in self._dirty_params or self.panels[m].status in ("error", "cancelled")}
        self.recompute(sorted(pending, key=METHODS.index) if pending else None)

    # --- colours ------------------------------------------------------------------------------
    def color_modes(self) -> list[str]:
        return [self.color_combo.itemData(i) for i in range(self.color_combo.count())]

    def _rebuild_color_choices(self) -> None:
        previous = self._chosen_color_mode
        self.color_combo.blockSignals(True)
        self.color_combo.clear()
        data = self.state.data
        if data is not None and data.y is not None:
            self.color_combo.addItem("Label", "label")
        for name in (data.factor_names or []) if data is not None and data.factors is not None else []:
            self.color_combo.addItem(f"Factor: {name}", f"factor:{name}")
        self.color_combo.addItem("Reconstruction error", "error")
        self.color_combo.addItem("None", "none")
        modes = self.color_modes()
        self.color_combo.setCurrentIndex(modes.index(previous) if previous in modes else 0)
        self.color_combo.blockSignals(False)
        self.color_mode = self.color_combo.currentData()

    def set_color_mode(self, name: str) -> None:
        """'label', 'error', 'none' or 'factor:<name>'; the combo box follows."""
        modes = self.color_modes()
        if name not in modes:
            raise ValueError(f"cannot colour by {name!r} here; choose one of {', '.join(modes)}")
        self.color_combo.setCurrentIndex(modes.index(name))   # -> _on_color_combo
        if self.color_mode != name:
            self._on_color_combo()

    def _on_color_combo(self, *_args) -> None:
        self.color_mode = self._chosen_color_mode = self.color_combo.currentData() or "none"
        self._recolour()

    def _on_legend_toggled(self, on: bool) -> None:
        for panel in self.panels.values():
            panel.scatter.set_legend_visible(on)

    def _make_colouring(self) -> point_colors.Colouring:
        n = len(self.state.view_idx) if self.state.encoded is None else len(self.state.encoded.codes)
        mode, data = self.color_mode, self.state.data
        if mode == "label" and self.state.labels() is not None:
            return point_colors.by_class(self.state.labels(), data.label_names)
        if mode.startswith("factor:") and self.state.factors() is not None:
            name = mode.split(":", 1)[1]
            column = (data.factor_names or []).index(name)
            return point_colors.by_value(self.state.factors()[:, column], name)
        if mode == "error" and self.state.encoded is not None:
            return point_colors.by_value(self.state.encoded.errors, "error", robust=True)
        return point_colors.uniform(n)

    def _recolour(self) -> bool:
        """Colour the points by the chosen mode; returns whether the maps were redrawn."""
        if self.state.encoded is None:
            return False
        old, self.colouring = self.colouring, self._make_colouring()
        self.color_summary.setText(colour_key_html(self.colouring))
        self.color_summary.setToolTip(f"Colour: {self.colouring.summary}")
        if same_colouring(old, self.colouring):
            # New codes of the same samples coloured by label: the maps on screen already look
            # like this, and redrawing all of them at once stalled the window (~50 ms a map here).
            return False
        for method in self.embeddings:
            self._draw_panel(method)
        return True

    def _draw_panel(self, method: str) -> None:
        if self.colouring is None or len(self.colouring.groups) != len(self.embeddings[method]):
            self.colouring = self._make_colouring()
        c = self.colouring
        scatter = self.panels[method].scatter
        scatter.set_points(self.embeddings[method], c.groups, c.colors, c.legend)
        scatter.set_legend_visible(self.legend_check.isChecked())
        scatter.set_selected(self.state.selection)
        scatter.set_highlight(self.state.hover)

    # --- hover, selection and the preview -----------------------------------------------------
    def set_selection_mode(self, mode: str) -> None:
        """'pan', 'rect' or 'lasso': what a left drag does in every panel."""
        for panel in self.panels.values():
            panel.scatter.set_mode(mode)
        if not self.mode_buttons[mode].isChecked():
            self.mode_buttons[mode].setChecked(True)

    def _on_point_hovered(self, position: int) -> None:
        self.state.set_hover(position)

    def _on_points_selected(self, positions: np.ndarray, additive: bool) -> None:
        if additive:
            positions = np.union1d(self.state.selection, positions)
        self.state.set_selection(positions)   # drawn by _draw_selection, like a selection made elsewhere

    def _draw_hover(self, position: int) -> None:
        for panel in self.panels.values():
            panel.scatter.set_highlight(position)
        if position >= 0:
            self._show_preview(position)

    def _draw_selection(self) -> None:
        selection = self.state.selection
        for panel in self.panels.values():
            panel.scatter.set_selected(selection)
        self.selection_label.setText(f"{len(selection):,} selected" if len(selection) else "")
        if len(selection) and self.state.hover < 0:
            self._show_preview(int(selection[0]))

    def _show_preview(self, position: int) -> None:
        x = self.state.sample(position)
        if x is None:
            self.preview.clear()
            self._preview_position = -1
            return
        self._preview_position = position
        recon, note = None, ""
        if self.state.snapshot is not None:
            try:
                recon = self.state.snapshot.reconstruct(x[None])[0]
            except Exception as exc:  # noqa: BLE001 - e.g. data that no longer fits the model
                note = f" (no reconstruction: {readable(exc)})"
        self.preview.show_sample(x, recon, self._describe(position) + note)

    def _describe(self, position: int) -> str:
        index = int(self.state.view_idx[position])
        data, parts = self.state.data, [f"sample {index}"]
        if data is not None and data.y is not None:   # one label, not state.labels() (a copy of all: 1M on each hover)
            y = int(data.y[index])
            names = data.label_names
            parts.append(f"label {names[y] if names and 0 <= y < len(names) else y}")
        encoded = self.state.encoded
        if encoded is not None and position < len(encoded.errors):
            parts.append(f"error {float(encoded.errors[position]):.4g}")
        return " · ".join(parts)

    # --- CSV export ---------------------------------------------------------------------------
    def csv_text(self) -> str:
        encoded = self.state.encoded
        if encoded is None:
            raise ValueError("there are no latent codes yet; train or load a model first")
        data = self.state.data
        return projection_csv(self.state.view_idx, encoded.codes, self.embeddings, self.state.labels(),
                              self.state.factors(), data.factor_names if data is not None else None)

    def export_csv(self, path: str) -> None:
        export_text(self.csv_text(), path)

    def _ask_export_csv(self) -> None:
        if self.state.encoded is None:
            self.state.warn("Nothing to export yet: train or load a model to get latent codes.")
            return
        path = ask_save_path(self, "Export latent codes and projections", "latent_projections.csv",
                             "CSV files (*.csv)")
        if not path:
            return
        try:
            self.export_csv(path)
        except (OSError, ValueError) as exc:
            self.state.error(f"Could not export the codes to {path}: {exc}")
            return
        self.state.info(f"Saved codes and projections of {len(self.state.encoded.codes):,} samples to {path}")


def fit_caption(method: str, fitted_on: int | None, total: int) -> str:
    """What a map fitted on a sample of the codes says under it ("" when it was fitted on all): the
    projection core's own line (projections.FitInfo.caption), for a result that came without it."""
    if fitted_on is None or fitted_on >= total:
        return ""
    from app.core.projections import FitInfo

    return FitInfo(method, int(total), int(fitted_on)).caption()


def same_colouring(a, b) -> bool:
    """Whether two colourings draw every point alike (same groups, colours and legend)."""
    if a is None or b is None:
        return False
    return (a.legend == b.legend and [c.rgba() for c in a.colors] == [c.rgba() for c in b.colors]
            and np.array_equal(a.groups, b.groups))


def colour_key_html(colouring) -> str:
    """The colour key as one line of rich text: a coloured dot per legend entry."""
    from html import escape

    if not colouring.legend:
        return f"Colour: {escape(colouring.summary)}"
    swatches = []
    for group, text in colouring.legend:
        colour = colouring.colors[group].name() if 0 <= group < len(colouring.colors) else "#888888"
        swatches.append(f'<span style="color:{colour}">&#9679;</span>&nbsp;{escape(text)}')
    return "Colour: " + " &nbsp;".join(swatches)
