"""Everything besides the weights that a run needs to continue exactly where it stopped.

    RUN_DIR/training_state.safetensors   optimizer tensors (Adam moments, step counts) and the random
                                         generators' states as uint8/uint32 tensors
    RUN_DIR/training_state.json          the scalars: epochs done, best validation loss, patience
                                         left, skipped steps, optimizer param groups, and the
                                         SHA-256 of the weights and of the tensors file it belongs to

No pickle anywhere: torch's optimizer state_dict is flattened into named tensors plus JSON, and
torch's CPU generator state (a uint8 tensor) and numpy's MT19937 state (624 uint32 keys plus
scalars) are stored as plain arrays. Loading checks sizes, names, dtypes and both checksums before
any state reaches an optimizer, so a truncated, foreign or hostile file is refused with a message.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from app.core.atomic import atomic_write_bytes, atomic_write_text
from app.core.errors import CheckpointError

STATE_TENSORS = "training_state.safetensors"
STATE_META = "training_state.json"
STATE_FORMAT = "latent-explorer-training-state"
STATE_VERSION = 1
MAX_STATE_JSON_BYTES = 4 * 1024 * 1024
_OPT_KEYS = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")


@dataclass
class TrainingState:
    """The trainer's position after `epochs_done` whole epochs."""
    epochs_done: int
    best_val: float
    best_epoch: int | None
    patience_left: int
    skipped_steps: int
    optimizers: list[dict]                 # torch optimizer state_dicts (tensors on the CPU)
    torch_rng: torch.Tensor                # torch.get_rng_state(): uint8
    shuffle_rng: torch.Tensor              # the trainer's shuffling generator: uint8
    numpy_rng: dict                        # np.random.get_state(legacy=False)
    cuda_rng: list[torch.Tensor] = field(default_factory=list)


def capture_rng() -> tuple[torch.Tensor, dict, list[torch.Tensor]]:
    cuda = [s.clone() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    return torch.get_rng_state().clone(), np.random.get_state(legacy=False), cuda


def restore_rng(state: TrainingState, shuffle: torch.Generator) -> None:
    torch.set_rng_state(state.torch_rng)
    shuffle.set_state(state.shuffle_rng)
    np.random.set_state(state.numpy_rng)
    if state.cuda_rng and torch.cuda.is_available() and len(state.cuda_rng) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state.cuda_rng)


