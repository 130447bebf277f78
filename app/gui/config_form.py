"""A form generated from a config dataclass (app/core/config.py), one widget per field.

The field metadata decides the widget, so the form, the CLI flags and model.json never drift:
choices -> QComboBox, int -> QSpinBox, float -> a spin box that shows numbers like 1e-3 as typed,
tuple -> QLineEdit ("400,200"), other str -> QLineEdit, bool -> QCheckBox. Fields marked
advanced=True go into a collapsed "Advanced" section; each field's help text is its tooltip.
(The section is a small class here rather than superqt's QCollapsible: importing superqt pulls in
its qtpy layer, about 0.3 s of the window's two-second start-up budget.)

    form = ConfigForm(ModelConfig)
    cfg = form.values()          # a validated ModelConfig, or ConfigError naming the field
    form.set_values(other_cfg)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel,
                               QLineEdit, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from app.core.config import applies, parse_int_tuple, validate
from app.core.errors import ConfigError

INT_LIMIT = 2**31 - 1   # QSpinBox holds a C int

# Labels a person reads; any field not listed gets its name with spaces.
LABELS = {
    "kind": "Model kind", "latent_dim": "Latent size", "hidden": "Hidden layers", "loss": "Reconstruction loss",
    "beta": "Beta (KL weight)", "noise": "Noise", "noise_level": "Noise level", "sparsity": "Sparsity penalty",
    "sparsity_weight": "Sparsity weight", "sparsity_target": "Sparsity target", "channels": "Conv channels",
    "contractive_weight": "Contractive weight", "rnn_cell": "RNN cell", "rnn_hidden": "RNN hidden size",
    "adversarial_weight": "Adversarial weight", "epochs": "Epochs", "batch_size": "Batch size",
    "lr": "Learning rate", "weight_decay": "Weight decay", "l1_weight": "L1 weight", "grad_clip": "Gradient clip",
    "kl_anneal": "KL annealing", "kl_warmup_epochs": "KL warm-up epochs", "nan_policy": "On NaN loss",
    "val_fraction": "Validation fraction", "split_seed": "Split seed", "seed": "Seed", "device": "Device",
}


def field_label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def field_default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


class NumberSpinBox(QDoubleSpinBox):
    """A float spin box that shows 0.001 as "0.001" and 1e-06 as "1e-06" rather than a fixed number
    of decimals, accepts scientific notation as typed, and steps by one decimal digit of the
    current value (0.001 -> 0.0011), which suits learning rates and weights alike."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(12)   # storage precision; the text is formatted by textFromValue
        self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt override
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):  # noqa: D401 - Qt override
        stripped = text.strip()
        try:
            value = float(stripped)
        except ValueError:
            # A number part-way through typing ("1e", "-", "0.") is allowed to continue.
            ok = stripped == "" or all(c in "0123456789.eE+-" for c in stripped)
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid), text, pos
        if math.isfinite(value) and self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def fixup(self, text: str) -> str:  # noqa: D401 - Qt override
        return self.textFromValue(self.value())


