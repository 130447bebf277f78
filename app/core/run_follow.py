"""Follows a run directory that another process is still writing (issue 14, follow a run live).

    follower = RunFollower("runs/digits-vae")
    for event in follower.poll():    # RowsAdded, CheckpointLoaded, StatusChanged
        ...

It only reads. metrics.csv is tailed by byte offset: only complete lines count (a partial last line
waits for the next poll), and a file that shrank or whose already-read bytes changed (rewritten
with other columns, or a new run) is read again from the start (RowsAdded.restarted). A new
checkpoint is noticed by model.json's weights_sha256; the writer renames the weights first and
model.json last (app/core/checkpoint.py), so a load that fails (a save half done) is simply tried
again at the next poll. status.json (app/core/run_status.py) says live / finished / failed, and a
"training" status whose process has died on this machine becomes "writer_gone".
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import CheckpointError
from app.core.run import MAX_JSON_BYTES, META, METRICS, Run
from app.core.run_status import read_status, writer_alive

FOLLOW_STATES = ("live", "finished", "failed", "writer_gone", "unknown")


@dataclass
class RowsAdded:
    rows: list[dict]
    restarted: bool            # True: these are all the rows (replace what was shown), else new ones


@dataclass
class CheckpointLoaded:
    run: Run
    sha256: str


@dataclass
class StatusChanged:
    state: str                 # one of FOLLOW_STATES ("unknown": the run has no readable status.json)
    status: dict | None        # status.json as read (epoch, epochs, updated_at, reason...)


FollowEvent = RowsAdded | CheckpointLoaded | StatusChanged


class RunFollower:
    def __init__(self, path: str | Path, known_sha256: str | None = None):
        """known_sha256: the checkpoint already shown (default: the one there now), not reported again."""
        self.path = Path(path)
        self.known_sha256 = known_sha256 if known_sha256 is not None else self._model_sha()
        self.state: str | None = None
        self._status_key = None
        self._offset = 0                 # bytes of metrics.csv consumed (complete lines only)
        self._header = b""               # its first line, kept to parse later chunks
        self._last_line = b""            # the last consumed line: checked again to notice a rewrite

    @property
    def done(self) -> bool:
        """The writer has ended (finished, failed or gone): nothing more will come."""
        return self.state in ("finished", "failed", "writer_gone")

    def poll(self) -> list[FollowEvent]:
        # The status first: the files read after it are at least as new as what it says.
        status = read_status(self.path)
        events: list[FollowEvent] = []
        rows = self._new_rows()
        if rows is not None:
            events.append(rows)
        checkpoint = self._new_checkpoint()
        if checkpoint is not None:
            events.append(checkpoint)
        state = _follow_state(status)
        key = (state, (status or {}).get("updated_at"), (status or {}).get("epoch"))
        if key != self._status_key:
            self._status_key, self.state = key, state
            events.append(StatusChanged(state, status))
        return events

    # -- metrics.csv ----------------------------------------------------------------------------
    def _new_rows(self) -> RowsAdded | None:
        try:
            with open(self.path / METRICS, "rb") as handle:
                size = handle.seek(0, io.SEEK_END)
                restarted = self._offset == 0 or size < self._offset or not self._unchanged(handle)
                start = 0 if restarted else self._offset
                handle.seek(start)
                chunk = handle.read(size - start)
        except OSError:
            return None                  # not written yet, or replaced while opening: next poll
        complete = chunk[:chunk.rfind(b"\n") + 1]
        if not complete:
            return None
        if restarted:
            self._header = complete[:complete.find(b"\n") + 1]
            body = complete[len(self._header):]
        else:
            body = complete
        self._offset = start + len(complete)
        lines = body.splitlines(keepends=True)
        self._last_line = lines[-1] if lines else self._header
        rows = _parse_rows(self._header + body)
        if rows is None:
            self._offset = 0             # unreadable now (a writer mid-change): read it all next time
            return None
        return RowsAdded(rows, restarted) if rows or restarted else None

    def _unchanged(self, handle) -> bool:
        """The header and the last line read are still where they were (an atomic rewrite that only
        added rows keeps them; a new run or changed columns does not)."""
        handle.seek(0)
        if handle.read(len(self._header)) != self._header:
            return False
        handle.seek(self._offset - len(self._last_line))
        return handle.read(len(self._last_line)) == self._last_line

    # -- the checkpoint --------------------------------------------------------------------------
    def _model_sha(self) -> str | None:
        try:
            meta_path = self.path / META
            if meta_path.stat().st_size > MAX_JSON_BYTES:
                return None
            sha = json.loads(meta_path.read_text(encoding="utf-8")).get("weights_sha256")
        except (OSError, ValueError, AttributeError, RecursionError):
            return None
        return sha if isinstance(sha, str) else None

    def _new_checkpoint(self) -> CheckpointLoaded | None:
        sha = self._model_sha()
        if sha is None or sha == self.known_sha256:
            return None
        from app.core.checkpoint import load_run   # torch: only once there is a checkpoint to read
        try:
            run = load_run(self.path)
        except CheckpointError:
            return None                  # a save in progress or a glitch: the next poll tries again
        sha = run.meta.get("weights_sha256", sha)
        if sha == self.known_sha256:
            return None
        self.known_sha256 = sha
        return CheckpointLoaded(run, sha)


def _parse_rows(text: bytes) -> list[dict] | None:
    """Metrics rows as read_metrics makes them (numbers as floats, blanks as None); None if unreadable."""
    try:
        reader = csv.DictReader(io.StringIO(text.decode("utf-8")))
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items() if k} for row in reader]
    except (ValueError, UnicodeDecodeError, csv.Error):
        return None


def _follow_state(status: dict | None) -> str:
    if status is None:
        return "unknown"
    if status["state"] != "training":
        return status["state"]
    return "writer_gone" if writer_alive(status) is False else "live"
