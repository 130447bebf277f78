"""GUI fixtures: an isolated settings store and a guard that no test leaves threads behind."""

import threading

import pytest
from PySide6.QtCore import QCoreApplication, QSettings, QThreadPool


@pytest.fixture(autouse=True, scope="session")
def garbage_collected_on_the_gui_thread(qapp):
    """As in the app: widgets a test builds on its own, once garbage, are destroyed on the GUI
    thread, never by a collection that a worker thread happened to trigger (a deadlock inside Qt;
    app/gui/gui_thread_gc.py)."""
    from app.gui.gui_thread_gc import collect_garbage_on_gui_thread

    collect_garbage_on_gui_thread()
    yield


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, qapp):
    QCoreApplication.setOrganizationName("LatentExplorerTests")
    QCoreApplication.setApplicationName("latent-explorer-tests")
    QSettings.setDefaultFormat(QSettings.IniFormat)
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path / "settings"))
    yield


@pytest.fixture(autouse=True)
def no_leftover_threads(qapp):
    before = {t.ident for t in threading.enumerate()}
    yield
    assert QThreadPool.globalInstance().waitForDone(10_000), "a background job is still running after the test"
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive() and not t.daemon]
    assert not leftover, f"test left threads running: {leftover}"
