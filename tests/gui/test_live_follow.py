"""The window follows a run that a separate `main.py train` process is writing (app/gui/live_run.py)."""

import subprocess
import sys
from pathlib import Path

from tests.gui.window_testing import make_window

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 60   # enough that the window opens the run well before the writer ends (~0.15 s an epoch here)


def test_window_follows_a_run_another_process_trains(qtbot, monkeypatch, tmp_path):
    run_dir = tmp_path / "run"
    writer = subprocess.Popen([sys.executable, "main.py", "train", "--data", "digits", "--model", "ae",
                               "--epochs", str(EPOCHS), "--hidden", "32", "--latent-dim", "2", "--quiet",
                               "--out", str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        window = make_window(qtbot, monkeypatch, load=None)
        live = window.app.live
        replaced = []
        live.modelReplaced.connect(replaced.append)
        qtbot.waitUntil(lambda: (run_dir / "model.json").exists(), timeout=120_000)
        window.app.open_run(str(run_dir))
        qtbot.waitUntil(lambda: live.follower is not None, timeout=60_000)
        rows_at_open = len(window.state.history)
        first_model = window.app.training.record.model
        assert window.live_badge.text().startswith("live") and window.live_badge.isVisible()
        qtbot.waitUntil(lambda: window.live_badge.text() == "finished", timeout=180_000)
        assert rows_at_open < EPOCHS and len(window.state.history) == EPOCHS
        assert replaced and window.app.training.record.model is not first_model
        assert not live.timer.isActive()
        assert writer.wait(timeout=60) == 0
        assert b"follow it live: python main.py" in writer.stdout.read()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
