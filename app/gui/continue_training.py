"""Training > Continue training…: resume the opened run where it stopped (app/core/resume.py).

The run directory's training state (optimizer moments, epoch counter, KL-annealing position,
random generators) is loaded with the weights, so continuing in the window gives the same model
as `python main.py train --resume RUN_DIR --epochs E`. The loss curves keep the earlier epochs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QInputDialog

from app.core.errors import LatentExplorerError

TIP_NO_RUN = "Open a run directory first (File > Open run…); this continues it"


def resumable_run(window) -> Path | None:
    """The run directory of the window's current model, when it can be continued exactly."""
    record = window.app.record
    path = getattr(record, "path", None)
    if path is None:   # nothing opened (the window's start-up): no need to load torch to say so
        return None
    from app.core.training_state import has_training_state

    return Path(path) if has_training_state(path) else None


def continue_run(window, run_dir: str | Path, epochs: int) -> bool:
    """Continue `run_dir` to `epochs` in total through the window's training controller."""
    from app.core.resume import prepare_resume

    state = window.state
    try:
        plan = prepare_resume(run_dir, epochs)
    except LatentExplorerError as exc:
        state.error(f"Cannot continue {run_dir}: {exc}")
        return False
    if not window.controller.start(plan.data_cfg, plan.model_cfg, plan.train_cfg, prepared=plan.prepared):
        return False
    window.controller.record.path = None   # the continued model is new until it is saved
    state.info(f"Continuing {run_dir} after epoch {plan.epochs_done}, to {epochs} epochs in all")
    return True


def ask_and_continue(window) -> bool:
    run_dir = resumable_run(window)
    if run_dir is None:
        window.state.error("Continue training needs a run directory opened from disk that holds its training state "
                           "(runs saved by this version); open one with File > Open run…")
        return False
    if window.controller.running:
        window.state.warn("Training is already running; stop it before continuing another run")
        return False
    done = len(window.app.record.history)
    epochs, ok = QInputDialog.getInt(window, "Continue training", f"{run_dir.name} has trained {done} epochs. "
                                     "Train up to this many epochs in all:", max(done * 2, done + 1), done + 1, 100000)
    return ok and continue_run(window, run_dir, epochs)


def add_continue_action(window, menu) -> QAction:
    """The menu entry, enabled while an opened run can be continued and nothing trains."""
    action = QAction("Continue training…", window)
    action.setToolTip("Resume the opened run from its last epoch with its optimizer and random state")
    action.setStatusTip(action.toolTip())
    action.triggered.connect(lambda: ask_and_continue(window))
    menu.addAction(action)

    def update(*_args) -> None:
        possible = resumable_run(window) is not None and not window.controller.running
        action.setEnabled(possible)
        action.setToolTip("Resume the opened run from its last epoch with its optimizer and random state"
                          if possible else TIP_NO_RUN)

    window.runOpened.connect(update)
    window.controller.runStateChanged.connect(update)
    update()
    return action
