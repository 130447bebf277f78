"""Autosave during training in the window, and the offer to reopen it after a crash."""

import pytest
from PySide6.QtWidgets import QMessageBox

from app.core.autosave import find_recoverable, generations
from window_testing import make_window, small_model


@pytest.fixture
def autosave_root(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_AUTOSAVE_DIR", str(tmp_path / "autosave"))
    monkeypatch.delenv("LATENT_EXPLORER_NO_RECOVERY", raising=False)
    return tmp_path / "autosave"


def test_training_autosaves_each_epoch_and_a_clean_close_offers_nothing(qtbot, monkeypatch, autosave_root):
    window = make_window(qtbot, monkeypatch)
    small_model(window, epochs=2)
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=120_000):
        assert window.start_training()
    session = window.controller.autosave_session
    assert session is not None
    assert [p.name for p in generations(session.path)] == ["gen-2", "gen-1"]
    window.confirm_close = False
    window.close()
    assert find_recoverable(autosave_root) == []


def test_a_crashed_session_is_offered_and_reopened(qtbot, monkeypatch, autosave_root):
    window = make_window(qtbot, monkeypatch)
    small_model(window, epochs=1)
    with qtbot.waitSignal(window.controller.trainingStopped, timeout=120_000):
        window.start_training()
    crashed = window.controller.autosave_session
    # Simulate a crash: release the lock without the clean-exit marker.
    crashed._lock_handle.close()
    window.controller.autosave_session = None
    window.confirm_close = False
    window.close()

    found = find_recoverable(autosave_root)
    assert len(found) == 1 and found[0].session_dir == crashed.path

    second = make_window(qtbot, monkeypatch)
    with qtbot.waitSignal(second.recoveryOffered, timeout=60_000):
        second.offer_recovery()
    box = [d for d in second._dialogs if isinstance(d, QMessageBox)][-1]
    with qtbot.waitSignal(second.runOpened, timeout=60_000):
        box.button(QMessageBox.StandardButton.Open).click()
    assert second.state.snapshot is not None
    assert find_recoverable(autosave_root) == []   # offered only once
    second.confirm_close = False
    second.close()
