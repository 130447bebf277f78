"""Run directories: the contract between the CLI, the window and other people's machines.

    RUN_DIR/model.safetensors   weights (safetensors: no code can run while loading)
    RUN_DIR/model.json          everything needed to rebuild and explain the model
    RUN_DIR/metrics.csv         one row per epoch

Saving writes the weights first and model.json last, each atomically; model.json records the
SHA-256 of the weights it describes. So a run directory either loads completely, or loading says
plainly that it holds no finished checkpoint (an interrupted save, a file from another run).
Saving over an existing checkpoint first keeps the old weights as a hard link,
.model.safetensors.previous, until the new model.json is in place: a save killed between the two
renames leaves the old model.json and the old weights, which load_run finds by their checksum.
Loading never unpickles: model.json is parsed as JSON with size limits, every field is checked
before the model is built, and the tensors' names, shapes and dtypes are compared with the
freshly built model before any weight is copied.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

import app
from app.core.atomic import atomic_write_bytes, atomic_write_text, remove_stale_temporaries
from app.core.config import DataConfig, ModelConfig, TrainConfig, from_dict, to_dict
from app.core.errors import CheckpointError, LatentExplorerError
from app.core.models import build_model
from app.core.models.base import Autoencoder
from app.core.run import MAX_JSON_BYTES, META, METRICS, Run  # noqa: F401 - re-exported

FORMAT = "latent-explorer-run"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
PREVIOUS_WEIGHTS = ".model.safetensors.previous"   # the last finished weights while a save is under way
MAX_INPUT_ELEMENTS = 64 * 1024 * 1024    # 64 M values per sample is far past any real image or row


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def save_run(run_dir: str | Path, model: Autoencoder, *, data_cfg: DataConfig, train_cfg: TrainConfig,
             modality: str, data_info: dict | None = None, history: list | None = None,
             metrics: dict | None = None, training_state=None) -> Path:
    """Write a complete run directory. training_state (Trainer.training_state()) adds the optimizer
    and random-generator state that `train --resume` needs (app/core/training_state.py).
    Raises CheckpointError with the reason (disk full, read-only folder) and leaves any previous
    checkpoint in the folder intact."""
    from safetensors.torch import save as safetensors_save  # lazy: keeps start-up light

    run_dir = Path(run_dir)
    kept_previous = weights_replaced = False
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        weights = safetensors_save(state, metadata={"format": FORMAT})
        digest = hashlib.sha256(weights).hexdigest()
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": model.kind,
            "input_shape": list(model.input_shape),
            "modality": modality,
            "loss": model.loss_kind,
            "model": to_dict(model.cfg),
            "data": to_dict(data_cfg),
            "data_info": data_info or {},
            "train": to_dict(train_cfg),
            "metrics": metrics or {},
            "tensors": {k: {"shape": list(v.shape), "dtype": _dtype_name(v)} for k, v in state.items()},
            "weights_sha256": digest,
            "parameters": int(sum(v.numel() for v in model.parameters())),
            "versions": {"app": app.__version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        remove_stale_temporaries(run_dir, (WEIGHTS, META, METRICS, PREVIOUS_WEIGHTS))
        kept_previous = _keep_previous_weights(run_dir)
        atomic_write_bytes(run_dir / WEIGHTS, weights)
        weights_replaced = True
        if history is not None:
            atomic_write_text(run_dir / METRICS, metrics_csv(history))
        if training_state is not None:  # before model.json; it names the weights it belongs to
            from app.core.training_state import write_training_state
            write_training_state(run_dir, training_state, digest)
        atomic_write_text(run_dir / META, json.dumps(meta, indent=2, default=_json_default))
        try:
            os.unlink(run_dir / PREVIOUS_WEIGHTS)
        except FileNotFoundError:
            pass
    except OSError as exc:
        if kept_previous and not weights_replaced and _unchanged(run_dir / WEIGHTS, run_dir / PREVIOUS_WEIGHTS):
            try:  # the weights in place are still the finished ones: the copy is not needed
                os.unlink(run_dir / PREVIOUS_WEIGHTS)
            except OSError:
                pass
        raise CheckpointError(f"could not save the run to {run_dir}: {exc.strerror or exc}; "
                              f"free some space or choose a writable folder (the previous checkpoint there is intact)") from exc
    return run_dir


def _keep_previous_weights(run_dir: Path) -> bool:
    """Before the weights are replaced, keep the finished ones under PREVIOUS_WEIGHTS (a hard link:
    no copy) so that the old model.json still has its weights if this save is killed halfway.
    If a copy is already there, an earlier save was interrupted: keep whichever of the two files
    model.json vouches for."""
    weights, previous = run_dir / WEIGHTS, run_dir / PREVIOUS_WEIGHTS
    if not weights.exists():
        return False
    if previous.exists():
        try:
            vouched = json.loads((run_dir / META).read_text(encoding="utf-8"))["weights_sha256"]
            current = hashlib.sha256(weights.read_bytes()).hexdigest()
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if current != vouched:
            return False  # the previous copy is the one model.json describes: keep it
    link = run_dir / f".{WEIGHTS}.{os.urandom(4).hex()}.tmp"   # named like a temporary: cleaned up if left
    try:
        try:
            os.link(weights, link)
        except OSError:  # a filesystem without hard links (FAT, some shares): copy instead
            atomic_write_bytes(previous, weights.read_bytes())
            return True
        os.replace(link, previous)
        return True
    finally:
        link.unlink(missing_ok=True)


def _unchanged(weights: Path, previous: Path) -> bool:
    """Whether the weights file is still the one kept as previous (the rename may have happened
    even though atomic_write_bytes failed afterwards, e.g. fsync of the folder)."""
    try:
        return os.path.samefile(weights, previous) or weights.read_bytes() == previous.read_bytes()
    except OSError:
        return False


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


METRIC_COLUMNS = ("epoch", "train_loss", "val_loss")


def metrics_rows(history: list) -> list[dict]:
    """The one place where the trainer's EpochResults become metrics rows (dicts); rows pass through.
    save_run and the autosaves take either, everything that reads history gets rows."""
    return [h if isinstance(h, dict) else epoch_row(h) for h in history]


def metrics_csv(history: list) -> str:
    rows = metrics_rows(history)
    columns = list(METRIC_COLUMNS)
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    return out.getvalue()


def epoch_row(result) -> dict:
    row = {"epoch": result.epoch, "train_loss": result.train_loss,
           "val_loss": "" if result.val_loss is None else result.val_loss}
    for k, v in result.train.items():
        if k != "total":
            row[f"train_{k}"] = v
    for k, v in (result.val or {}).items():
        if k != "total":
            row[f"val_{k}"] = v
    row.update(seconds=round(result.seconds, 4), beta=result.beta, lr=result.lr, skipped_steps=result.skipped_steps)
    return row


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = []
            for row in csv.DictReader(handle):
                rows.append({k: (float(v) if v not in ("", None) else None) for k, v in row.items() if k})
            return rows
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise CheckpointError(f"{path}: metrics.csv is unreadable ({exc}); delete it to open the model without its history") from exc


def read_meta(run_dir: Path) -> dict:
    meta_path = run_dir / META
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    if not meta_path.exists():
        raise CheckpointError(f"{run_dir}: holds no finished checkpoint ({META} is missing); "
                              f"the save was interrupted or this is not a run directory")
    try:
        size = meta_path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise CheckpointError(f"{meta_path}: {size:,} bytes is far too large for a model description")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError as exc:  # bad UTF-8, bad JSON, or an integer too long for int() (Python >= 3.11)
        raise CheckpointError(f"{meta_path}: not valid JSON ({str(exc)[:200]}); the file is corrupt") from exc
    except RecursionError:
        raise CheckpointError(f"{meta_path}: JSON nested too deeply; the file is corrupt or hostile") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: not a Latent Explorer model description (format field missing)")
    required = ("kind", "input_shape", "modality", "loss", "model", "data", "train", "tensors", "weights_sha256")
    missing = [k for k in required if k not in meta]
    if missing:
        raise CheckpointError(f"{meta_path}: missing field(s) {', '.join(missing)}; the file is incomplete")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{meta_path}: format_version {version!r} is missing or not a positive whole number")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: format version {version} is newer than this app "
                              f"understands ({FORMAT_VERSION}); update Latent Explorer")
    shape = meta["input_shape"]
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise CheckpointError(f"{meta_path}: input_shape {shape!r} is not a list of 1-3 positive sizes")
    if int(np.prod(shape)) > MAX_INPUT_ELEMENTS:
        raise CheckpointError(f"{meta_path}: input_shape {shape} would need absurd memory; refusing to build it")
    if meta["modality"] not in ("image", "sequence", "tabular") or meta["loss"] not in ("bce", "mse"):
        raise CheckpointError(f"{meta_path}: unknown modality {meta['modality']!r} or loss {meta['loss']!r}")
    if not isinstance(meta["tensors"], dict):
        raise CheckpointError(f"{meta_path}: the tensors field must be an object")
    return meta


def _object(value) -> dict:
    """An optional JSON object of model.json (data_info, metrics): a copy, or {} when absent or not an object."""
    return dict(value) if isinstance(value, dict) else {}


def _previous_weights(run_dir: Path, sha256: str, max_bytes: int) -> bytes | None:
    path = run_dir / PREVIOUS_WEIGHTS
    try:
        if not 0 < path.stat().st_size <= max_bytes:
            return None
        blob = path.read_bytes()
    except OSError:
        return None
    return blob if hashlib.sha256(blob).hexdigest() == sha256 else None


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> Run:
    """Rebuild the model from model.json and copy in the weights, checking everything first."""
    from safetensors import SafetensorError
    from safetensors.torch import load as safetensors_load

    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    try:
        model_cfg = from_dict(ModelConfig, meta["model"])
        data_cfg = from_dict(DataConfig, meta["data"], strict=False)
        train_cfg = from_dict(TrainConfig, meta["train"], strict=False)
    except LatentExplorerError as exc:
        raise CheckpointError(f"{run_dir / META}: {exc}") from exc
    if model_cfg.kind != meta["kind"]:
        raise CheckpointError(f"{run_dir / META}: kind {meta['kind']!r} disagrees with model.kind {model_cfg.kind!r}")
    try:
        model = build_model(model_cfg, tuple(meta["input_shape"]), meta["modality"], meta["loss"])
    except LatentExplorerError as exc:
        raise CheckpointError(f"{run_dir / META}: cannot rebuild the model: {exc}") from exc

    weights_path = run_dir / WEIGHTS
    if not weights_path.exists():
        raise CheckpointError(f"{run_dir}: holds no finished checkpoint ({WEIGHTS} is missing)")
    expected = {k: (tuple(v.shape), _dtype_name(v)) for k, v in model.state_dict().items()}
    max_bytes = sum(int(np.prod(s)) * 8 for s, _ in expected.values()) + MAX_JSON_BYTES
    size = weights_path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{weights_path}: the file is empty (0 bytes); the save was interrupted")
    if size > max_bytes:
        raise CheckpointError(f"{weights_path}: {size:,} bytes is far more than this model's weights need")
    blob = weights_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta["weights_sha256"]:
        previous = _previous_weights(run_dir, meta["weights_sha256"], max_bytes)
        if previous is None:
            raise CheckpointError(f"{weights_path}: holds no finished checkpoint: the weights do not match model.json "
                                  f"(checksum differs); a save was interrupted, or the file is truncated, corrupt or "
                                  f"from another save")
        blob = previous  # a save over this run was interrupted: model.json still describes these
    try:
        state = safetensors_load(blob)
    except (SafetensorError, ValueError, RuntimeError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{weights_path}: not a readable safetensors file ({exc})") from exc
    if set(state) != set(expected):
        missing = sorted(set(expected) - set(state))[:3]
        extra = sorted(set(state) - set(expected))[:3]
        raise CheckpointError(f"{weights_path}: tensor names do not match a {meta['kind']} model "
                              f"(missing {missing}, unexpected {extra})")
    for name, tensor in state.items():
        shape, dtype = expected[name]
        if tuple(tensor.shape) != shape or _dtype_name(tensor) != dtype:
            raise CheckpointError(f"{weights_path}: tensor {name} is {_dtype_name(tensor)}{list(tensor.shape)}, "
                                  f"the model needs {dtype}{list(shape)}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{weights_path}: tensor {name} contains NaN or Inf values")
    model.load_state_dict(state)
    model.to(device)
    model.eval()
    history = read_metrics(run_dir / METRICS)
    return Run(model=model, data_cfg=data_cfg, model_cfg=model_cfg, train_cfg=train_cfg, modality=meta["modality"],
               data_info=_object(meta.get("data_info")), history=history, metrics=_object(meta.get("metrics")),
               meta=meta, path=run_dir)
