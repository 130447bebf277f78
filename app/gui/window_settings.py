"""The window's size and dock arrangement across sessions (QSettings), its first size, and the
number of samples it explores (also kept in QSettings).
The default arrangement itself is app/gui/default_layout.py's."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar


def fit_to_screen(window: QMainWindow) -> None:
    """Start large: the views need room. 92 % of the screen, at most 1680 x 1050 (until the user's
    own size is restored from the settings)."""
    from PySide6.QtGui import QGuiApplication

    screen = QGuiApplication.primaryScreen()
    if screen is None:
        window.resize(1440, 900)
        return
    area = screen.availableGeometry()
    window.resize(min(1680, int(area.width() * 0.92)), min(1050, int(area.height() * 0.92)))


def restore_geometry(window: QMainWindow) -> None:
    geometry = QSettings().value("window/geometry")
    if isinstance(geometry, QByteArray) and not geometry.isEmpty():
        window.restoreGeometry(geometry)


def restore_layout(window: QMainWindow) -> bool:
    """The docks' arrangement (needs every dock to exist); False when none was saved or it was
    saved by an older layout version (the new default applies then)."""
    from app.gui.default_layout import LAYOUT_VERSION
    layout = QSettings().value("window/state")
    return isinstance(layout, QByteArray) and not layout.isEmpty() and window.restoreState(layout, LAYOUT_VERSION)


def save_layout(window: QMainWindow) -> None:
    from app.gui.default_layout import LAYOUT_VERSION
    settings = QSettings()
    settings.setValue("window/geometry", window.saveGeometry())
    settings.setValue("window/state", window.saveState(LAYOUT_VERSION))


def status_widgets(window: QMainWindow) -> tuple[QLabel, QProgressBar, QLabel]:
    """(busy text, busy bar, device line) added to the window's status bar."""
    busy_label, busy_bar = QLabel(), QProgressBar()
    busy_bar.setRange(0, 0)
    busy_bar.setMaximumWidth(120)
    busy_bar.setMaximumHeight(14)
    busy_bar.setToolTip("Working in the background; the window stays usable")
    device_label = QLabel("Device: …")   # asking torch waits until the views (and torch) are loaded
    device_label.setToolTip("The device training runs on (Training > Device)")
    for widget in (busy_label, busy_bar, device_label):
        window.statusBar().addPermanentWidget(widget)
    return busy_label, busy_bar, device_label


# --- how many samples the window explores (a user setting, issue 14) ------------------------------
EXPLORE_LIMIT_KEY = "explore/max_samples"


def load_explore_limit(default: int) -> int:
    """The number of samples to explore saved by an earlier session (0: all of them), else `default`;
    anything unreadable (an edited settings file) is the default."""
    value = QSettings().value(EXPLORE_LIMIT_KEY, default)
    try:
        limit = int(value)
    except (TypeError, ValueError):
        return default
    return limit if limit >= 0 else default


def save_explore_limit(limit: int) -> None:
    QSettings().setValue(EXPLORE_LIMIT_KEY, int(limit))