# ---------------------------------------------------------------------------------------------
def _flatten(state: TrainingState) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors for safetensors, everything else for JSON."""
    tensors = {"rng.torch": state.torch_rng, "rng.shuffle": state.shuffle_rng,
               "rng.numpy.key": torch.from_numpy(np.asarray(state.numpy_rng["state"]["key"], np.uint32).astype(np.int64))}
    for i, s in enumerate(state.cuda_rng):
        tensors[f"rng.cuda.{i}"] = s
    optimizers = []
    for o, sd in enumerate(state.optimizers):
        per_param = {}
        for pid, entries in sd["state"].items():
            kept = {}
            for key, value in entries.items():
                if not torch.is_tensor(value):
                    kept[key] = float(value)  # old torch kept Adam's step as a Python number
                    continue
                tensors[f"opt.{o}.{pid}.{key}"] = value.detach().to("cpu").contiguous()
                kept[key] = "tensor"
            per_param[str(pid)] = kept
        optimizers.append({"param_groups": sd["param_groups"], "state": per_param})
    np_state = state.numpy_rng["state"]
    scalars = {
        "epochs_done": state.epochs_done, "best_val": state.best_val if math.isfinite(state.best_val) else None,
        "best_epoch": state.best_epoch, "patience_left": state.patience_left, "skipped_steps": state.skipped_steps,
        "optimizers": optimizers, "cuda_rng_count": len(state.cuda_rng),
        "numpy_rng": {"pos": int(np_state["pos"]), "has_gauss": int(state.numpy_rng["has_gauss"]),
                      "gauss": float(state.numpy_rng["gauss"])},
    }
    return tensors, scalars


def write_training_state(run_dir: Path, state: TrainingState, weights_sha256: str) -> None:
    """Tensors first, then the JSON that vouches for them (atomic writes, like the weights)."""
    from safetensors.torch import save as safetensors_save

    tensors, scalars = _flatten(state)
    blob = safetensors_save(tensors, metadata={"format": STATE_FORMAT})
    scalars.update(format=STATE_FORMAT, format_version=STATE_VERSION, weights_sha256=weights_sha256,
                   tensors_sha256=hashlib.sha256(blob).hexdigest())
    atomic_write_bytes(run_dir / STATE_TENSORS, blob)
    atomic_write_text(run_dir / STATE_META, json.dumps(scalars, indent=1))


def has_training_state(run_dir: str | Path) -> bool:
    run_dir = Path(run_dir)
    return (run_dir / STATE_META).exists() and (run_dir / STATE_TENSORS).exists()


def _read_scalars(run_dir: Path, weights_sha256: str) -> dict:
    path = run_dir / STATE_META
    if not path.exists() or not (run_dir / STATE_TENSORS).exists():
        raise CheckpointError(f"{run_dir}: has no training state to resume from ({STATE_META} or {STATE_TENSORS} is "
                              f"missing; runs saved before resume support cannot continue exactly): "
                              f"use --init-from {run_dir} to start a new run from its weights")
    if path.stat().st_size > MAX_STATE_JSON_BYTES:
        raise CheckpointError(f"{path}: far too large for a training state; the file is corrupt or hostile")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({str(exc)[:120]}); the file is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a Latent Explorer training state (format field missing)")
    if meta.get("format_version") != STATE_VERSION:
        raise CheckpointError(f"{path}: training-state version {meta.get('format_version')!r} is not one this app "
                              f"reads ({STATE_VERSION})")
    if meta.get("weights_sha256") != weights_sha256:
        raise CheckpointError(f"{path}: belongs to other weights than model.json describes (the last save was "
                              f"interrupted or the files were mixed); use --init-from to start a new run instead")
    for key in ("epochs_done", "patience_left", "skipped_steps", "cuda_rng_count"):
        value = meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 10**9:
            raise CheckpointError(f"{path}: {key} = {value!r} is not a whole number >= 0; the file is corrupt")
    if not isinstance(meta.get("optimizers"), list) or not isinstance(meta.get("numpy_rng"), dict):
        raise CheckpointError(f"{path}: optimizers or numpy_rng field missing; the file is incomplete")
    return meta


def _load_tensors(run_dir: Path, meta: dict) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load as safetensors_load

    path = run_dir / STATE_TENSORS
    if path.stat().st_size > 16 * 1024**3:
        raise CheckpointError(f"{path}: far too large for a training state")
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("tensors_sha256"):
        raise CheckpointError(f"{path}: does not match {STATE_META} (checksum differs); the file is truncated, "
                              f"corrupt or from another save")
    try:
        return safetensors_load(blob)
    except (SafetensorError, ValueError, RuntimeError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def _expect(tensors: dict, name: str, dtype: torch.dtype, path: Path, shape: tuple | None = None) -> torch.Tensor:
    t = tensors.get(name)
    if t is None or t.dtype != dtype or (shape is not None and tuple(t.shape) != tuple(shape)):
        got = "missing" if t is None else f"{t.dtype} {list(t.shape)}"
        raise CheckpointError(f"{path}: tensor {name} is {got}, expected {dtype}"
                              + (f" {list(shape)}" if shape is not None else "") + "; the file is corrupt")
    return t


def _optimizer_dicts(meta: dict, tensors: dict, param_shapes: list[list[tuple]], path: Path) -> list[dict]:
    """Rebuild each optimizer's state_dict, checking every tensor against its parameter's shape."""
    if len(meta["optimizers"]) != len(param_shapes):
        raise CheckpointError(f"{path}: holds {len(meta['optimizers'])} optimizer state(s), the model trains with "
                              f"{len(param_shapes)}; it belongs to another kind of model")
    out = []
    for o, (entry, shapes) in enumerate(zip(meta["optimizers"], param_shapes)):
        groups, per_param = entry.get("param_groups"), entry.get("state")
        if not isinstance(groups, list) or not isinstance(per_param, dict):
            raise CheckpointError(f"{path}: optimizer {o} is incomplete")
        for group in groups:
            if not isinstance(group, dict) or not isinstance(group.get("params"), list):
                raise CheckpointError(f"{path}: optimizer {o} has a malformed parameter group")
            for key, value in list(group.items()):
                if key != "params" and isinstance(value, list):
                    group[key] = tuple(value)   # JSON turned Adam's betas into a list
        state = {}
        for pid_text, entries in per_param.items():
            if not pid_text.isdigit() or int(pid_text) >= len(shapes) or not isinstance(entries, dict):
                raise CheckpointError(f"{path}: optimizer {o} names parameter {pid_text!r}, which the model lacks")
            pid = int(pid_text)
            state[pid] = {}
            for key, kind in entries.items():
                if key not in _OPT_KEYS:
                    raise CheckpointError(f"{path}: optimizer {o} state {key!r} is not one this app writes")
                if kind != "tensor":
                    state[pid][key] = float(kind)
                    continue
                t = tensors.get(f"opt.{o}.{pid}.{key}")
                want = () if key == "step" else shapes[pid]
                if t is None or tuple(t.shape) != tuple(want) or not t.is_floating_point():
                    raise CheckpointError(f"{path}: optimizer tensor opt.{o}.{pid}.{key} is missing or not a float "
                                          f"tensor of shape {list(want)}; the state belongs to another model")
                if not bool(torch.isfinite(t).all()):
                    raise CheckpointError(f"{path}: optimizer tensor opt.{o}.{pid}.{key} holds NaN or Inf")
                state[pid][key] = t
        out.append({"state": state, "param_groups": groups})
    return out


def read_training_state(run_dir: str | Path, weights_sha256: str, param_shapes: list[list[tuple]]) -> TrainingState:
    """param_shapes: for each optimizer, the shapes of its parameters in order (from make_optimizers)."""
    run_dir = Path(run_dir)
    path = run_dir / STATE_TENSORS
    meta = _read_scalars(run_dir, weights_sha256)
    tensors = _load_tensors(run_dir, meta)
    torch_rng = _expect(tensors, "rng.torch", torch.uint8, path, tuple(torch.get_rng_state().shape))
    shuffle_rng = _expect(tensors, "rng.shuffle", torch.uint8, path, tuple(torch.Generator().get_state().shape))
    key = _expect(tensors, "rng.numpy.key", torch.int64, path, (624,))
    np_meta = meta["numpy_rng"]
    try:
        numpy_rng = {"bit_generator": "MT19937",
                     "state": {"key": key.numpy().astype(np.uint32), "pos": int(np_meta["pos"])},
                     "has_gauss": int(np_meta["has_gauss"]), "gauss": float(np_meta["gauss"])}
        if not 0 <= numpy_rng["state"]["pos"] <= 624:
            raise ValueError("pos out of range")
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{run_dir / STATE_META}: numpy_rng is malformed ({exc})") from None
    cuda = [_expect(tensors, f"rng.cuda.{i}", torch.uint8, path) for i in range(meta["cuda_rng_count"])]
    best_val = meta.get("best_val")
    best_epoch = meta.get("best_epoch")
    if not (best_val is None or isinstance(best_val, (int, float))) or not (best_epoch is None or isinstance(best_epoch, int)):
        raise CheckpointError(f"{run_dir / STATE_META}: best_val/best_epoch are malformed")
    return TrainingState(
        epochs_done=meta["epochs_done"], best_val=math.inf if best_val is None else float(best_val),
        best_epoch=best_epoch, patience_left=meta["patience_left"], skipped_steps=meta["skipped_steps"],
        optimizers=_optimizer_dicts(meta, tensors, param_shapes, path), torch_rng=torch_rng,
        shuffle_rng=shuffle_rng, numpy_rng=numpy_rng, cuda_rng=cuda)


def optimizer_param_shapes(optimizers: list[torch.optim.Optimizer]) -> list[list[tuple]]:
    return [[tuple(p.shape) for group in opt.param_groups for p in group["params"]] for opt in optimizers]
