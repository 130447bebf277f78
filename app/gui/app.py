"""Starting the window: `python main.py [DATA_SPEC | RUN_DIR]`."""

from __future__ import annotations

import sys


def configure_pyqtgraph() -> None:
    import pyqtgraph as pg

    # White figures read well in reports; antialiasing off keeps live curves and big scatters fast.
    pg.setConfigOptions(antialias=False, background="w", foreground=(40, 40, 40))


def run_window(argv: list[str]) -> int:
    """Open the window on the built-in digits, or on the data spec / run directory given."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    qt_app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "latent-explorer"])
    qt_app.setOrganizationName("LatentExplorer")
    qt_app.setApplicationName("latent-explorer")
    qt_app.setApplicationDisplayName("Latent Explorer")
    configure_pyqtgraph()

    from app.gui.main_window import MainWindow

    window = MainWindow(load_builtin=None if argv else "digits")
    if argv:
        window.open_path(argv[0])
        if len(argv) > 1:
            window.state.warn(f"Opened {argv[0]}; ignored the other arguments: {' '.join(argv[1:])}")
    window.show()
    install_signal_handlers(window)
    QTimer.singleShot(800, window.offer_recovery)   # after the first paint, so start-up stays quick
    return qt_app.exec()


def install_signal_handlers(window) -> None:
    """Ctrl+C in the terminal or a polite kill (SIGTERM) closes the window the normal way: training
    stops, the projection process ends, the autosave session is closed."""
    import signal

    from PySide6.QtCore import QTimer

    def close_window(*_args) -> None:
        window.confirm_close = False
        window.close()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, close_window)
        except (ValueError, OSError):   # not the main thread, or a platform without it
            pass
    # Python runs signal handlers only between bytecodes; while Qt's event loop sleeps in C++
    # nothing runs, so a cheap timer hands control back to Python a few times a second.
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)
