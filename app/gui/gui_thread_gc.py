"""Python's cyclic garbage collector, run on the GUI thread only, while the window lives.

Why: CPython runs the collector in whichever thread happens to allocate when a generation's
threshold is crossed. When that is a worker thread (the trainer deep-copying its model for a
snapshot, an analysis task) and the garbage holds a Qt object that Python owns (a widget in a
reference cycle), shiboken destroys the C++ object in that worker thread. Qt's ~QObject takes the
signal-slot mutex and then waits for the GIL to look for a Python override; the GUI thread, holding
the GIL, waits for that same mutex in QObject::connect. Neither moves again, and the SIGALRM of a
test timeout is never handled, because the GUI thread never returns to Python. Seen in this suite
(native stacks taken with py-spy; docs/DESIGN.md, "Known traps on this stack"): the test run hung
until CI's limit.

So the automatic collector is switched off and a timer on the GUI thread collects in steps as
small as the automatic one takes (see GuiThreadCollector.check); the headless CLI and the
projection process keep CPython's normal collector. calibre's GUI has done the same for
years for the same reason (its GarbageCollector class).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QThread, QTimer
from PySide6.QtWidgets import QApplication

CHECK_INTERVAL_MS = 50   # garbage waits at most this long; a check with nothing to do costs microseconds
LONG_LIVED_FLOOR = 20_000   # see check(): full collections wait for this many promoted objects at least

_collector: "GuiThreadCollector | None" = None


class GuiThreadCollector(QObject):
    def __init__(self, app: QApplication):
        super().__init__(app)
        self.thresholds = gc.get_threshold()
        self.collections = [0, 0, 0]   # per generation, for tests and the curious
        gc.disable()
        # Everything imported and built so far lives as long as the app: frozen, a full collection
        # does not walk it (it took ~200 ms with torch, Qt and scikit-learn loaded).
        gc.freeze()
        self._frozen = gc.get_freeze_count()   # walks the whole list (~25 ms): once
        self._long_lived = 0   # objects in the oldest generation after the last full collection
        self._pending = 0      # objects promoted into it since then (counted at young collections)
        self._timer = QTimer(self)
        self._timer.setInterval(CHECK_INTERVAL_MS)
        self._timer.timeout.connect(self.check)
        self._timer.start()
        app.aboutToQuit.connect(self.stop)

    def check(self) -> None:
        """Collect in steps as small as CPython's automatic collector takes them. It collects
        generation 0 every 700 net allocations and generation 1 every 10 of those, so a young
        collection walks a few thousand objects; a timer sees only what accumulated since its last
        tick, so here generation 0 is collected at every tick that finds new objects, generation 1
        once it holds as many objects as CPython lets it gather (700 x 10), and everything only once
        the objects promoted since the last full collection are a quarter of the long-lived ones,
        frozen included (CPython's long-lived rule, counted here because Python does not expose its
        own). Measured in bench/ui_lag.py, which reports every collection over 10 ms."""
        if gc.get_count()[0] <= 0:
            return
        long_lived = self._frozen + self._long_lived
        if self._pending > max(long_lived, LONG_LIVED_FLOOR) / 4:
            found = gc.collect(2)
            self._long_lived = max(0, self._long_lived + self._pending - found)
            self._pending = 0
            self.collections[2] += 1
            return
        gc.collect(0)
        self.collections[0] += 1
        middle = len(gc.get_objects(1))
        if middle > self.thresholds[0] * self.thresholds[1]:
            self._pending += max(0, middle - gc.collect(1))   # the survivors move to the oldest generation
            self.collections[1] += 1

    def stop(self) -> None:
        """Back to CPython's own collector (the application is quitting)."""
        global _collector
        self._timer.stop()
        gc.enable()
        if _collector is self:
            _collector = None


def collect_garbage_on_gui_thread() -> GuiThreadCollector:
    """Install the collector once per application (the window calls this; so do the GUI tests for
    the widgets they build on their own). Must be called on the GUI thread."""
    global _collector
    app = QApplication.instance()
    if app is None:
        raise RuntimeError("collect_garbage_on_gui_thread needs a QApplication")
    if QThread.currentThread() != app.thread():
        raise RuntimeError("collect_garbage_on_gui_thread must be called on the GUI thread")
    if _collector is None:
        _collector = GuiThreadCollector(app)
    return _collector
