"""The window follows a run that another process is still training (issue 14, follow a run live).

Opening a run directory whose status.json says "training" (app/core/run_status.py) starts
following it: every 500 ms a RunFollower (app/core/run_follow.py, read only) reports new metrics
rows, which go to the loss curves, and new checkpoints, which replace the current model the way
opening a run does (the views re-encode the data already open). A badge in the status bar says
"live · updated 12:03:04", "finished", "failed" or "writer stopped". Following stops when another
run or data is opened, when training starts in the window, and when the window closes.
Polling rather than QFileSystemWatcher: it also sees writers on network shares, where inotify
says nothing, and a poll that finds nothing new reads two small files.
"""

from __future__ import annotations

import datetime as _dt

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel

from app.core.run_follow import CheckpointLoaded, RowsAdded, RunFollower, StatusChanged
from app.core.run_status import read_status

POLL_MS = 500


class LiveRun(QObject):
    badgeChanged = Signal(str)       # the badge's text, "" when nothing is followed
    modelReplaced = Signal(str)      # the new checkpoint's weights_sha256

    def __init__(self, app):
        """app: the window's AppController (app/gui/app_controller.py)."""
        super().__init__(app)
        self.app = app
        self.follower: RunFollower | None = None
        self.badge = ""
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        app.runOpened.connect(self._run_opened)
        app.dataLoaded.connect(self.stop)
        app.training.runStateChanged.connect(lambda state: self.stop() if state == "running" else None)

    @property
    def following(self) -> bool:
        return self.follower is not None and self.timer.isActive()

    def _run_opened(self, path: str) -> None:
        self.stop()
        status = read_status(path)
        if status is None or status["state"] != "training":
            return               # a finished run (or one saved by the window): nothing to follow
        record = self.app.training.record
        shown = record.meta.get("weights_sha256") if record is not None and record.meta else None
        self.follower = RunFollower(path, known_sha256=shown or "")
        self.poll()
        if self.follower is not None and not self.follower.done:
            self.timer.start()

    def stop(self) -> None:
        """Stop following (another run or data opened, training here, window closed)."""
        self.timer.stop()
        if self.follower is not None:
            self.follower = None
            self._set_badge("")

    def poll(self) -> None:
        if self.follower is None:
            return
        if self.app.closed or self.app.training.running:
            self.stop()
            return
        for event in self.follower.poll():
            if isinstance(event, RowsAdded):
                self._rows(event)
            elif isinstance(event, CheckpointLoaded):
                self._replace_model(event)
            elif isinstance(event, StatusChanged):
                self._set_badge(_badge_text(event))
        if self.follower.done:
            self.timer.stop()    # the badge stays: it says how the run ended

    def _rows(self, event: RowsAdded) -> None:
        state = self.app.state
        if event.restarted:
            state.set_history(event.rows)
        else:
            for row in event.rows:
                state.append_history(row)
        if self.app.training.record is not None:   # File > Save run keeps what was seen
            self.app.training.record.history = list(state.history)

    def _replace_model(self, event: CheckpointLoaded) -> None:
        """As AppController._run_opened does, without reloading the data already open."""
        from app.core.snapshot import ModelSnapshot

        run, state, old = event.run, self.app.state, self.app.training.record
        run.data = old.data if old is not None else None
        run.history = list(state.history)
        self.app.training.record = run
        state.run_seed = run.train_cfg.seed
        state.set_snapshot(ModelSnapshot.of(run.model, state.next_generation(), len(run.history), run.modality))
        self.app.encode_explored()
        self.modelReplaced.emit(event.sha256)

    def _set_badge(self, text: str) -> None:
        if text != self.badge:
            self.badge = text
            self.badgeChanged.emit(text)


def _badge_text(event: StatusChanged) -> str:
    status = event.status or {}
    if event.state == "finished":
        return "finished"
    if event.state == "failed":
        return f"failed ({status['reason']})" if status.get("reason") else "failed"
    if event.state == "writer_gone":
        return "writer stopped"
    try:
        when = _dt.datetime.fromisoformat(status["updated_at"]).astimezone().strftime("%H:%M:%S")
    except (KeyError, TypeError, ValueError):
        return "live"
    return f"live · updated {when}"


class LiveBadge(QLabel):
    """The status-bar badge: hidden unless a run is followed."""

    def __init__(self, live: LiveRun, parent=None):
        super().__init__(parent)
        self.setObjectName("liveBadge")
        self.setToolTip("Following a run that another process is training (app/gui/live_run.py)")
        live.badgeChanged.connect(self._show)
        self._show(live.badge)

    def _show(self, text: str) -> None:
        self.setText(text)
        self.setVisible(bool(text))
