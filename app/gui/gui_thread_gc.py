"""Python's cyclic garbage collector, run on the GUI thread only, while the window lives.

Why: CPython runs the collector in whichever thread happens to allocate when a generation's
threshold is crossed. When that is a worker thread (the trainer deep-copying its model for a
snapshot, an analysis task) and the garbage holds a Qt object that Python owns (a widget in a
reference cycle), shiboken destroys the C++ object in that worker thread. Qt's ~QObject takes the
signal-slot mutex and then waits for the GIL to look for a Python override; the GUI thread, holding
the GIL, waits for that same mutex in QObject::connect. Neither moves again, and the SIGALRM of a
test timeout is never handled, because the GUI thread never returns to Python. Seen in this suite
(native stacks taken with py-spy; docs/DESIGN.md "Threads and Qt objects"): the test run hung
until CI's limit.

So the automatic collector is switched off and a timer on the GUI thread collects each
generation whose threshold has been crossed, as the automatic one would have; the headless CLI
and the projection process keep CPython's normal collector. calibre's GUI has done the same for
years for the same reason (its GarbageCollector class).
"""

from __future__ import annotations

import gc
import time

from PySide6.QtCore import QObject, QThread, QTimer
from PySide6.QtWidgets import QApplication

CHECK_INTERVAL_MS = 250   # garbage from cycles waits at most this long; a check costs microseconds
FULL_COLLECTION_MIN_S = 10.0

_collector: "GuiThreadCollector | None" = None


class GuiThreadCollector(QObject):
    def __init__(self, app: QApplication):
        super().__init__(app)
        self.thresholds = gc.get_threshold()
        self.collections = [0, 0, 0]   # per generation, for tests and the curious
        self._last_full = time.monotonic()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(CHECK_INTERVAL_MS)
        self._timer.timeout.connect(self.check)
        self._timer.start()
        app.aboutToQuit.connect(self.stop)

    def check(self) -> None:
        """Collect the oldest generation whose count is past its threshold (gc.get_count():
        net allocations for generation 0, collections of the next younger generation for the
        others), as the automatic collector does, and generation 0 at every check that finds new
        objects: the timer sees only the net count, and a worker that allocates and frees in
        turn would otherwise keep it under the threshold while its garbage waits. A young
        collection costs microseconds. CPython also holds back full collections until the
        long-lived objects grew by a quarter, which Python does not expose;
        FULL_COLLECTION_MIN_S stands in for it."""
        counts = gc.get_count()
        if counts[0] <= 0:
            return
        generation = 0
        for older in (2, 1):
            if counts[older] > self.thresholds[older]:
                if older == 2 and time.monotonic() - self._last_full < FULL_COLLECTION_MIN_S:
                    continue
                generation = older
                break
        if generation == 2:
            self._last_full = time.monotonic()
        gc.collect(generation)
        self.collections[generation] += 1

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
