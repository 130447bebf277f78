"""One panel of the projection view: a titled scatter, its progress while a projection runs, a
Cancel button, the error or note for this panel alone, and its PNG/SVG export."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QMenu, QProgressBar, QPushButton, QToolButton, QVBoxLayout,
                               QWidget)

from app.gui.export import ask_save_path, export_plot
from app.gui.scatter import FastScatter


class ProjectionPanel(QWidget):
    cancelRequested = Signal(str)      # method
    recomputeRequested = Signal(str)   # method
    exportFailed = Signal(str)         # readable message
    exported = Signal(str)             # the file written

    def __init__(self, method: str, title: str, tooltip: str = "", parent=None):
        super().__init__(parent)
        self.method = method
        self.title = title
        self.status = "empty"          # empty | running | done | error | cancelled | note
        self.scatter = FastScatter()
        self.scatter.setBackground("w")
        self.scatter.setMinimumSize(160, 160)
        self.scatter.getPlotItem().hideAxis("left")
        self.scatter.getPlotItem().hideAxis("bottom")
        self.scatter.setToolTip(tooltip)
        self.set_title(title)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        self.progress.setMaximumHeight(16)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(f"Stop computing the {title} projection")
        self.cancel_button.clicked.connect(lambda: self.cancelRequested.emit(self.method))
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        # Hidden, the line keeps its height: a finished map would otherwise resize its plot in the
        # same frame as its 10,000 points are first drawn (a relayout and a full re-render).
        policy = self.message.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.message.setSizePolicy(policy)

        self.menu_button = QToolButton()
        self.menu_button.setText("⋯")
        self.menu_button.setToolTip(f"Export the {title} panel or recompute it")
        self.menu_button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.menu_button)
        self.export_png_action = menu.addAction("Export PNG…", lambda: self._ask_export(".png"))
        self.export_svg_action = menu.addAction("Export SVG…", lambda: self._ask_export(".svg"))
        menu.addSeparator()
        self.recompute_action = menu.addAction(f"Recompute {title}", lambda: self.recomputeRequested.emit(self.method))
        self.menu_button.setMenu(menu)

        # Below the plot: what is happening (progress text, an error, a note) on its own line, so
        # a long message wraps instead of being cut; then the bar, Cancel and the panel's menu.
        status_row = QHBoxLayout()
        status_row.setContentsMargins(0, 0, 0, 0)
        status_row.addWidget(self.progress, 1)
        status_row.addWidget(self.cancel_button)
        status_row.addStretch(0)
        status_row.addWidget(self.menu_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.setSpacing(2)
        layout.addWidget(self.scatter, 1)
        layout.addWidget(self.message)
        layout.addLayout(status_row)
        self.set_idle("")

    # --- what the panel shows -----------------------------------------------------------------
    def set_title(self, text: str) -> None:
        self.scatter.getPlotItem().setTitle(text, size="9pt")

    def set_running(self, fraction: float, text: str = "") -> None:
        self.status = "running"
        self.progress.setValue(int(round(max(0.0, min(1.0, fraction)) * 100)))
        label = text or "computing…"
        if self.title not in label:   # the service's texts mostly name their method already
            label = f"{self.title}: {label}"
        self.progress.setFormat(f"{self.title} %p %")
        self.progress.show()
        self.cancel_button.show()
        self.message.setText(label)
        self.message.setStyleSheet("color: palette(dark);")
        self.message.show()
        self.set_title(f"{self.title} · computing…")

    def set_idle(self, message: str, status: str = "empty", error: bool = False) -> None:
        """No job running; `message` (may be empty) explains why the panel looks the way it does."""
        self.status = status
        self.progress.hide()
        self.cancel_button.hide()
        self.message.setText(message)
        self.message.setStyleSheet("color: #b00020;" if error else "color: palette(mid);")
        self.message.setVisible(bool(message))

    def show_result(self, seconds: float | None, trust: float | None = None) -> None:
        self.set_idle("", status="done")
        parts = [self.title]
        if seconds is not None:
            parts.append(f"{seconds:.2f} s")
        if trust is not None:
            parts.append(f"trustworthiness {trust:.3f}")
        self.set_title(" · ".join(parts))

    def show_error(self, message: str) -> None:
        self.scatter.clear_points()
        self.set_title(f"{self.title} · failed")
        self.set_idle(message, status="error", error=True)
        self.message.setToolTip(message)

    # --- export -------------------------------------------------------------------------------
    def export(self, path: str) -> None:
        """Write this panel's plot (title, points, overlays) to a .png or .svg figure at the size
        chosen on export. The colour key follows "Legend in plots": when it is on, the figure
        carries it in a column beside the points (app/gui/figure.py), never over them."""
        legend = self.scatter.legend
        entries = [(sample.item, label.text) for sample, label in legend.items] \
            if legend is not None and legend.isVisible() else []
        export_plot(self.scatter.getPlotItem(), path, legend=entries)

    def _ask_export(self, suffix: str) -> None:
        kind = suffix[1:].upper()
        path = ask_save_path(self, f"Export {self.title} as {kind}", f"projection_{self.method}{suffix}",
                             f"{kind} files (*{suffix})")
        if not path:
            return
        try:
            self.export(path)
        except (OSError, ValueError) as exc:
            self.exportFailed.emit(f"Could not export the {self.title} plot to {path}: {exc}")
            return
        self.exported.emit(path)
