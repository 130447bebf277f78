"""Exporting what the window shows: plots to PNG/SVG (pyqtgraph's exporters), image grids to PNG
at a chosen scale, tables to CSV. Every write is atomic (temporary file, then rename), and the
last folder used is remembered across sessions (QSettings)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QWidget

from app.core.atomic import atomic_write_bytes, atomic_write_text
from app.core.imaging import array_png

SETTINGS_KEY = "export/last_folder"


def last_folder() -> str:
    return str(QSettings().value(SETTINGS_KEY, str(Path.home())))


def remember_folder(path: str) -> None:
    QSettings().setValue(SETTINGS_KEY, str(Path(path).parent))


def ask_save_path(parent: QWidget | None, title: str, default_name: str, filters: str) -> str | None:
    """File dialog starting in the last folder used; returns None when cancelled."""
    path, _ = QFileDialog.getSaveFileName(parent, title, str(Path(last_folder()) / default_name), filters)
    if not path:
        return None
    remember_folder(path)
    return path


def export_plot(item, path: str, width: int | None = None) -> None:
    """A pyqtgraph PlotItem/GraphicsScene to PNG or SVG by the file's extension, atomically.
    Raises OSError on a write failure (the caller words it); the previous file stays intact."""
    import pyqtgraph.exporters as exporters

    suffix = Path(path).suffix.lower()
    if suffix not in (".png", ".svg"):
        raise ValueError(f"{path}: export as .png or .svg")
    if suffix == ".svg":
        _tolerate_svg_closepath()
    exporter = exporters.SVGExporter(item) if suffix == ".svg" else exporters.ImageExporter(item)
    if suffix == ".png" and width:
        exporter.parameters()["width"] = int(width)
    # pyqtgraph writes to a path directly; give it a temporary file in the target folder, then
    # rename, so a failed export never leaves a truncated file where a good one was.
    folder = Path(path).parent
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        exporter.export(tmp)
        data = Path(tmp).read_bytes()
        if not data:
            raise OSError(f"the exporter wrote nothing to {path}")
        atomic_write_bytes(path, data)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


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


def export_image(mosaic: np.ndarray, path: str, scale: int = 4) -> None:
    """A display mosaic ((H, W) or (H, W, 3) in [0, 1]) to PNG, enlarged `scale` times."""
    atomic_write_bytes(path, array_png(mosaic, scale=max(1, int(scale))))


def export_text(text: str, path: str) -> None:
    atomic_write_text(path, text)


def export_toolbar(owner, *, scale: int, scale_tip: str, png_tip: str, svg_tip: str) -> QWidget:
    """The caption + Scale + PNG… + SVG… row that image grids and line plots share. Sets
    owner.caption, owner.scale_box, owner.png_button and owner.svg_button, and connects the buttons
    to owner._ask_export_png / owner._ask_export_svg."""
    from PySide6.QtWidgets import QHBoxLayout, QLabel, QSpinBox, QToolButton

    owner.caption = QLabel()
    owner.caption.setWordWrap(True)
    owner.scale_box = QSpinBox()
    owner.scale_box.setRange(1, 16)
    owner.scale_box.setValue(scale)
    owner.scale_box.setPrefix("×")
    owner.scale_box.setToolTip(scale_tip)
    owner.png_button = QToolButton(text="PNG…")
    owner.png_button.setToolTip(png_tip)
    owner.png_button.clicked.connect(owner._ask_export_png)
    owner.svg_button = QToolButton(text="SVG…")
    owner.svg_button.setToolTip(svg_tip)
    owner.svg_button.clicked.connect(owner._ask_export_svg)
    bar = QHBoxLayout()
    bar.setContentsMargins(0, 0, 0, 0)
    bar.addWidget(owner.caption, 1)
    for widget in (QLabel("Scale"), owner.scale_box, owner.png_button, owner.svg_button):
        bar.addWidget(widget)
    bar_widget = QWidget()
    bar_widget.setLayout(bar)
    return bar_widget


def message_label():
    """The centred, wrapped label a view shows instead of its plot when it has nothing to show."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    label.setAlignment(Qt.AlignCenter)
    label.setWordWrap(True)
    label.setMargin(12)
    return label
