"""Run directories from the window's side: recognising one without importing torch.

The window's current model is an app.core.run.Run (trained here or opened from disk): it is
opened with `app.core.run.open_with_data` and written with `Run.save`, on the worker pool.
"""

from __future__ import annotations

from pathlib import Path

from app.core.run import META   # torch-free: recognising a run folder must not load torch


def is_run_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / META).is_file()