class CollapsibleSection(QWidget):
    """A title button with an arrow that shows or hides the content below it (collapsed at first)."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.toggle_button = QToolButton()
        self.toggle_button.setText(title)
        self.toggle_button.setCheckable(True)
        self.toggle_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle_button.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle_button.setAutoRaise(True)
        self.toggle_button.toggled.connect(self.set_expanded)
        self.content = QWidget()
        self.content.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle_button)
        layout.addWidget(self.content)

    def set_expanded(self, expanded: bool) -> None:
        if self.toggle_button.isChecked() != expanded:
            self.toggle_button.setChecked(expanded)   # re-enters through toggled
            return
        self.toggle_button.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.content.setVisible(expanded)

    def is_expanded(self) -> bool:
        return self.toggle_button.isChecked()


class ConfigForm(QWidget):
    """Widgets for the fields of one config dataclass. `changed` fires on any edit."""

    changed = Signal()

    def __init__(self, cls: type, fields: Iterable[str] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.cls = cls
        all_fields = {f.name: f for f in dataclasses.fields(cls)}
        names = list(fields) if fields is not None else list(all_fields)
        unknown = [n for n in names if n not in all_fields]
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {unknown}")
        self._fields = {n: all_fields[n] for n in names}
        # Fields the form does not show keep the values last set (or the defaults), so values()
        # always returns a complete config.
        self._hidden_values: dict[str, Any] = {n: field_default(f) for n, f in all_fields.items() if n not in names}
        self.widgets: dict[str, QWidget] = {}
        self._labels: dict[str, QLabel] = {}
        self._shown: dict[str, bool] = {}

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._basic = QFormLayout()
        layout.addLayout(self._basic)
        self.advanced = None
        self._advanced_layout: QFormLayout | None = None
        for name, f in self._fields.items():
            target = self._basic
            if f.metadata.get("advanced"):
                target = self._advanced_form()
            widget = self._make_widget(f)
            label = QLabel(field_label(name))
            tooltip = f.metadata.get("help", "")
            label.setToolTip(tooltip)
            widget.setToolTip(tooltip)
            widget.setObjectName(f"field_{name}")
            target.addRow(label, widget)
            self.widgets[name] = widget
            self._labels[name] = label
            self._shown[name] = True
        self.set_values(cls())

    def _advanced_form(self) -> QFormLayout:
        if self._advanced_layout is None:
            self.advanced = CollapsibleSection("Advanced", self)
            self.advanced.toggle_button.setToolTip("Settings most runs leave at their defaults")
            self._advanced_layout = QFormLayout(self.advanced.content)
            self._advanced_layout.setContentsMargins(12, 0, 0, 0)
            self.layout().addWidget(self.advanced)
        return self._advanced_layout

    def _make_widget(self, f: dataclasses.Field) -> QWidget:
        meta = f.metadata
        default = field_default(f)
        if meta.get("choices"):
            widget = QComboBox()
            for choice in meta["choices"]:
                widget.addItem(str(choice), choice)
            widget.currentIndexChanged.connect(self.changed)
        elif isinstance(default, bool):
            widget = QCheckBox()
            widget.toggled.connect(self.changed)
        elif isinstance(default, int):
            widget = QSpinBox()
            widget.setRange(int(meta["min"]) if meta.get("min") is not None else -INT_LIMIT,
                            int(meta["max"]) if meta.get("max") is not None else INT_LIMIT)
            widget.setKeyboardTracking(False)
            widget.setGroupSeparatorShown(True)
            widget.valueChanged.connect(self.changed)
        elif isinstance(default, float):
            widget = NumberSpinBox()
            widget.setRange(float(meta["min"]) if meta.get("min") is not None else -1e12,
                            float(meta["max"]) if meta.get("max") is not None else 1e12)
            widget.valueChanged.connect(self.changed)
        else:  # tuples ("400,200") and free text
            widget = QLineEdit()
            if isinstance(default, tuple):
                widget.setPlaceholderText("e.g. 400,200")
            widget.textChanged.connect(self.changed)
        return widget

    # --- reading and writing ------------------------------------------------------------------
    def _read(self, name: str) -> Any:
        """One field's value from its widget; ConfigError when its text does not parse."""
        widget = self.widgets[name]
        if isinstance(widget, QComboBox):
            return widget.currentData()
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QSpinBox):
            return int(widget.value())
        if isinstance(widget, QDoubleSpinBox):
            return float(widget.value())
        if isinstance(field_default(self._fields[name]), tuple):
            return parse_int_tuple(widget.text(), field_label(name).lower())
        return widget.text()

    def values(self) -> Any:
        """The config the widgets describe; raises ConfigError naming the first bad field."""
        kwargs = dict(self._hidden_values)
        for name in self._fields:
            kwargs[name] = self._read(name)
        cfg = self.cls(**kwargs)
        validate(cfg)
        return cfg

    def _field_error(self, name: str) -> str | None:
        """Why this one field is invalid (checked against defaults elsewhere), or None."""
        try:
            cfg = self.cls(**{name: self._read(name)})
            validate(cfg)
        except ConfigError as exc:
            return str(exc)
        return None

    def error(self) -> str | None:
        """Why values() would fail, or None when the form is valid."""
        try:
            self.values()
        except ConfigError as exc:
            return str(exc)
        return None

    def set_values(self, cfg: Any) -> None:
        """Show `cfg` in the widgets, emitting `changed` once at the end rather than per field."""
        self.blockSignals(True)
        try:
            for f in dataclasses.fields(cfg):
                value = getattr(cfg, f.name)
                if f.name not in self.widgets:
                    self._hidden_values[f.name] = value
                    continue
                self._write(f.name, value)
        finally:
            self.blockSignals(False)
        self.changed.emit()

    def _write(self, name: str, value: Any) -> None:
        """Show `value` in one field's widget without emitting its change signal."""
        widget = self.widgets[name]
        widget.blockSignals(True)
        try:
            if isinstance(widget, QComboBox):
                index = widget.findData(value)
                if index < 0:
                    raise ConfigError(f"{name} = {value!r} is not one of the choices")
                widget.setCurrentIndex(index)
            elif isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                widget.setValue(value)
            elif isinstance(value, tuple):
                widget.setText(",".join(str(v) for v in value))
            else:
                widget.setText(str(value))
        finally:
            widget.blockSignals(False)

    def value(self, name: str) -> Any:
        """The current value of one field, without validating the others."""
        widget = self.widgets[name]
        if isinstance(widget, QComboBox):
            return widget.currentData()
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            return widget.value()
        return widget.text()

    # --- showing only what matters -------------------------------------------------------------
    def set_field_visible(self, name: str, visible: bool) -> None:
        if not visible and self._shown[name] and self._field_error(name):
            # A field the user can no longer see must not block Train: put back its default.
            self._write(name, field_default(self._fields[name]))
        self._shown[name] = visible
        self.widgets[name].setVisible(visible)
        self._labels[name].setVisible(visible)
        if self.advanced is not None:
            # An Advanced section with nothing relevant inside is noise; hide it too.
            advanced = [n for n, f in self._fields.items() if f.metadata.get("advanced")]
            self.advanced.setVisible(any(self._shown[n] for n in advanced))

    def show_for_kind(self, kind: str) -> None:
        """Show only the settings that matter for this model kind and the form's other values, as
        each field's `kinds` / `shown_if` metadata says (app/core/config.py)."""
        values = {n: self.value(n) for n in self._fields}
        for name, f in self._fields.items():
            self.set_field_visible(name, applies(f, kind, values))

    def is_field_visible(self, name: str) -> bool:
        return self._shown[name]
