"""The window's shared state: one QObject that every view reads and listens to.

Views never talk to each other; they write here and react to these signals. That keeps the
linked behaviour (hover in one projection highlights the sample everywhere and shows its
reconstruction) in one place, as napari does with its layer events. A view that writes a value
it also listens to must ignore its own echo (compare before redrawing).

Everything held here is numpy or a core dataclass; no tensors.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch-backed types: the window must appear before torch has loaded
    from app.core.data.dataset import Dataset
    from app.core.session import EncodedData
    from app.core.snapshot import ModelSnapshot

MAX_EXPLORED_SAMPLES = 10_000   # the default number of samples the views explore (a seeded subset)
EXPLORE_ALL = 0                 # explore_limit value meaning "every sample"


def explored_indices(n: int, limit: int, seed: int) -> np.ndarray:
    """The sorted indices of the samples the window explores: all n when limit is EXPLORE_ALL or at
    least n, else the first `limit` of a seeded permutation. The same seed gives the same subset, and
    a larger limit's subset contains a smaller one's (raising the limit only adds samples)."""
    if limit == EXPLORE_ALL or limit >= n:
        return np.arange(n, dtype=np.int64)
    if limit < 1:
        raise ValueError(f"cannot explore {limit} samples: choose at least 1, or {EXPLORE_ALL} for all of them")
    # Its own stream ([seed, 1]), so the reconstruction preview (drawn from `seed`) stays put when the limit changes.
    order = np.random.default_rng([seed, 1]).permutation(n)
    return np.sort(order[:limit]).astype(np.int64)


class ExplorerState(QObject):
    dataChanged = Signal()            # `data` and `view_idx` replaced (the model may no longer fit it)
    snapshotChanged = Signal()        # `snapshot` replaced: a new epoch, a finished run, a loaded run
    encodedChanged = Signal()         # `encoded` recomputed for data.x[view_idx] with `snapshot`
    selectionChanged = Signal()       # `selection` (positions into view_idx) changed
    hoverChanged = Signal(int)        # position into view_idx under the mouse, -1 for none
    historyChanged = Signal()         # `history` (metrics rows, app/core/run.py) changed
    reconstructionPreviewChanged = Signal()  # `preview_recon` for `preview_idx` refreshed during training
    messageRaised = Signal(str, str)  # (level: info|warning|error, text) for the status bar / dialogs

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.data: Dataset | None = None
        self.view_idx: np.ndarray = np.zeros(0, dtype=np.int64)   # indices into data.x that views show
        self.preview_idx: np.ndarray = np.zeros(0, dtype=np.int64)  # a few samples for the recon grid
        self.snapshot: ModelSnapshot | None = None
        self.encoded: EncodedData | None = None
        self.preview_recon: np.ndarray | None = None
        self.selection: np.ndarray = np.zeros(0, dtype=np.int64)
        self.hover: int = -1
        self.history: list = []
        self.generation = 0   # bumps whenever the model changes; stale async results are dropped
        # The one DataConfig of the current data: how it was loaded and the split (and normal
        # classes) the current model was trained with; the analyses measure with it.
        self.data_cfg = None
        self.run_seed = 0   # TrainConfig.seed of the current model: UMAP and t-SNE are seeded with it
        # How many samples the views explore (EXPLORE_ALL: every one); a user setting, persisted by
        # the window (window_settings.py). Encoding, maps and analyses grow with it.
        self.explore_limit = MAX_EXPLORED_SAMPLES
        self._explore_seed = 0   # the seed the current subset was drawn with

    # --- writers ------------------------------------------------------------------------------
    def set_data(self, data: Dataset, cfg=None, seed: int | None = None) -> None:
        """New data: everything that pointed into the old data (selection, hover, encodings) is
        cleared here, in one place, and said so by signal, so no view keeps a stale one."""
        had_selection, had_hover = len(self.selection) > 0, self.hover >= 0
        self.data = data
        if cfg is not None:
            self.data_cfg = cfg
        seed = (int(cfg.split_seed) if cfg is not None else 0) if seed is None else seed
        n = data.n
        self._explore_seed = seed
        self.view_idx = explored_indices(n, self.explore_limit, seed)
        self.preview_idx = np.sort(np.random.default_rng(seed).choice(n, min(16, n), replace=False))
        self._clear_explored(had_selection, had_hover)

    def set_explore_limit(self, limit: int) -> bool:
        """Explore at most `limit` samples (EXPLORE_ALL: all). With data open, the subset is drawn again
        with the same seed (nested: a larger limit keeps the smaller one's samples) and everything that
        pointed into the old subset is cleared, as for new data. Returns whether view_idx changed."""
        limit = int(limit)
        if limit != EXPLORE_ALL and limit < 1:
            raise ValueError(f"cannot explore {limit} samples: choose at least 1, or {EXPLORE_ALL} for all of them")
        self.explore_limit = limit
        if self.data is None:
            return False
        view_idx = explored_indices(self.data.n, limit, self._explore_seed)
        if np.array_equal(view_idx, self.view_idx):
            return False
        had_selection, had_hover = len(self.selection) > 0, self.hover >= 0
        self.view_idx = view_idx
        self._clear_explored(had_selection, had_hover, keep_preview=True)   # preview_idx did not change
        return True

    def _clear_explored(self, had_selection: bool, had_hover: bool, keep_preview: bool = False) -> None:
        self.encoded = None
        if not keep_preview:
            self.preview_recon = None
        self.selection = np.zeros(0, dtype=np.int64)
        self.hover = -1
        self.dataChanged.emit()
        if had_selection:
            self.selectionChanged.emit()
        if had_hover:
            self.hoverChanged.emit(-1)

    def set_snapshot(self, snapshot: ModelSnapshot | None) -> None:
        self.snapshot = snapshot
        self.generation = snapshot.generation if snapshot is not None else self.generation + 1
        self.snapshotChanged.emit()

    def next_generation(self) -> int:
        """A new model is about to appear (training started, run loaded): invalidate pending work."""
        self.generation += 1
        return self.generation

    def set_encoded(self, encoded: EncodedData | None, generation: int) -> bool:
        """Accept an encoding only if it was made from the current model; returns whether it was."""
        if generation != self.generation:
            return False
        self.encoded = encoded
        self.encodedChanged.emit()
        return True

    def set_preview(self, recon: np.ndarray | None) -> None:
        self.preview_recon = recon
        self.reconstructionPreviewChanged.emit()

    def set_selection(self, positions) -> None:
        positions = np.unique(np.asarray(positions, dtype=np.int64))
        if np.array_equal(positions, self.selection):
            return  # block the echo: the view that selected is already showing it
        self.selection = positions
        self.selectionChanged.emit()

    def set_hover(self, position: int) -> None:
        if position == self.hover:
            return
        self.hover = int(position)
        self.hoverChanged.emit(self.hover)

    def set_history(self, history: list) -> None:
        self.history = list(history)
        self.historyChanged.emit()

    def append_history(self, row) -> None:
        self.history.append(row)
        self.historyChanged.emit()

    def info(self, text: str) -> None:
        self.messageRaised.emit("info", text)

    def warn(self, text: str) -> None:
        self.messageRaised.emit("warning", text)

    def error(self, text: str) -> None:
        self.messageRaised.emit("error", text)

    # --- readers ------------------------------------------------------------------------------
    def sample(self, position: int) -> np.ndarray | None:
        """The input behind a view position, or None."""
        if self.data is None or not 0 <= position < len(self.view_idx):
            return None
        return self.data.x[self.view_idx[position]]

    def labels(self) -> np.ndarray | None:
        if self.data is None or self.data.y is None:
            return None
        return self.data.y[self.view_idx]

    def factors(self) -> np.ndarray | None:
        if self.data is None or self.data.factors is None:
            return None
        return self.data.factors[self.view_idx]
