"""Training faults: NaN steps skipped and counted, posterior collapse warned about, out-of-memory
turned into a message, cancel within 2 s mid-epoch, pause/resume from another thread."""

from __future__ import annotations

import csv
import random
import threading
import time

import numpy as np
import pytest
import torch

from app.core.checkpoint import load_run, save_run
from app.core.collapse import check_posterior_collapse, collapse_warning, warmup_epochs_for
from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.models import build_model
from app.core.session import prepare_training
from app.core.trainer import EpochResult, TrainControl, TrainFinished, TrainProgress, Trainer, train_to_end


def small(kind="ae", epochs=2, data="digits", model=None, **train):
    model_cfg = ModelConfig(kind=kind, latent_dim=4, hidden=(32,), **(model or {}))
    return prepare_training(DataConfig(spec=data, limit=600), model_cfg, TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, **train))


# ---- NaN / Inf -------------------------------------------------------------------------------

def test_skipped_steps_reach_progress_and_metrics_csv(tmp_path):
    prepared = small(epochs=2, nan_policy="skip")
    trainer = prepared.trainer
    trainer.report_interval_s = 0.0
    x = trainer._train_x.copy()
    x[3] = np.inf        # one bad sample: one skipped step per epoch
    trainer._train_x = x
    events = list(trainer.run())
    finished = events[-1]
    assert finished.reason == "completed", finished.message
    assert [e.skipped_steps for e in events if isinstance(e, EpochResult)] == [1, 2]
    assert max(e.skipped_steps for e in events if isinstance(e, TrainProgress)) >= 1
    save_run(tmp_path, prepared.model, data_cfg=DataConfig(), train_cfg=trainer.cfg, modality="image",
             history=trainer.history)
    with open(tmp_path / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(float(r["skipped_steps"])) for r in rows] == [1, 2]
    assert [h["skipped_steps"] for h in load_run(tmp_path).history] == [1.0, 2.0]
    assert all(torch.isfinite(p).all() for p in prepared.model.parameters())


def test_skip_policy_gives_up_and_keeps_good_weights_when_every_step_is_bad():
    prepared = small(epochs=3, nan_policy="skip")
    trainer = prepared.trainer
    trainer._train_x = np.full_like(trainer._train_x, np.nan)
    before = {k: v.clone() for k, v in prepared.model.state_dict().items()}
    finished = train_to_end(trainer)
    assert finished.reason == "diverged" and "NaN" in finished.message
    for k, v in prepared.model.state_dict().items():
        assert torch.equal(v, before[k])


# ---- posterior collapse ----------------------------------------------------------------------

def test_collapse_warning_rules():
    k = np.full(8, 0.001)
    assert collapse_warning(k, 0, epoch=1, warmup_epochs=5) is None            # still warming up
    text = collapse_warning(k, 0, epoch=6, warmup_epochs=5, beta=500)
    assert "posterior collapse" in text and "0 of 8" in text
    for remedy in ("KL annealing", "smaller beta (now 500)", "weaker decoder"):
        assert remedy in text
    assert collapse_warning(np.full(8, 0.5), 3, epoch=6, warmup_epochs=5) is None
    assert collapse_warning(np.full(8, 0.5), 0, epoch=6, warmup_epochs=5) is not None   # no active unit
    assert collapse_warning(np.full(8, 0.005), 2, epoch=6, warmup_epochs=5) is not None  # KL under 0.01
    assert collapse_warning(0.004, 1, epoch=2, warmup_epochs=1) is not None            # scalar mean per dim
    assert collapse_warning([np.nan], 0, epoch=9, warmup_epochs=1) is None
    assert warmup_epochs_for(TrainConfig(kl_anneal="linear", kl_warmup_epochs=7)) == 7
    assert warmup_epochs_for(TrainConfig()) == 1


def test_a_vae_with_huge_beta_collapses_and_is_warned_about_but_beta_1_is_not():
    collapsed = small("vae", epochs=4, model={"beta": 500.0})
    finished = train_to_end(collapsed.trainer)
    assert finished.reason == "completed"
    x_val = collapsed.data.x[collapsed.val_idx]
    collapsed.model.train()
    warning = check_posterior_collapse(collapsed.model, x_val, epoch=4, warmup_epochs=1)
    assert warning is not None and "posterior collapse" in warning and "beta (now 500)" in warning
    assert collapsed.model.training   # the check left the training mode as it was
    assert check_posterior_collapse(collapsed.model, x_val, epoch=1, warmup_epochs=1) is None

    healthy = small("vae", epochs=4)
    train_to_end(healthy.trainer)
    assert check_posterior_collapse(healthy.model, healthy.data.x[healthy.val_idx], epoch=4, warmup_epochs=1) is None
    plain = small("ae", epochs=1)
    assert check_posterior_collapse(plain.model, plain.data.x[:100], epoch=4, warmup_epochs=1) is None


