"""Autosave during training, and finding what a crashed window left behind.

Layout of one autosave folder (the CLI uses RUN_DIR/autosave/, the window one folder per session
under ~/.cache/latent-explorer/autosave/<session-id>/):

    gen-7/              a complete run directory (save_run), the newest
    gen-6/              the one before; older generations are deleted once a newer one is complete
    .gen-8.partial/     a save under way (or killed): never read, removed by the next save
    session.json        window sessions only: who wrote this, when
    session.lock        held (flock) while the session's process is alive
    clean-exit          written when the window closed normally: nothing to recover

A generation is written into a hidden `.gen-<n>.partial` folder and renamed to `gen-<n>` only when
save_run returned, so a visible generation is always complete; the rename is atomic, and the
folder is fsynced before the older generations go.

    saver = Autosaver(folder, data_cfg=..., train_cfg=..., modality=..., data_info=...)
    for event in trainer.run(control):           # in the thread that iterates the trainer
        saver.on_event(event, trainer.model, trainer.history)

`on_event` saves after every epoch (`every_epochs`) and, inside a long epoch, on a TrainProgress
once `interval_s` has passed since the last save. The generator is suspended while the consumer
handles an event, so the weights are never half-updated when they are saved. A failed autosave
(disk full, folder gone) never stops training: the message goes to `on_error` and `errors`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from app.core.atomic import _fsync_dir, atomic_write_text
from app.core.config import DataConfig, TrainConfig
from app.core.errors import CheckpointError, LatentExplorerError

ENV_ROOT = "LATENT_EXPLORER_AUTOSAVE_DIR"
CLEAN_EXIT = "clean-exit"
SESSION_INFO = "session.json"
SESSION_LOCK = "session.lock"
KEEP_GENERATIONS = 2
_GENERATION = re.compile(r"^gen-(\d{1,9})$")
_LEFTOVER = re.compile(r"^\.gen-(\d{1,9})\.(partial|old)$")


def default_autosave_root() -> Path:
    """$LATENT_EXPLORER_AUTOSAVE_DIR, else $XDG_CACHE_HOME/latent-explorer/autosave, else
    ~/.cache/latent-explorer/autosave."""
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "latent-explorer" / "autosave"


# ---------------------------------------------------------------------------------------------
# Generations

def generations(folder: str | Path) -> list[Path]:
    """The visible generations in `folder`, newest first (complete unless damaged afterwards)."""
    folder = Path(folder)
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = _GENERATION.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False):
            found.append((int(match.group(1)), Path(entry.path)))
    return [path for _, path in sorted(found, reverse=True)]


def latest_autosave(folder: str | Path) -> Path | None:
    """The newest generation in `folder` that loads completely, skipping broken ones; None if none."""
    from app.core.checkpoint import load_run

    for path in generations(folder):
        try:
            load_run(path)
        except (LatentExplorerError, OSError):
            continue
        return path
    return None


def _next_number(folder: Path) -> int:
    numbers = [0]
    try:
        for name in os.listdir(folder):
            match = _GENERATION.match(name) or _LEFTOVER.match(name)
            if match:
                numbers.append(int(match.group(1)))
    except OSError:
        pass
    return max(numbers) + 1


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _remove_leftovers(folder: Path) -> None:
    """Partial generations of a killed save and half-deleted old ones."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if _LEFTOVER.match(name):
            _remove_tree(folder / name)


