"""status.json: what a run directory's writer is doing now, for anyone following it (app/core/run_follow.py).

    {"state": "training" | "finished" | "failed", "epoch": 3, "epochs": 20,
     "updated_at": "2026-12-02T16:03:04+00:00", "pid": 4242, "host": "box", "reason": "completed"}

Written atomically (app/core/atomic.py) by the training session at its start, after each epoch and
at its end, so a reader sees either the previous status or the new one. The pid and host let a
follower on the same machine tell a writer that died (killed, machine lost) from one still working.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from pathlib import Path

from app.core.atomic import atomic_write_text

STATUS = "status.json"
STATES = ("training", "finished", "failed")
MAX_STATUS_BYTES = 64 * 1024


def write_status(run_dir: str | Path, state: str, epoch: int, epochs: int, reason: str | None = None) -> None:
    """Say what the writer is doing; an OSError (disk full) propagates for the caller to word."""
    status = {"state": state, "epoch": int(epoch), "epochs": int(epochs),
              "updated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "pid": os.getpid(), "host": socket.gethostname()}
    if reason is not None:
        status["reason"] = reason
    atomic_write_text(Path(run_dir) / STATUS, json.dumps(status, indent=2))


def read_status(run_dir: str | Path) -> dict | None:
    """The run's status, or None when it has none (a run saved by the window or an older app) or it
    is unreadable: the status is advice, never a reason to refuse a run."""
    path = Path(run_dir) / STATUS
    try:
        if path.stat().st_size > MAX_STATUS_BYTES:
            return None
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(status, dict) or status.get("state") not in STATES:
        return None
    return status


def writer_alive(status: dict) -> bool | None:
    """Whether the process that wrote `status` still runs: True/False on this machine, None when it
    runs elsewhere (a shared folder) or the status names no pid, so nobody can tell."""
    pid = status.get("pid")
    if os.name != "posix":
        return None   # Windows' os.kill would terminate the process instead of probing it
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or status.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)   # signal 0: checks the process exists without touching it
    except ProcessLookupError:
        return False
    except PermissionError:
        return True       # it exists, owned by someone else
    except OSError:
        return None
    return True