# ---- out of memory ---------------------------------------------------------------------------

@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB, other allocations: 1.2 GB)"),
])
def test_out_of_memory_mid_training_is_a_message_and_the_process_goes_on(monkeypatch, error):
    prepared = small(epochs=3)
    real_step = prepared.model.training_step
    calls = {"n": 0}

    def step_then_oom(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:          # in the second epoch (8 steps each), after good steps
            raise error
        return real_step(*args, **kwargs)

    monkeypatch.setattr(prepared.model, "training_step", step_then_oom)
    finished = train_to_end(prepared.trainer)
    assert finished.reason == "failed" and not finished.ok
    assert "out of memory" in finished.message
    assert "batch size 64" in finished.message and "lower the batch size" in finished.message
    assert "hidden sizes" in finished.message
    assert finished.epochs_run == 1 and len(prepared.trainer.history) == 1
    assert all(torch.isfinite(p).all() for p in prepared.model.parameters())
    # The same process trains on: the model is usable and a new trainer runs to the end.
    monkeypatch.setattr(prepared.model, "training_step", real_step)
    again = Trainer(prepared.model, prepared.trainer._train_x, None, TrainConfig(epochs=1, batch_size=64))
    assert train_to_end(again).reason == "completed"


def test_out_of_memory_on_a_worker_thread_reaches_the_consumer(monkeypatch):
    prepared = small(epochs=1)

    def boom(*_a, **_k):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(prepared.model, "training_step", boom)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("finished", train_to_end(prepared.trainer)))
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    assert "out of memory" in result["finished"].message


# ---- cancel ----------------------------------------------------------------------------------

def _run_in_thread(trainer, control):
    events: list = []
    first_progress = threading.Event()
    finished = threading.Event()

    def work():
        for event in trainer.run(control):
            events.append(event)
            if isinstance(event, TrainProgress):
                first_progress.set()
            if isinstance(event, TrainFinished):
                finished.set()
        first_progress.set()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, events, first_progress, finished


@pytest.mark.parametrize("paused", [False, True])
def test_cancel_returns_within_2_seconds_in_the_middle_of_a_long_epoch(paused):
    rng = np.random.default_rng(0)
    x = rng.random((200_000, 64), dtype=np.float32)     # batch 1: an epoch of 160,000 steps (minutes)
    model = build_model(ModelConfig(kind="vae", latent_dim=4, hidden=(64,)), (64,), "tabular", "mse")
    trainer = Trainer(model, x[:160_000], x[160_000:], TrainConfig(epochs=5, batch_size=1), report_interval_s=0.05)
    control = TrainControl()
    thread, events, first_progress, finished = _run_in_thread(trainer, control)
    assert first_progress.wait(60)
    time.sleep(0.3)
    if paused:
        control.pause()
        time.sleep(0.3)
    t0 = time.perf_counter()
    control.stop()
    assert finished.wait(10)
    waited = time.perf_counter() - t0
    thread.join(5)
    assert not thread.is_alive()
    assert waited < 2.0, f"cancel took {waited:.2f} s"
    assert events[-1].reason == "cancelled" and events[-1].epochs_run == 0
    assert not any(isinstance(e, EpochResult) for e in events)         # it really was mid-epoch
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_closing_the_generator_is_a_cancel_too():
    prepared = small(epochs=100)
    prepared.trainer.report_interval_s = 0.0
    gen = prepared.trainer.run()
    for event in gen:
        if isinstance(event, TrainProgress):
            break
    gen.close()
    assert all(torch.isfinite(p).all() for p in prepared.model.parameters())


# ---- pause / resume from another thread -----------------------------------------------------

def test_pause_resume_from_another_thread_gives_the_same_weights_as_an_uninterrupted_run():
    reference = small("vae", epochs=3)
    train_to_end(reference.trainer)

    prepared = small("vae", epochs=3)
    prepared.trainer.report_interval_s = 0.0
    control = TrainControl()
    control.pause()                     # the first pause surely lands: before the first step
    thread, events, first_progress, finished = _run_in_thread(prepared.trainer, control)
    rng = random.Random(1)
    pauses = 1
    time.sleep(0.2)
    assert not events                   # paused: nothing happened yet
    while True:
        control.resume()
        time.sleep(rng.uniform(0.0, 0.02))
        if finished.is_set() or pauses >= 8:
            break
        control.pause()                 # later pauses land wherever the loop happens to be
        pauses += 1
        time.sleep(rng.uniform(0.0, 0.1))
    assert finished.wait(60)
    thread.join(5)
    assert events[-1].reason == "completed"
    for (name, a), b in zip(reference.model.state_dict().items(), prepared.model.state_dict().values()):
        assert torch.equal(a, b), name
