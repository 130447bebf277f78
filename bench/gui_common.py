"""Shared bits of the GUI benchmarks: an offscreen QApplication with throw-away settings, the real
MainWindow, waiting on signals with a nested event loop (never a processEvents() spin, which slows a
worker thread down five-fold: docs/DESIGN.md), a 5 ms heartbeat timer, and the 784-400-20 VAE settings.

Everything runs with QT_QPA_PLATFORM=offscreen unless the caller set another platform.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QObject, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.core.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402

HEARTBEAT_MS = 5
WINDOW_SIZE = (1440, 900)
_settings_dir: tempfile.TemporaryDirectory | None = None


def qt_app() -> QApplication:
    """The process's QApplication, with a private settings store (no saved layout is restored or
    overwritten) and pyqtgraph configured as the app does."""
    global _settings_dir
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "latent-explorer-bench"])
    if _settings_dir is None:
        _settings_dir = tempfile.TemporaryDirectory(prefix="latent-explorer-bench-settings-")
        QCoreApplication.setOrganizationName("LatentExplorerBench")
        QCoreApplication.setApplicationName("latent-explorer-bench")
        QSettings.setDefaultFormat(QSettings.IniFormat)
        QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, _settings_dir.name)
        from app.gui.app import configure_pyqtgraph
        configure_pyqtgraph()
    return app


def open_window(data_spec: str | None = None, warm_up_projections: bool = False, timeout_s: float = 120):
    """A shown MainWindow of WINDOW_SIZE with `data_spec` loaded."""
    qt_app()
    from app.gui.main_window import MainWindow

    window = MainWindow(load_builtin=None, warm_up_projections=warm_up_projections)
    # A fixed, laptop-sized window: the offscreen screen is 800x600, and the window's default size
    # follows the screen, so paints would otherwise be smaller than on a real desktop.
    window.resize(WINDOW_SIZE[0], WINDOW_SIZE[1])
    window.confirm_close = False
    window.errors = []
    window.show_error = window.errors.append   # a dialog would block nothing offscreen, but keep them
    window.show()
    built = getattr(window, "viewsBuilt", None)   # the views are docked just after the first show
    if built is not None and not window.views and not wait_for(built, 60, condition=lambda: bool(window.views)):
        raise SystemExit("the window's views were not built within 60 s")
    if data_spec is not None:
        window.open_data(str(data_spec))
        if not wait_for(window.dataLoaded, timeout_s, fail=window.dataLoadFailed):
            raise SystemExit(f"could not load {data_spec}: {window.errors}")
    return window


def close_window(window) -> None:
    window.confirm_close = False
    window.close()
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, 0)


def wait_for(signal, timeout_s: float, fail=None, condition=None) -> bool:
    """Run the event loop until `signal` fires (and `condition()` holds, if given); False on timeout
    or when `fail` fires first."""
    loop = QEventLoop()
    outcome = {"ok": False}

    def fired(*_args):
        if condition is None or condition():
            outcome["ok"] = True
            loop.quit()

    def failed(*_args):
        loop.quit()

    signal.connect(fired)
    if fail is not None:
        fail.connect(failed)
    timer = QTimer(singleShot=True)
    timer.timeout.connect(loop.quit)
    timer.start(int(timeout_s * 1000))
    if condition is not None and condition():
        outcome["ok"] = True
    else:
        loop.exec()
    timer.stop()
    signal.disconnect(fired)
    if fail is not None:
        fail.disconnect(failed)
    return outcome["ok"]


def wait_until(condition, timeout_s: float, poll_ms: int = 50) -> bool:
    """Run the event loop until condition() holds (checked every poll_ms by a timer)."""
    if condition():
        return True
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(poll_ms)
    timer.timeout.connect(lambda: condition() and loop.quit())
    deadline = QTimer(singleShot=True)
    deadline.timeout.connect(loop.quit)
    timer.start()
    deadline.start(int(timeout_s * 1000))
    loop.exec()
    timer.stop()
    deadline.stop()
    return condition()


def run_for(seconds: float) -> None:
    """Let the event loop run for a while."""
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


class Heartbeat:
    """A 5 ms precise timer; each tick's lateness (ms past the due time) is recorded with its time, so
    a benchmark can keep only the ticks of the phase it measures."""

    def __init__(self, interval_ms: int = HEARTBEAT_MS):
        self.interval = interval_ms / 1000.0
        self.ticks: list[tuple[float, float]] = []   # (perf_counter at the tick, lateness in ms)
        self._last = None
        self._timer = QTimer()
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.ticks.append((now, max(0.0, (now - self._last - self.interval) * 1000.0)))
        self._last = now

    def lateness(self, start: float = -float("inf"), end: float = float("inf")) -> list[float]:
        return [late for t, late in self.ticks if start <= t <= end]


class PaintWatcher(QObject):
    """Records when a widget next paints, without forcing the paint: once made, the first Paint
    event the widget receives stores perf_counter() under `key` in `painted`. A synchronous
    repaint() from a benchmark would add the paint to whatever stall the window is in, which the
    app itself never does (its paint comes in a later turn of the event loop)."""

    def __init__(self, widget, painted: dict, key: str):
        super().__init__(widget)
        self.painted, self.key = painted, key
        widget.installEventFilter(self)
        widget.update()

    def eventFilter(self, obj, event):  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Paint and self.key not in self.painted:
            self.painted[self.key] = time.perf_counter()
            obj.removeEventFilter(self)
        return False


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list; nan when empty."""
    values = sorted(values)
    if not values:
        return float("nan")
    rank = max(1, min(len(values), int(round(q / 100.0 * len(values) + 0.5))))
    return values[rank - 1]


def lag_summary(lateness: list[float]) -> dict:
    return {"ticks": len(lateness), "p50": percentile(lateness, 50), "p99": percentile(lateness, 99),
            "max": max(lateness) if lateness else float("nan"),
            "mean": statistics.fmean(lateness) if lateness else float("nan")}


def vae_configs(epochs: int, kind: str = "vae", latent_dim: int = 20, hidden=(400,), loss: str = "bce"):
    """The issue's model: the classic 784-400-20 VAE, Adam 1e-3, batch 128, on the 80/20 split."""
    split = DataConfig(val_fraction=0.2, split_seed=0)
    model = ModelConfig(kind=kind, latent_dim=latent_dim, hidden=tuple(hidden), loss=loss)
    train = TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, optimizer="adam", seed=0, device="cpu")
    return split, model, train


def start_training(window, split, model, train) -> None:
    """Through the training panel's forms and the window's Train action, as a user would."""
    window.training_panel.set_configs(split, model, train)
    if not window.start_training():
        raise SystemExit(f"training did not start: {window.errors}")


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min)"
