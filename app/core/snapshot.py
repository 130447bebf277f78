"""A frozen CPU copy of a model with a numpy-in, numpy-out face, for the window.

The trainer keeps changing the live model on its worker thread; the window explores snapshots
taken between steps (at each epoch end and when training ends), so a slider drag on the GUI thread
never reads weights that are half-way through an update, and no tensor crosses into the GUI.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from app.core.latent import DimensionStats, TraversalGrid, dimension_stats, interpolate, prior_samples, traversal_grid
from app.core.models.base import Autoencoder
from app.core.session import EncodedData, decode, encode_all, reconstruct


@contextlib.contextmanager
def _one_thread():
    """Run this thread's torch ops on one thread for a moment.

    The window's small decodes (one slider code, a traversal grid of at most a few hundred codes,
    a few previews) are too little work to share out, yet torch opens an OpenMP team for them, and
    every op then waits until each thread of the team got a core. While the cores are busy
    (training on the worker thread, other programs) that wait made a conv-vae slider move take up
    to 70 ms instead of 1 ms and the MLP VAE's traversal grid 26-54 ms instead of 2-4 ms (2 cores;
    bench/slider.py, bench/ui_lag.py). set_num_threads changes this thread's team only: threads
    already running (the trainer) keep theirs. Restored at once."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class ModelSnapshot:
    model: Autoencoder                      # CPU copy in eval mode; do not train it
    generation: int                         # increases every time the window's model changes
    epoch: int = 0
    info: dict = field(default_factory=dict)    # kind, loss, latent_dim, input_shape, modality, parameters

    @classmethod
    def of(cls, model: Autoencoder, generation: int, epoch: int = 0, modality: str = "image") -> "ModelSnapshot":
        frozen = copy.deepcopy(model).to("cpu").eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        info = {"kind": model.kind, "loss": model.loss_kind, "latent_dim": model.latent_dim,
                "input_shape": tuple(model.input_shape), "modality": modality, "variational": model.variational,
                "parameters": int(sum(p.numel() for p in model.parameters()))}
        return cls(model=frozen, generation=generation, epoch=epoch, info=info)

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def variational(self) -> bool:
        return self.model.variational

    def decode(self, z: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return decode(self.model, z)

    def decode_one(self, z: np.ndarray) -> np.ndarray:
        """One code (K,) -> one output (*input_shape); the slider's hot path, kept minimal."""
        with torch.inference_mode(), _one_thread():
            t = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).reshape(1, -1)
            return self.model.decode(t)[0].numpy()

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """A few samples (previews, the hovered or selected ones): on one thread, see _one_thread."""
        with torch.inference_mode(), _one_thread():
            return reconstruct(self.model, x)

    def encode_all(self, x: np.ndarray) -> EncodedData:
        with torch.inference_mode():
            return encode_all(self.model, x)

    def dimension_stats(self, encoded: EncodedData) -> DimensionStats:
        return dimension_stats(encoded.codes, encoded.logvar)

    def traversal(self, base: np.ndarray, steps: int, span: float, encoded: EncodedData | None,
                  max_dims: int = 16) -> TraversalGrid:
        with torch.inference_mode(), _one_thread():
            return traversal_grid(self.model, base, steps, span, None if encoded is None else encoded.codes,
                                  None if encoded is None else encoded.logvar, max_dims=max_dims)

    def interpolate(self, z_a: np.ndarray, z_b: np.ndarray, steps: int = 10) -> np.ndarray:
        with torch.inference_mode(), _one_thread():
            return interpolate(self.model, z_a, z_b, steps)

    def prior_samples(self, n: int = 64, seed: int = 0) -> np.ndarray:
        with torch.inference_mode(), _one_thread():
            return prior_samples(self.model, n, seed)
