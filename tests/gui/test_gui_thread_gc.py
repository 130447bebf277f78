"""Garbage that holds Qt objects is destroyed on the GUI thread, never by a collection a worker
thread happened to trigger (that deadlocked the suite inside Qt: app/gui/gui_thread_gc.py)."""

import gc
import threading
import weakref

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMenu, QWidget

from app.gui.gui_thread_gc import collect_garbage_on_gui_thread


def test_a_widget_in_a_reference_cycle_dies_on_the_gui_thread(qtbot):
    collector = collect_garbage_on_gui_thread()
    assert collector is collect_garbage_on_gui_thread()   # one per application
    assert not gc.isenabled()
    class Panel(QWidget):   # a Python subclass with a menu, like the widget in the deadlock
        pass

    destroyed_in = []
    widget = Panel()
    widget.menu = QMenu(widget)
    widget.cycle = widget   # only the cyclic collector can free it
    widget.destroyed.connect(lambda *_: destroyed_in.append(threading.get_ident()),
                             Qt.ConnectionType.DirectConnection)
    alive = weakref.ref(widget)
    del widget

    # A worker allocates far past generation 0's threshold (700): CPython's own collector would
    # have run in this thread and destroyed the widget here (checked: with gc.enable() this test
    # fails, the widget destroyed in the worker).
    worker = threading.Thread(target=lambda: [[] for _ in range(50_000)])
    worker.start()
    worker.join()
    assert alive() is not None and destroyed_in == []

    qtbot.waitUntil(lambda: alive() is None, timeout=5_000)   # the GUI thread's timer collected it
    assert destroyed_in == [threading.main_thread().ident]
    assert sum(collector.collections) >= 1


def test_the_window_installs_it(qtbot, monkeypatch):
    from window_testing import make_window

    make_window(qtbot, monkeypatch, load=None)
    assert not gc.isenabled()