class Autosaver:
    """Saves the model being trained into `folder`/gen-<n>/, keeping the newest `keep` generations.

    every_epochs: save after every this many epochs (0 = never at epoch ends).
    interval_s: inside an epoch, save on a TrainProgress when this long has passed since the last
        save (None = never mid-epoch). Default 5 minutes.
    min_interval_s: skip an epoch-end save if the last save is more recent than this (for very
        short epochs; 0 = save every epoch).
    """

    def __init__(self, folder: str | Path, *, data_cfg: DataConfig, train_cfg: TrainConfig, modality: str,
                 data_info: dict | None = None, every_epochs: int = 1, interval_s: float | None = 300.0,
                 min_interval_s: float = 0.0, keep: int = KEEP_GENERATIONS,
                 on_error: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic):
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.folder = Path(folder)
        self.data_cfg = data_cfg
        self.train_cfg = train_cfg
        self.modality = modality
        self.data_info = data_info
        self.every_epochs = every_epochs
        self.interval_s = interval_s
        self.min_interval_s = min_interval_s
        self.keep = keep
        self.on_error = on_error
        self.clock = clock
        self.errors: list[str] = []
        self.saved: list[Path] = []
        self._last_save = clock()

    @property
    def last_error(self) -> str | None:
        return self.errors[-1] if self.errors else None

    def on_event(self, event, model, history: list) -> Path | None:
        """Feed every trainer event here; returns the new generation when one was written."""
        from app.core.trainer import EpochResult, TrainProgress

        now = self.clock()
        since = now - self._last_save
        if isinstance(event, EpochResult):
            if self.every_epochs and event.epoch % self.every_epochs == 0 and since >= self.min_interval_s:
                return self.save(model, history, epoch=event.epoch, partial_epoch=False)
        elif isinstance(event, TrainProgress):
            if self.interval_s is not None and since >= self.interval_s and event.step_in_epoch < event.steps_per_epoch:
                return self.save(model, history, epoch=event.epoch, step=event.step, partial_epoch=True)
        return None

    def save(self, model, history: list | None, *, epoch: int | None = None, step: int | None = None,
             partial_epoch: bool = False) -> Path | None:
        """Write one generation now. Returns its path, or None after reporting the error."""
        from app.core.checkpoint import epoch_row, save_run

        self._last_save = self.clock()
        history = list(history or [])
        metrics: dict = {}
        if history:
            metrics = dict(epoch_row(history[-1]) if not isinstance(history[-1], dict) else history[-1])
        metrics["autosave"] = {"epoch": epoch, "step": step, "partial_epoch": partial_epoch,
                               "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        partial = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            number = _next_number(self.folder)   # counts leftovers too: a number is never reused
            _remove_leftovers(self.folder)
            partial = self.folder / f".gen-{number}.partial"
            final = self.folder / f"gen-{number}"
            save_run(partial, model, data_cfg=self.data_cfg, train_cfg=self.train_cfg, modality=self.modality,
                     data_info=self.data_info, history=history, metrics=metrics)
            os.rename(partial, final)
            _fsync_dir(self.folder)
        except (CheckpointError, OSError) as exc:
            cause = exc if isinstance(exc, OSError) else exc.__cause__
            if isinstance(cause, OSError):
                message = (f"could not autosave to {self.folder}: {cause.strerror or cause}; free some space or "
                           f"choose a writable folder (training goes on; the older autosaves are intact)")
            else:
                message = f"could not autosave to {self.folder}: {exc}"
            if partial is not None:
                _remove_tree(partial)
            self.errors.append(message)
            if self.on_error is not None:
                self.on_error(message)
            return None
        self._prune()
        self.saved.append(final)
        return final

    def _prune(self) -> None:
        """Delete generations beyond `keep`, oldest first; each is renamed away before deletion so
        a kill halfway never leaves a visible, half-deleted generation."""
        for old in generations(self.folder)[self.keep:]:
            match = _GENERATION.match(old.name)
            trash = old.with_name(f".gen-{match.group(1)}.old")
            try:
                os.rename(old, trash)
            except OSError:
                continue
            _remove_tree(trash)


# ---------------------------------------------------------------------------------------------
# Window sessions

@dataclass
class Recoverable:
    """A session that did not close cleanly and left a loadable autosave."""
    session_dir: Path
    checkpoint: Path            # the generation to open with load_run
    saved_at: float             # POSIX time of the checkpoint's model.json
    info: dict                  # session.json: label, started_at, pid, host


def _lock(handle) -> bool:
    """Take an exclusive, non-blocking lock on an open file; False if another process holds it.
    The operating system drops the lock when its process dies, even by SIGKILL."""
    try:
        if sys.platform == "win32":
            import msvcrt
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _session_alive(session_dir: Path) -> bool:
    lock_path = session_dir / SESSION_LOCK
    if not lock_path.exists():
        return False
    try:
        with open(lock_path, "a+b") as handle:
            return not _lock(handle)   # closing the handle releases a lock we just took
    except OSError:
        return False


class AutosaveSession:
    """One window's autosave folder. Create it at start-up, pass `autosaver(...)` to each training,
    call `close()` on a normal exit. A crash leaves no clean-exit marker, so the next start offers
    the newest generation (find_recoverable)."""

    def __init__(self, path: Path, lock_handle):
        self.path = path
        self._lock_handle = lock_handle

    @classmethod
    def create(cls, root: str | Path | None = None, label: str = "") -> "AutosaveSession":
        root = Path(root) if root is not None else default_autosave_root()
        session_id = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        path = root / session_id
        try:
            path.mkdir(parents=True, exist_ok=False)
            handle = open(path / SESSION_LOCK, "a+b")
            _lock(handle)
            atomic_write_text(path / SESSION_INFO, json.dumps({
                "label": label, "pid": os.getpid(), "host": socket.gethostname(),
                "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}, indent=2))
        except OSError as exc:
            raise CheckpointError(f"cannot create the autosave folder {path}: {exc.strerror or exc}; "
                                  f"set {ENV_ROOT} to a writable folder") from exc
        return cls(path, handle)

    def autosaver(self, **kwargs) -> Autosaver:
        """An Autosaver writing into this session (same keyword arguments as Autosaver)."""
        return Autosaver(self.path, **kwargs)

    def latest(self) -> Path | None:
        return latest_autosave(self.path)

    def close(self, clean: bool = True, discard: bool = False) -> None:
        """Normal exit: write the clean-exit marker (or delete the whole session with discard=True)
        and release the lock."""
        try:
            if discard:
                _remove_tree(self.path)
            elif clean:
                atomic_write_text(self.path / CLEAN_EXIT, _dt.datetime.now(_dt.timezone.utc).isoformat())
        except OSError:
            pass
        finally:
            if self._lock_handle is not None:
                self._lock_handle.close()
                self._lock_handle = None


def find_recoverable(root: str | Path | None = None) -> list[Recoverable]:
    """Sessions under `root` (default: default_autosave_root()) that ended without a clean exit,
    whose process is gone, and that hold a generation which loads completely; newest first."""
    root = Path(root) if root is not None else default_autosave_root()
    found = []
    try:
        sessions = [Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    for session_dir in sessions:
        if (session_dir / CLEAN_EXIT).exists() or _session_alive(session_dir):
            continue
        checkpoint = latest_autosave(session_dir)
        if checkpoint is None:
            continue
        try:
            info = json.loads((session_dir / SESSION_INFO).read_text(encoding="utf-8"))
            info = info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            info = {}
        try:
            saved_at = (checkpoint / "model.json").stat().st_mtime
        except OSError:
            saved_at = 0.0
        found.append(Recoverable(session_dir, checkpoint, saved_at, info))
    return sorted(found, key=lambda r: r.saved_at, reverse=True)


def discard_session(session_dir: str | Path) -> None:
    """The user declined to recover it: delete the session's autosaves."""
    _remove_tree(Path(session_dir))


def prune_sessions(root: str | Path | None = None, older_than_days: float = 14.0) -> int:
    """Housekeeping at start-up: delete cleanly closed sessions, and sessions with nothing to
    recover, whose last change is older than `older_than_days`. Returns how many were removed."""
    root = Path(root) if root is not None else default_autosave_root()
    cutoff = time.time() - older_than_days * 86400
    removed = 0
    try:
        sessions = [Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0
    for session_dir in sessions:
        try:
            newest = max([session_dir.stat().st_mtime] + [p.stat().st_mtime for p in session_dir.iterdir()])
        except OSError:
            continue
        if newest > cutoff or _session_alive(session_dir):
            continue
        if (session_dir / CLEAN_EXIT).exists() or latest_autosave(session_dir) is None:
            _remove_tree(session_dir)
            removed += 1
    return removed
