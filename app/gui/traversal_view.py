"""Latent traversal: one slider per latent dimension with the decoded output redrawn as you drag,
and beside it a traversal grid, samples from the prior and an interpolation between two samples.

The slider path is deliberately short: decode one code on the GUI thread (a fraction of a
millisecond for the MLP VAE) and hand the array to an existing ImageItem with fixed levels. Nothing
else is redrawn per move; the traversal grid follows the sliders after a 150 ms pause.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QScrollArea,
                               QSlider, QSpinBox, QSplitter, QStackedWidget, QTabWidget, QVBoxLayout, QWidget)

from app.core.imaging import display_image
from app.core.latent import ACTIVE_THRESHOLD, DimensionStats, code_scale, dimension_label, random_code
from app.gui.image_grid import ImageGrid
from app.gui.reconstruction_view import sample_name
from app.gui.signal_plot import Curve, PlotSpec, SignalPlot, family_plots
from app.gui.state import ExplorerState

SLIDER_SPAN = 3.0          # sliders cover centre +/- 3 scales (prior std, or the codes' std)
SLIDER_STEPS = 600         # integer positions of a QSlider: 0.01 per step over +/- 3
GRID_DEBOUNCE_MS = 150     # the traversal grid follows the sliders after this pause
MAX_GRID_DIMS = 16
PRIOR_SIDE = 8             # an 8x8 grid of prior samples
PRIOR_LINE_PLOTS = 16      # small multiples for non-image data
INTERPOLATION_STEPS = 10
MAX_LINE_DIMS = 8          # multi-channel sequences: traversal plots for this many dimensions ...
MAX_LINE_CHANNELS = 3      # ... times this many channels
TABS = ("traversal", "prior", "interpolation")

INACTIVE_TIP = ("Inactive: across the data, the mean code of this dimension varies by only {var:.3g} "
                "(variance), below {threshold} — Burda et al.'s (2016) criterion Cov_x(E_q[z_d]) > 0.01 "
                "for an active unit. The encoder ignores it, so the decoder has learned (almost) nothing "
                "from it; for a VAE this is posterior collapse.")
NO_PRIOR_TIP = ("{kind} has no prior: its codes are not pushed towards a known distribution, so decoding "
                "random draws from N(0, I) shows nothing meaningful. Prior samples need a vae, conv-vae "
                "or aae model.")


def has_prior(snapshot) -> bool:
    """The model class says (Autoencoder.has_prior): VAE kinds have N(0, I) as their prior; the AAE
    matches its codes to N(0, I) adversarially."""
    return bool(snapshot.model.has_prior)


class _DimensionRow:
    """The widgets of one dimension: name and statistic, slider, value. Not a QWidget of its own so
    that all rows share one grid layout and their columns line up."""

    def __init__(self, dim: int, on_moved):
        self.dim = dim
        self.label = QLabel(f"z{dim}")
        self.tag = QLabel("")
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setMinimumWidth(120)
        self.slider.valueChanged.connect(partial(on_moved, dim))
        self.value = QLabel("+0.00")
        self.value.setMinimumWidth(self.value.fontMetrics().horizontalAdvance("+00.00") + 4)
        self.value.setAlignment(Qt.AlignRight | Qt.AlignVCenter)

    def widgets(self):
        return (self.label, self.tag, self.slider, self.value)


class TraversalView(QWidget):
    decoded = Signal()           # after each redraw of the decoded output
    gridUpdated = Signal(str)    # "traversal" | "prior" | "interpolation", after that tab was redrawn

    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.snapshot = None
        self.z = np.zeros(0, np.float32)        # the sliders' code
        self.base = np.zeros(0, np.float32)     # where the sliders started (Reset returns here)
        self.stats: DimensionStats | None = None
        self.centre = np.zeros(0, np.float32)
        self.scale = np.ones(0, np.float32)
        self.rows: list[_DimensionRow] = []     # indexed by dimension
        self.decoded_output: np.ndarray | None = None
        self.traversal = None                   # the last TraversalGrid drawn
        self.prior = None                       # the last prior samples drawn (N, *shape)
        self.interpolation = None               # the last interpolation drawn (steps, *shape)
        self.prior_seed = 0
        self._dirty = {name: True for name in TABS}
        self._started_at_centre = False
        self._is_image = True

        self._build_controls()
        self._build_tabs()
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.left)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        self.empty = QLabel("Train or load a model to drag its latent dimensions and watch the decoder respond.")
        self.empty.setAlignment(Qt.AlignCenter)
        self.empty.setWordWrap(True)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.empty)
        self.pages.addWidget(splitter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.pages)

        self._grid_timer = QTimer(self, singleShot=True, interval=GRID_DEBOUNCE_MS)
        self._grid_timer.timeout.connect(self._refresh_current_tab)
        state.snapshotChanged.connect(self._on_snapshot)
        state.encodedChanged.connect(self._on_encoded)
        state.selectionChanged.connect(self._on_selection)
        state.hoverChanged.connect(lambda _: self._update_start_buttons())
        state.dataChanged.connect(self._on_selection)
        self._on_snapshot()

    # --- construction -------------------------------------------------------------------------
    def _build_controls(self) -> None:
        self.zero_button = QPushButton("Zero")
        self.zero_button.clicked.connect(lambda: self.start_from_centre())
        self.selection_button = QPushButton("From selection")
        self.selection_button.setToolTip("Start from the code of the first selected sample (or the one under "
                                          "the mouse in a projection)")
        self.selection_button.clicked.connect(self.start_from_selection)
        self.random_button = QPushButton("Random")
        self.random_button.clicked.connect(lambda: self.start_from_random())
        self.seed_box = QSpinBox()
        self.seed_box.setRange(0, 1_000_000)
        self.seed_box.setPrefix("seed ")
        self.seed_box.setToolTip("Seed of the next random code; the same seed gives the same code")
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Undo the slider moves: back to the code the sliders started from")
        self.reset_button.clicked.connect(self.reset)
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("Start:"))
        for w in (self.zero_button, self.selection_button, self.random_button, self.seed_box, self.reset_button):
            buttons.addWidget(w)
        buttons.addStretch(1)

        self.range_note = QLabel()
        self.range_note.setWordWrap(True)
        self.slider_grid = QGridLayout()
        self.slider_grid.setColumnStretch(2, 1)
        self.slider_grid.setVerticalSpacing(2)
        holder = QWidget()
        holder_layout = QVBoxLayout(holder)
        holder_layout.addLayout(self.slider_grid)
        holder_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(holder)

        self.live_image = ImageGrid(export_name="decoded.png")
        self.live_image.set_caption("The sliders' code, decoded")
        self.live_lines = SignalPlot(export_name="decoded.png", columns=1)
        self.live_lines.set_caption("solid: the sliders' code decoded · dashed: the starting code decoded")
        self.live_stack = QStackedWidget()
        self.live_stack.addWidget(self.live_image)
        self.live_stack.addWidget(self.live_lines)

        split = QSplitter(Qt.Vertical)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addLayout(buttons)
        top_layout.addWidget(self.range_note)
        top_layout.addWidget(self.scroll, 1)
        split.addWidget(top)
        split.addWidget(self.live_stack)
        self.left = split

    def _build_tabs(self) -> None:
        self.steps_box = QSpinBox()
        self.steps_box.setRange(3, 21)
        self.steps_box.setValue(9)
        self.steps_box.setToolTip("Columns: values each dimension takes")
        self.span_box = QDoubleSpinBox()
        self.span_box.setRange(0.5, 6.0)
        self.span_box.setSingleStep(0.5)
        self.span_box.setValue(3.0)
        self.span_box.setPrefix("± ")
        self.span_box.setToolTip("How far each dimension moves from the sliders' code: in prior standard "
                                 "deviations (VAE kinds) or in standard deviations of the codes")
        for box in (self.steps_box, self.span_box):
            box.valueChanged.connect(lambda _: self._mark_dirty("traversal", debounce=True))
        self.traversal_image = ImageGrid(export_name="traversal.png")
        self.traversal_lines = SignalPlot(export_name="traversal.png", columns=4)
        traversal_bar = QHBoxLayout()
        traversal_bar.addWidget(QLabel("Steps"))
        traversal_bar.addWidget(self.steps_box)
        traversal_bar.addWidget(QLabel("Span"))
        traversal_bar.addWidget(self.span_box)
        traversal_bar.addStretch(1)
        traversal_tab, self.traversal_stack = self._tab(traversal_bar, self.traversal_image, self.traversal_lines)

        self.resample_button = QPushButton("Resample")
        self.resample_button.setToolTip("Draw new codes from the prior N(0, I) and decode them")
        self.resample_button.clicked.connect(self.resample_prior)
        self.prior_image = ImageGrid(export_name="prior-samples.png")
        self.prior_lines = SignalPlot(export_name="prior-samples.png", columns=4)
        prior_bar = QHBoxLayout()
        prior_bar.addWidget(self.resample_button)
        prior_bar.addStretch(1)
        prior_tab, self.prior_stack = self._tab(prior_bar, self.prior_image, self.prior_lines)

        self.interpolation_image = ImageGrid(export_name="interpolation.png")
        self.interpolation_lines = SignalPlot(export_name="interpolation.png", columns=1)
        interpolation_tab, self.interpolation_stack = self._tab(None, self.interpolation_image,
                                                                self.interpolation_lines)
        self.tabs = QTabWidget()
        self.tabs.addTab(traversal_tab, "Traversal grid")
        self.tabs.addTab(prior_tab, "Prior samples")
        self.tabs.addTab(interpolation_tab, "Interpolation")
        self.tabs.setTabToolTip(0, "Each row moves one dimension (most informative first), the others stay "
                                   "at the sliders' code")
        self.tabs.setTabToolTip(2, "Decoded codes on the straight line between the first two selected samples")
        self.tabs.currentChanged.connect(lambda _: self._refresh_current_tab())
        for w in (self.live_image, self.live_lines, self.traversal_image, self.traversal_lines, self.prior_image,
                  self.prior_lines, self.interpolation_image, self.interpolation_lines):
            w.exported.connect(lambda path: self.state.info(f"Saved {path}"))
            w.exportFailed.connect(self.state.error)

    @staticmethod
    def _tab(bar, image: ImageGrid, lines: SignalPlot) -> tuple[QWidget, QStackedWidget]:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(2, 2, 2, 2)
        if bar is not None:
            layout.addLayout(bar)
        stack = QStackedWidget()
        stack.addWidget(image)
        stack.addWidget(lines)
        layout.addWidget(stack, 1)
        return page, stack

    # --- state reactions ----------------------------------------------------------------------
    def _encoded(self):
        """The shared encoding if it belongs to a model of this latent size, else None."""
        enc = self.state.encoded
        k = len(self.z)
        if enc is None or enc.codes.ndim != 2 or enc.codes.shape[1] != k or len(enc.codes) < 2:
            return None
        return enc

    def _on_snapshot(self) -> None:
        snapshot = self.state.snapshot
        previous = self.snapshot
        self.snapshot = snapshot
        if snapshot is None:
            self.pages.setCurrentWidget(self.empty)
            return
        self.pages.setCurrentWidget(self.pages.widget(1))
        shape = tuple(snapshot.model.input_shape)
        self._is_image = len(shape) == 3
        self.live_stack.setCurrentIndex(0 if self._is_image else 1)
        for stack in (self.traversal_stack, self.prior_stack, self.interpolation_stack):
            stack.setCurrentIndex(0 if self._is_image else 1)
        k = snapshot.latent_dim
        same_space = (previous is not None and previous.latent_dim == k
                      and tuple(previous.model.input_shape) == shape and previous.variational == snapshot.variational)
        if not same_space:
            self.z = np.zeros(k, np.float32)
            self.stats = snapshot.dimension_stats(self._encoded()) if self._encoded() is not None else None
            self._build_rows()
            self.start_from_centre(redraw=False)
        self._update_prior_controls()
        self._update_start_buttons()
        self._update_range_note()
        self._update_reference()
        self.redraw()
        for name in TABS:
            self._dirty[name] = True
        if same_space:
            # A new epoch of the same model: the grid follows through the debounce timer (redraw
            # started it), in a turn of the event loop of its own, so that the epoch's redraws do
            # not hold the window up all at once.
            return
        self._refresh_current_tab()

    def _on_encoded(self) -> None:
        if self.snapshot is None:
            return
        encoded = self._encoded()
        untouched = self._started_at_centre and np.array_equal(self.z, self.base)
        self.stats = self.snapshot.dimension_stats(encoded) if encoded is not None else None
        self._place_rows()
        self._update_range_note()
        if untouched and not self.snapshot.variational:
            self.start_from_centre()   # the codes' mean is now known: start there instead of at 0
        else:
            self._sync_sliders()
        # Through the debounce timer: new codes arrive together with work in every other view
        # (the projections recolour, the analysis refreshes), so the grid waits its own turn.
        self._mark_dirty("traversal", debounce=True)
        self._mark_dirty("interpolation", debounce=True)

    def _on_selection(self) -> None:
        self._update_start_buttons()
        self._mark_dirty("interpolation", debounce=False)

    def _update_start_buttons(self) -> None:
        available = self.snapshot is not None and self.state.data is not None and (
            len(self.state.selection) > 0 or self.state.hover >= 0)
        self.selection_button.setEnabled(available)

    def _update_prior_controls(self) -> None:
        snap = self.snapshot
        ok = has_prior(snap)
        self.tabs.setTabEnabled(1, ok)
        self.resample_button.setEnabled(ok)
        tip = ("Decoded draws from the prior N(0, I)" if ok
               else NO_PRIOR_TIP.format(kind=snap.info.get("kind", "This model")))
        self.tabs.setTabToolTip(1, tip)
        self.resample_button.setToolTip(tip if not ok else "Draw new codes from the prior N(0, I) and decode them")
        if not ok and self.tabs.currentIndex() == 1:
            self.tabs.setCurrentIndex(0)
        self.zero_button.setText("Zero" if snap.variational else "Mean")
        self.zero_button.setToolTip("Set every dimension to 0, the prior's mean" if snap.variational else
                                    "Set every dimension to the mean of the codes (0 until the data are encoded)")
        self.random_button.setToolTip(
            "A random code from the prior N(0, I) (seeded)" if snap.variational else
            "A random code from a Gaussian fitted to the codes (this kind has no prior; seeded)")

    def _update_range_note(self) -> None:
        if self.snapshot is None:
            return
        if self.snapshot.variational:
            text = f"Sliders span ±{SLIDER_SPAN:g} prior standard deviations."
        elif self.stats is not None:
            text = f"Sliders span ±{SLIDER_SPAN:g} standard deviations of the codes around their mean."
        else:
            text = f"Sliders span ±{SLIDER_SPAN:g} until the data are encoded (then the codes' own spread)."
        order = "ordered by KL (most informative first)" if self.stats is not None and self.stats.kl is not None \
            else "ordered by variance" if self.stats is not None else "in index order until the data are encoded"
        self.range_note.setText(f"{self.snapshot.latent_dim} dimensions, {order}. {text}")

    # --- sliders ------------------------------------------------------------------------------
    def _build_rows(self) -> None:
        for row in self.rows:
            for w in row.widgets():
                self.slider_grid.removeWidget(w)
                w.deleteLater()
        self.rows = [_DimensionRow(d, self._on_slider_moved) for d in range(len(self.z))]
        self._place_rows()

    def _place_rows(self) -> None:
        """Lay the rows out most informative first and refresh labels, ranges and the inactive marks."""
        k = len(self.rows)
        self.centre, self.scale = code_scale(k, self.snapshot.variational, self.stats)
        order = self.stats.order if self.stats is not None and len(self.stats.order) == k else np.arange(k)
        for row in self.rows:
            for w in row.widgets():
                self.slider_grid.removeWidget(w)
        for position, d in enumerate(order):
            row = self.rows[int(d)]
            for column, w in enumerate(row.widgets()):
                self.slider_grid.addWidget(w, position, column)
            self._label_row(row)

    def _label_row(self, row: _DimensionRow) -> None:
        d, stats = row.dim, self.stats
        row.label.setText(dimension_label(d, stats))
        inactive = stats is not None and not bool(stats.active[d])
        grey = "color: gray;" if inactive else ""
        row.label.setStyleSheet(grey)
        row.tag.setText("inactive" if inactive else "")
        row.tag.setStyleSheet("color: gray; font-style: italic;")
        if inactive:
            tip = INACTIVE_TIP.format(var=float(stats.variance[d]), threshold=ACTIVE_THRESHOLD)
        elif stats is not None:
            kl = f"KL {stats.kl[d]:.3f} nats, " if stats.kl is not None else ""
            tip = (f"z{d}: {kl}variance of its mean code {stats.variance[d]:.3g} over the data. "
                   f"Drag to move it; the decoded output follows.")
        else:
            tip = f"z{d}: drag to move it; the decoded output follows."
        for w in row.widgets():
            w.setToolTip(tip)

    def _position_of(self, dim: int, value: float) -> int:
        lo = self.centre[dim] - SLIDER_SPAN * self.scale[dim]
        fraction = (value - lo) / (2 * SLIDER_SPAN * self.scale[dim])
        return int(round(min(max(fraction, 0.0), 1.0) * SLIDER_STEPS))

    def _value_at(self, dim: int, position: int) -> float:
        lo = self.centre[dim] - SLIDER_SPAN * self.scale[dim]
        return float(lo + 2 * SLIDER_SPAN * self.scale[dim] * position / SLIDER_STEPS)

    def _sync_sliders(self) -> None:
        """Move every slider to the code's value without triggering a redraw per slider."""
        for row in self.rows:
            d = row.dim
            row.slider.blockSignals(True)
            row.slider.setValue(self._position_of(d, float(self.z[d])))
            row.slider.blockSignals(False)
            row.value.setText(f"{self.z[d]:+.2f}")

    def _on_slider_moved(self, dim: int, position: int) -> None:
        value = self._value_at(dim, position)
        self.z[dim] = value
        self.rows[dim].value.setText(f"{value:+.2f}")
        self.redraw()

    def set_dimension_value(self, dim: int, value: float) -> None:
        """Set one dimension (the slider follows without echoing) and redraw the decoded output."""
        self.z[dim] = value
        row = self.rows[dim]
        row.slider.blockSignals(True)
        row.slider.setValue(self._position_of(dim, value))
        row.slider.blockSignals(False)
        row.value.setText(f"{value:+.2f}")
        self.redraw()

    def set_code(self, z: np.ndarray, as_start: bool = True) -> None:
        """Replace the whole code (sliders follow); as_start makes it what Reset returns to."""
        self.z = np.asarray(z, np.float32).reshape(len(self.rows)).copy()
        self._started_at_centre = False
        if as_start:
            self.base = self.z.copy()
            self._update_reference()
        self._sync_sliders()
        self.redraw()

    # --- starting points ----------------------------------------------------------------------
    def start_from_centre(self, redraw: bool = True) -> None:
        """Zero for VAE kinds (the prior's mean); the codes' mean for deterministic kinds."""
        if self.snapshot is None:
            return
        centre, _ = code_scale(len(self.rows), self.snapshot.variational, self.stats)
        if redraw:
            self.set_code(centre)
        else:
            self.z = centre.copy()
            self.base = centre.copy()
            self._sync_sliders()
        self._started_at_centre = True

    def start_from_selection(self) -> bool:
        """The code of the first selected sample, or of the hovered one; False when there is none."""
        positions = self.state.selection
        position = int(positions[0]) if len(positions) else self.state.hover
        code = self.code_of(position) if position >= 0 else None
        if code is None:
            self.state.info("Select a sample in a projection first, then start the sliders from it.")
            return False
        self.set_code(code)
        return True

    def start_from_random(self, seed: int | None = None) -> None:
        """A seeded random code (prior sample for VAE kinds); the seed box then moves on by one."""
        if self.snapshot is None:
            return
        seed = self.seed_box.value() if seed is None else int(seed)
        self.set_code(random_code(self.centre, self.scale, seed))
        self.seed_box.setValue(seed + 1)

    def reset(self) -> None:
        if len(self.base) == len(self.rows):
            self.set_code(self.base)

    def code_of(self, position: int) -> np.ndarray | None:
        """The latent code of a sample (a position into view_idx): the shared encoding when it is there,
        otherwise encoded now with the current model."""
        encoded = self._encoded()
        if encoded is not None and 0 <= position < len(encoded.codes):
            return encoded.codes[position].astype(np.float32).copy()
        x = self.state.sample(position)
        if x is None or self.snapshot is None or tuple(x.shape) != tuple(self.snapshot.model.input_shape):
            return None
        return self.snapshot.encode_all(x[None]).codes[0]

    # --- the hot path -------------------------------------------------------------------------
    def redraw(self) -> None:
        """Decode the sliders' code and show it; then let the traversal grid follow after a pause."""
        if self.snapshot is None or len(self.z) == 0:
            return
        out = self.snapshot.decode_one(self.z)
        self.decoded_output = out
        if self._is_image:
            self.live_image.show_display(display_image(out))
        else:
            self.live_lines.set_curve_values(0, 1, out)
        self._dirty["traversal"] = True
        self._grid_timer.start()
        self.decoded.emit()

    def _update_reference(self) -> None:
        """Lines only: the starting code's output stays on the plot, dashed, to compare the drag against."""
        if self._is_image or self.snapshot is None:
            return
        start = self.snapshot.decode_one(self.base if len(self.base) == len(self.z) else self.z)
        self.live_lines.set_plots([PlotSpec("decoded output", [Curve(start, dashed=True), Curve(start)])], columns=1)

    # --- grids --------------------------------------------------------------------------------
    def _mark_dirty(self, name: str, debounce: bool) -> None:
        self._dirty[name] = True
        if debounce:
            self._grid_timer.start()
        else:
            self._refresh_current_tab()

    def _refresh_current_tab(self) -> None:
        if self.snapshot is None:
            return
        name = TABS[self.tabs.currentIndex()]
        if self._dirty[name]:
            {"traversal": self.update_traversal_grid, "prior": self.update_prior_grid,
             "interpolation": self.update_interpolation}[name]()

    def row_labels(self, dims) -> list[str]:
        labels = []
        for d in dims:
            text = dimension_label(int(d), self.stats)
            if self.stats is not None and not bool(self.stats.active[int(d)]):
                text += " (inactive)"
            labels.append(text)
        return labels

    def update_traversal_grid(self) -> None:
        """Each of the (up to 16) most informative dimensions across the span, from the sliders' code."""
        self._dirty["traversal"] = False
        steps, span = self.steps_box.value(), self.span_box.value()
        grid = self.snapshot.traversal(self.z, steps, span, self._encoded(), max_dims=MAX_GRID_DIMS)
        self.traversal = grid
        labels = self.row_labels(grid.dims)
        unit = "" if self.snapshot.variational else "σ"
        offsets = np.linspace(-span, span, steps)
        if self._is_image:
            cols = [f"{o:+.2f}".rstrip("0").rstrip(".") + unit if abs(o) > 1e-9 else "0" for o in offsets]
            tips = [self.rows[int(d)].label.toolTip() for d in grid.dims]
            self.traversal_image.set_grid(
                grid.images, row_labels=labels, col_labels=cols, row_tooltips=tips,
                cell_tooltip=lambda r, c: (f"z{int(grid.dims[r])} = {grid.values[r, c]:+.2f}; "
                                           f"every other dimension as on the sliders"))
            self.traversal_image.set_caption(f"{len(grid.dims)} dimensions × {steps} values")
        else:
            self._draw_traversal_lines(grid, labels, f"±{span:g}{unit}")
        self.gridUpdated.emit("traversal")

    def _draw_traversal_lines(self, grid, labels: list[str], span_text: str) -> None:
        """Small multiples: one plot per dimension with one line per step, coloured low to high (one
        plot per dimension and channel for multi-channel sequences, for the first few of each)."""
        channels = grid.images.shape[-1] if grid.images.ndim == 4 else 1   # (D, S, T, C) or (D, S, F)
        dims = len(grid.dims) if channels == 1 else min(len(grid.dims), MAX_LINE_DIMS)
        specs = [spec for r in range(dims) for spec in family_plots(labels[r], grid.images[r], MAX_LINE_CHANNELS)]
        shown_channels = min(channels, MAX_LINE_CHANNELS)
        note = "" if channels == 1 else f"; the first {dims} dimensions × {shown_channels} channels"
        self.traversal_lines.set_plots(specs, columns=4 if channels == 1 else shown_channels)
        self.traversal_lines.set_caption(f"Each plot moves one dimension over {span_text}: blue = low values, "
                                         f"red = high{note}")

    def resample_prior(self) -> None:
        self.prior_seed += 1
        self.update_prior_grid()

    def update_prior_grid(self) -> None:
        self._dirty["prior"] = False
        if not has_prior(self.snapshot):
            widget = self.prior_image if self._is_image else self.prior_lines
            widget.show_message(NO_PRIOR_TIP.format(kind=self.snapshot.info.get("kind", "This model")))
            self.prior = None
            self.gridUpdated.emit("prior")
            return
        seed = self.prior_seed
        if self._is_image:
            samples = self.snapshot.prior_samples(PRIOR_SIDE * PRIOR_SIDE, seed)
            self.prior_image.set_grid(samples.reshape(PRIOR_SIDE, PRIOR_SIDE, *samples.shape[1:]),
                                      cell_tooltip=lambda r, c: f"prior sample {r * PRIOR_SIDE + c + 1} (seed {seed})")
            self.prior_image.set_caption(f"{PRIOR_SIDE * PRIOR_SIDE} codes drawn from N(0, I), decoded (seed {seed})")
        else:
            samples = self.snapshot.prior_samples(PRIOR_LINE_PLOTS, seed)
            self.prior_lines.set_plots([PlotSpec(f"sample {i + 1}", [Curve(s)]) for i, s in enumerate(samples)],
                                       columns=4)
            self.prior_lines.set_caption(f"{PRIOR_LINE_PLOTS} codes drawn from N(0, I), decoded (seed {seed})")
        self.prior = samples
        self.gridUpdated.emit("prior")

    def update_interpolation(self) -> None:
        self._dirty["interpolation"] = False
        widget = self.interpolation_image if self._is_image else self.interpolation_lines
        selection = self.state.selection
        codes = [self.code_of(int(p)) for p in selection[:2]] if len(selection) >= 2 else []
        if len(codes) < 2 or any(c is None for c in codes):
            self.interpolation = None
            widget.show_message("Select two samples in a projection to interpolate between their codes.")
            widget.set_caption("")   # the last pair's names (perhaps of other data) must not stay
            self.gridUpdated.emit("interpolation")
            return
        images = self.snapshot.interpolate(codes[0], codes[1], INTERPOLATION_STEPS)
        self.interpolation = images
        names = [sample_name(self.state, int(self.state.view_idx[p])) for p in selection[:2]]
        ts = np.linspace(0.0, 1.0, INTERPOLATION_STEPS)
        if self._is_image:
            cols = [names[0]] + [""] * (INTERPOLATION_STEPS - 2) + [names[1]]
            widget.set_grid(images[None], col_labels=cols,
                            cell_tooltip=lambda r, c: f"t = {ts[c]:.2f}: (1 − t)·z_A + t·z_B, decoded")
        else:
            title = f"{names[0]} → {names[1]}" if images.ndim == 2 or images.shape[-1] == 1 else ""
            widget.set_plots(family_plots(title, images, MAX_LINE_CHANNELS), columns=1)
        colours = "" if self._is_image else "; blue = A, red = B"
        widget.set_caption(f"From {names[0]} (A) to {names[1]} (B) in {INTERPOLATION_STEPS} steps, on the straight "
                           f"line between their codes{colours}")
        self.gridUpdated.emit("interpolation")
