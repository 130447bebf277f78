"""Keeps a run directory readable while its training session writes it (issue 14, follow a run live).

After each epoch: metrics.csv rewritten atomically (every row so far), status.json updated, and at
most every `checkpoint_interval_s` (and always after the first epoch) a whole checkpoint through
save_run, whose renames leave model.json last. A follower (app/core/run_follow.py) therefore only
ever reads finished files. Failures never stop training: each distinct reason is returned once, as
a warning, and the next epoch tries again.
"""

from __future__ import annotations

import time
from pathlib import Path

from app.core.atomic import atomic_write_text
from app.core.errors import CheckpointError
from app.core.run_status import write_status

CHECKPOINT_INTERVAL_S = 2.0   # a save of a small model costs ~10 ms; a large one more, so not every fast epoch


class LiveWriter:
    def __init__(self, out: str | Path, epochs: int, checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S):
        self.out = Path(out)
        self.epochs = epochs
        self.checkpoint_interval_s = checkpoint_interval_s
        self._last_checkpoint: float | None = None
        self._reported: set[str] = set()
        self.checkpoints = 0

    def start(self, epoch: int = 0) -> list[str]:
        """Before the first epoch: the folder exists and says "training"."""
        def write():
            self.out.mkdir(parents=True, exist_ok=True)
            write_status(self.out, "training", epoch, self.epochs)
        return self._attempt("status", write)

    def epoch_done(self, session, epoch: int) -> list[str]:
        """The rows, maybe a checkpoint, then the status (so "epoch" never runs ahead of the files)."""
        from app.core.checkpoint import METRICS, metrics_csv

        warnings = self._attempt("metrics", lambda: atomic_write_text(self.out / METRICS, metrics_csv(session.history)))
        now = time.monotonic()
        if self._last_checkpoint is None or now - self._last_checkpoint >= self.checkpoint_interval_s:
            self._last_checkpoint = now
            warnings += self._attempt("checkpoint", lambda: self._checkpoint(session))
        warnings += self._attempt("status", lambda: write_status(self.out, "training", epoch, self.epochs))
        return warnings

    def _checkpoint(self, session) -> None:
        session.run.save(self.out)
        self.checkpoints += 1

    def finish(self, reason: str, ok: bool, epoch: int) -> list[str]:
        """After the final save: "finished" when training ended well (or was stopped on purpose) and
        was saved, else "failed"; `reason` is the trainer's (completed, cancelled, diverged...)."""
        state = "finished" if ok else "failed"
        return self._attempt("status", lambda: write_status(self.out, state, epoch, self.epochs, reason))

    def _attempt(self, what: str, write) -> list[str]:
        try:
            write()
        except (OSError, CheckpointError) as exc:
            text = f"live {what} for followers not written, training continues: {getattr(exc, 'strerror', None) or exc}"
            if text in self._reported:
                return []
            self._reported.add(text)
            return [text]
        return []
