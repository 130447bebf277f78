"""Exporting what the window shows: plots to PNG/SVG (pyqtgraph's exporters), image grids to PNG
at a chosen scale, tables to CSV. Every write is atomic (temporary file, then rename), and the
last folder used is remembered across sessions (QSettings)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QWidget

from app.core.atomic import atomic_write_bytes, atomic_write_text
from app.core.imaging import array_png

SETTINGS_KEY = "export/last_folder"


def last_folder() -> str:
    return str(QSettings().value(SETTINGS_KEY, str(Path.home())))


def remember_folder(path: str) -> None:
    QSettings().setValue(SETTINGS_KEY, str(Path(path).parent))


DEFAULT_WIDTH_PX = 1600     # a paper figure: 1600 px at 300 dpi is 13.5 cm wide
DEFAULT_DPI = 300
WIDTH_KEY, DPI_KEY = "export/width_px", "export/dpi"


@dataclass(frozen=True)
class ExportOptions:
    """How large an exported figure is: pixels across (PNG) and the resolution it prints at (PNG
    metadata; the SVG's physical width)."""
    width_px: int = DEFAULT_WIDTH_PX
    dpi: int = DEFAULT_DPI

    @property
    def width_cm(self) -> float:
        return self.width_px / self.dpi * 2.54


def export_options() -> ExportOptions:
    """The size chosen last in an export dialog (1600 px at 300 dpi until then)."""
    settings = QSettings()

    def number(key: str, default: int, lo: int, hi: int) -> int:
        try:
            return int(min(max(int(settings.value(key, default)), lo), hi))
        except (TypeError, ValueError):
            return default

    return ExportOptions(number(WIDTH_KEY, DEFAULT_WIDTH_PX, 200, 8000), number(DPI_KEY, DEFAULT_DPI, 50, 1200))


def remember_export_options(options: ExportOptions) -> None:
    settings = QSettings()
    settings.setValue(WIDTH_KEY, int(options.width_px))
    settings.setValue(DPI_KEY, int(options.dpi))


def size_row(options: ExportOptions) -> tuple[QWidget, Callable[[], ExportOptions]]:
    """'Figure width [1600] px at [300] dpi = 13.5 cm' for a save dialog; returns the row and a reader."""
    from PySide6.QtWidgets import QHBoxLayout, QLabel, QSpinBox

    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    width, dpi, note = QSpinBox(), QSpinBox(), QLabel()
    width.setRange(200, 8000)
    width.setSingleStep(100)
    width.setValue(options.width_px)
    width.setSuffix(" px")
    dpi.setRange(50, 1200)
    dpi.setSingleStep(50)
    dpi.setValue(options.dpi)
    dpi.setSuffix(" dpi")
    width.setToolTip("Pixels across the exported PNG (an SVG is drawn at the same proportions)")
    dpi.setToolTip("The resolution the figure prints at: text keeps its on-screen point size at this DPI")

    def read() -> ExportOptions:
        return ExportOptions(width.value(), dpi.value())

    def update_note(*_args) -> None:
        note.setText(f"= {read().width_cm:.1f} cm wide")

    width.valueChanged.connect(update_note)
    dpi.valueChanged.connect(update_note)
    update_note()
    for w in (QLabel("Figure width"), width, QLabel("at"), dpi, note):
        layout.addWidget(w)
    layout.addStretch(1)
    return row, read


def ask_save_path(parent: QWidget | None, title: str, default_name: str, filters: str) -> str | None:
    """File dialog starting in the last folder used; returns None when cancelled. For figures
    (PNG/SVG) the dialog also asks the figure's width and DPI, remembered for the next export."""
    from PySide6.QtWidgets import QGridLayout

    figure = any(ext in filters.lower() for ext in ("*.png", "*.svg"))
    if not figure:
        path, _ = QFileDialog.getSaveFileName(parent, title, str(Path(last_folder()) / default_name), filters)
    else:
        # Qt's own dialog: the platform's native one cannot take the size fields.
        dialog = QFileDialog(parent, title, str(Path(last_folder()) / default_name), filters)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        row, read = size_row(export_options())
        grid = dialog.layout()
        if isinstance(grid, QGridLayout):
            grid.addWidget(row, grid.rowCount(), 0, 1, grid.columnCount())
        path = dialog.selectedFiles()[0] if dialog.exec() and dialog.selectedFiles() else ""
        if path:
            remember_export_options(read())
    if not path:
        return None
    remember_folder(path)
    return path


def export_plot(item, path: str, width: int | None = None, legend: list | None = None,
                options: ExportOptions | None = None) -> None:
    """A pyqtgraph PlotItem (or a GraphicsScene of several) to PNG or SVG by the file's extension,
    atomically, as a figure: laid out anew at the chosen size with the legend beside the data
    (app/gui/figure.py). `legend`: None for the plot's own legend or named items, [] for none, or
    (item, text) entries. `width` overrides the chosen pixel width. Raises OSError on a write
    failure (the caller words it); the previous file stays intact."""
    from app.gui.figure import PlotSource, plot_sources

    options = options or export_options()
    if width:
        options = ExportOptions(int(width), options.dpi)
    sources = [PlotSource(item, legend=legend)] if isinstance(item, pg.PlotItem) else plot_sources(item)
    export_figure(sources, path, options, legend=legend != [])


def export_figure(sources, path: str, options: ExportOptions, legend: bool = True) -> None:
    """PlotSources as one figure (app/gui/figure.py) written to .png or .svg."""
    import pyqtgraph.exporters as exporters

    from app.gui.figure import build_figure, data_inside_view

    suffix = Path(path).suffix.lower()
    if suffix not in (".png", ".svg"):
        raise ValueError(f"{path}: export as .png or .svg")
    if not sources:
        raise ValueError("there is no plot to export")
    figure = build_figure(sources, options.width_px, options.dpi, legend)
    try:
        if suffix == ".svg":
            _tolerate_svg_closepath()
            data = bytes(exporters.SVGExporter(figure.ci).export(toBytes=True))
            data = svg_for_every_renderer(data, options, clip=not data_inside_view(figure))
        else:
            exporter = exporters.ImageExporter(figure.ci)
            exporter.parameters()["width"] = int(options.width_px)
            exporter.parameters()["background"] = pg.mkColor("w")
            data = png_bytes(exporter.export(toBytes=True), options.dpi)
    finally:
        figure.close()
        figure.deleteLater()
    if not data:
        raise OSError(f"the exporter wrote nothing to {path}")
    atomic_write_bytes(path, data)


def png_bytes(image, dpi: int) -> bytes:
    """A QImage as PNG bytes that record `dpi` (pHYs), so a word processor sizes it right."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    dots_per_metre = int(round(dpi / 0.0254))
    image.setDotsPerMeterX(dots_per_metre)
    image.setDotsPerMeterY(dots_per_metre)
    buffer_bytes = QByteArray()
    buffer = QBuffer(buffer_bytes)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(buffer_bytes.data())


def svg_for_every_renderer(data: bytes, options: ExportOptions, clip: bool) -> bytes:
    """pyqtgraph's SVG, readable by more renderers: a physical width and height (from the chosen
    width and DPI) on the root element, and, when no data lies outside the axes, no clip paths:
    ImageMagick 6 draws nothing inside a clip path, so the loss-curve SVG showed only its grid."""
    text = data.decode("utf-8")
    match = re.search(r'viewBox\s*=\s*"([\d.\s-]+)"', text)
    if match:
        _, _, w, h = (float(v) for v in match.group(1).split())
        inches = options.width_px / options.dpi
        size = f'width="{inches:.3f}in" height="{inches * h / max(w, 1e-9):.3f}in" viewBox="{match.group(1)}"'
        text = text[:match.start()] + size + text[match.end():]
    if not clip:
        text = re.sub(r"<clipPath\b.*?</clipPath>", "", text, flags=re.S)
        text = re.sub(r'\sclip-path="url\(#[^)]*\)"', "", text)
    return text.encode("utf-8")


def _tolerate_svg_closepath() -> None:
    """pyqtgraph 0.14's SVG exporter rewrites path data token by token and expects every token to
    be an 'x,y' pair, but Qt 6's SVG generator closes paths with a separate 'Z', so every SVG export
    of a plot failed with "not enough values to unpack" (pyqtgraph issue #3485). Take the lone
    command tokens out before pyqtgraph's rewrite and put them back at the same places after it."""
    import importlib

    module = importlib.import_module("pyqtgraph.exporters.SVGExporter")
    original = module.correctCoordinates
    if getattr(original, "tolerates_closepath", False):
        return

    def correct_coordinates(node, defs, item, options):
        commands = []
        for path in node.getElementsByTagName("path"):
            tokens = path.getAttribute("d").split()
            lone = [(i, t) for i, t in enumerate(tokens) if "," not in t]
            if lone:
                path.setAttribute("d", " ".join(t for t in tokens if "," in t))
                commands.append((path, lone))
        original(node, defs, item, options)
        for path, lone in commands:
            tokens = path.getAttribute("d").split()
            for i, t in lone:
                tokens.insert(i, t)
            path.setAttribute("d", " ".join(tokens))

    correct_coordinates.tolerates_closepath = True
    module.correctCoordinates = correct_coordinates


def fit_scale(mosaic_width: int, options: ExportOptions | None = None) -> int:
    """The whole-number enlargement that brings a mosaic closest to the chosen figure width
    (pixels stay sharp squares)."""
    options = options or export_options()
    return max(1, int(round(options.width_px / max(int(mosaic_width), 1))))


def export_image(mosaic: np.ndarray, path: str, scale: int | None = 4, dpi: int | None = None) -> None:
    """A display mosaic ((H, W) or (H, W, 3) in [0, 1]) to PNG, enlarged `scale` times (None: to the
    chosen figure width), recording the chosen DPI."""
    from PIL import Image

    options = export_options()
    scale = fit_scale(mosaic.shape[1], options) if not scale else max(1, int(scale))
    with Image.open(io.BytesIO(array_png(mosaic, scale=scale))) as image:
        out = io.BytesIO()
        image.save(out, format="PNG", dpi=(dpi or options.dpi,) * 2)
    atomic_write_bytes(path, out.getvalue())


def export_text(text: str, path: str) -> None:
    atomic_write_text(path, text)


def export_toolbar(owner, *, scale: int | None, scale_tip: str, png_tip: str, svg_tip: str) -> QWidget:
    """The caption + Scale + PNG… + SVG… row that image grids and line plots share. Sets
    owner.caption, owner.scale_box (None without a scale: the save dialog asks the figure's width
    and DPI), owner.png_button and owner.svg_button, and connects the buttons to
    owner._ask_export_png / owner._ask_export_svg. Scale 0 ("fit") enlarges to the chosen width."""
    from PySide6.QtWidgets import QHBoxLayout, QLabel, QSpinBox, QToolButton

    owner.caption = QLabel()
    owner.caption.setWordWrap(True)
    owner.caption.setMinimumWidth(60)   # wraps rather than widening its dock
    owner.scale_box = None
    extra: list[QWidget] = []
    if scale is not None:
        owner.scale_box = QSpinBox()
        owner.scale_box.setRange(0, 16)
        owner.scale_box.setSpecialValueText("fit")
        owner.scale_box.setValue(scale)
        owner.scale_box.setPrefix("×")
        owner.scale_box.setToolTip(scale_tip)
        extra = [QLabel("Scale"), owner.scale_box]
    owner.png_button = QToolButton(text="PNG…")
    owner.png_button.setToolTip(png_tip)
    owner.png_button.clicked.connect(owner._ask_export_png)
    owner.svg_button = QToolButton(text="SVG…")
    owner.svg_button.setToolTip(svg_tip)
    owner.svg_button.clicked.connect(owner._ask_export_svg)
    bar = QHBoxLayout()
    bar.setContentsMargins(0, 0, 0, 0)
    bar.addWidget(owner.caption, 1)
    for widget in (*extra, owner.png_button, owner.svg_button):
        bar.addWidget(widget)
    bar_widget = QWidget()
    bar_widget.setLayout(bar)
    return bar_widget


class FigureExports:
    """The export buttons' actions of a figure widget with `export_name`, `export_png(path)`,
    `export_svg(path)` and the `exported` / `exportFailed` signals (ImageGrid, SignalPlot)."""

    def _ask_export_png(self) -> None:
        path = ask_save_path(self, "Export PNG", self.export_name, "PNG image (*.png)")
        if path:
            self._export(self.export_png, path)

    def _ask_export_svg(self) -> None:
        path = ask_save_path(self, "Export SVG", self.export_name.rsplit(".", 1)[0] + ".svg", "SVG figure (*.svg)")
        if path:
            self._export(self.export_svg, path)

    def _export(self, write, path: str) -> None:
        try:
            write(path)
        except (OSError, ValueError) as exc:
            self.exportFailed.emit(f"Could not export {path}: {exc}")
            return
        self.exported.emit(path)


def stack_under_toolbar(owner, bar_widget, message, graphics, toolbar: bool):
    """A figure view's layout: its export toolbar (shown when `toolbar`) above a stack of the
    message label and the graphics; returns the stack (the view switches between the two)."""
    from PySide6.QtWidgets import QStackedWidget, QVBoxLayout

    stack = QStackedWidget()
    stack.addWidget(message)
    stack.addWidget(graphics)
    layout = QVBoxLayout(owner)
    layout.setContentsMargins(0, 0, 0, 0)
    bar_widget.setVisible(toolbar)
    layout.addWidget(bar_widget)
    layout.addWidget(stack, 1)
    return stack


def message_label():
    """The centred, wrapped label a view shows instead of its plot when it has nothing to show."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    label.setAlignment(Qt.AlignCenter)
    label.setWordWrap(True)
    label.setMargin(12)
    return label
