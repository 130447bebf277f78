"""The training loop: every kind learns, pause/resume/cancel, NaN handling, early stopping."""

import math

import numpy as np
import pytest
import torch

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.errors import ConfigError
from app.core.session import prepare_training
from app.core.trainer import EpochResult, TrainControl, TrainFinished, TrainProgress, kl_weight, train_to_end

# Each kind on a fitting built-in data set, small enough to train in a few seconds.
KIND_DATA = {
    "ae": "digits", "sparse": "digits", "denoising": "digits", "contractive": "digits", "vae": "digits",
    "conv-ae": "digits", "conv-vae": "digits", "rnn-ae": "sines", "aae": "digits",
}


def small(kind: str, epochs: int = 4, **train):
    data = DataConfig(spec=KIND_DATA[kind], n_samples=600 if KIND_DATA[kind] == "sines" else 0)
    model = ModelConfig(kind=kind, latent_dim=4, hidden=(64,), channels=(8, 16), rnn_hidden=32)
    settings = {"epochs": epochs, "batch_size": 64, "lr": 2e-3, **train}
    return prepare_training(data, model, TrainConfig(**settings))


@pytest.mark.parametrize("kind", list(KIND_DATA))
def test_every_kind_trains_with_finite_decreasing_loss(kind):
    prepared = small(kind)
    finished = train_to_end(prepared.trainer)
    assert finished.reason == "completed", finished.message
    losses = [h.train_loss for h in prepared.trainer.history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], f"{kind}: {losses}"
    assert all(h.val_loss is not None and math.isfinite(h.val_loss) for h in prepared.trainer.history)


def test_events_come_in_order_and_report_progress():
    prepared = small("vae", epochs=2)
    prepared.trainer.report_interval_s = 0.0
    events = list(prepared.trainer.run())
    assert isinstance(events[-1], TrainFinished)
    progress = [e for e in events if isinstance(e, TrainProgress)]
    epochs = [e for e in events if isinstance(e, EpochResult)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert progress and progress[-1].fraction == pytest.approx(1.0)
    assert {"reconstruction", "kl", "total"} <= set(progress[-1].parts)
    assert progress[-1].samples_per_second > 0


def test_cancel_between_steps_keeps_a_usable_model():
    prepared = small("vae", epochs=50)
    control = TrainControl()
    events = []
    for event in prepared.trainer.run(control):
        events.append(event)
        if isinstance(event, EpochResult) and event.epoch == 2:
            control.stop()
    assert events[-1].reason == "cancelled"
    assert all(torch.isfinite(p).all() for p in prepared.model.parameters())


def test_pause_then_resume_gives_the_same_weights_as_an_uninterrupted_run():
    a = small("vae", epochs=3)
    train_to_end(a.trainer)
    b = small("vae", epochs=3)
    control = TrainControl()
    b.trainer.report_interval_s = 0.0
    gen = b.trainer.run(control)
    paused_once = False
    import threading
    for event in gen:
        if isinstance(event, TrainProgress) and not paused_once:
            paused_once = True
            control.pause()
            threading.Timer(0.3, control.resume).start()
    for pa, pb in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(pa, pb)


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_weights():
    prepared = small("ae", epochs=3)
    trainer = prepared.trainer
    x = trainer._train_x.copy()
    x[5:] = np.nan       # every batch after shuffling will meet a NaN
    trainer._train_x = x
    before = {k: v.clone() for k, v in prepared.model.state_dict().items()}
    finished = train_to_end(trainer)
    assert finished.reason == "diverged"
    assert "NaN" in finished.message and "learning rate" in finished.message
    for k, v in prepared.model.state_dict().items():
        assert torch.isfinite(v).all()
        assert torch.equal(v, before[k])


def test_nan_skip_policy_counts_skipped_steps_and_halves_the_learning_rate():
    prepared = small("ae", epochs=1, nan_policy="skip")
    trainer = prepared.trainer
    x = trainer._train_x.copy()
    x[0] = np.nan       # one bad sample: only the batch holding it is skipped
    trainer._train_x = x
    finished = train_to_end(trainer)
    assert finished.reason == "completed"
    assert trainer.history[-1].skipped_steps == 1
    assert trainer.history[-1].lr == pytest.approx(2e-3 / 2)


def test_early_stopping_restores_the_best_weights():
    prepared = small("ae", epochs=40, patience=2, lr=0.05)  # a high rate makes validation wobble
    finished = train_to_end(prepared.trainer)
    assert finished.reason in ("early_stopped", "completed")
    best = min(h.val_loss for h in prepared.trainer.history)
    assert prepared.trainer.history[finished.best_epoch - 1].val_loss == pytest.approx(best)
    val = torch.as_tensor(prepared.data.x[prepared.val_idx])
    torch.manual_seed(0)
    assert prepared.trainer.evaluate(val, beta=1.0)["total"] == pytest.approx(best, rel=1e-4)


def test_kl_annealing_schedules():
    cfg = TrainConfig(kl_anneal="linear", kl_warmup_epochs=4)
    assert kl_weight(cfg, 0) == 0 and kl_weight(cfg, 2) == 0.5 and kl_weight(cfg, 10) == 1
    cyc = TrainConfig(kl_anneal="cyclical", kl_warmup_epochs=4)
    assert kl_weight(cyc, 1) == 0.5 and kl_weight(cyc, 3) == 1 and kl_weight(cyc, 4) == 0
    assert kl_weight(TrainConfig(), 0) == 1


def test_optimisers_weight_penalties_and_clipping_all_train():
    for optimizer in ("adam", "adamw", "sgd"):
        prepared = small("ae", epochs=2, optimizer=optimizer, weight_decay=1e-4, l1_weight=1e-6, grad_clip=1.0)
        finished = train_to_end(prepared.trainer)
        assert finished.reason == "completed"
        assert "l1" in prepared.trainer.history[-1].train


def test_impossible_settings_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="validation"):
        prepare_training(DataConfig(spec="digits", val_fraction=0.0), ModelConfig(kind="ae"), TrainConfig(patience=3))
    with pytest.raises(ConfigError, match="lr"):
        prepare_training(DataConfig(spec="digits"), ModelConfig(kind="ae"), TrainConfig(lr=-1.0))


def test_a_small_table_trains_with_the_batch_clamped_to_the_training_split(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "small.npz", x=rng.standard_normal((128, 6)))          # 102 train / 26 validation
    prepared = prepare_training(DataConfig(spec=str(tmp_path / "small.npz")), ModelConfig(kind="ae", latent_dim=2,
                                hidden=(8,)), TrainConfig(batch_size=128, epochs=2, device="cpu"))
    assert len(prepared.train_idx) == 102 and prepared.trainer.cfg.batch_size == 102
    assert prepared.trainer.warnings == ["only 102 training samples but the batch size is 128: training with "
                                         "batches of 102 (the whole training split)"]
    finished = train_to_end(prepared.trainer)
    assert finished.reason == "completed" and len(prepared.trainer.history) == 2


def test_out_of_memory_becomes_a_message(monkeypatch):
    prepared = small("ae", epochs=1)

    def boom(*_args, **_kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(prepared.model, "training_step", boom)
    finished = train_to_end(prepared.trainer)
    assert finished.reason == "failed"
    assert "out of memory" in finished.message and "batch size" in finished.message


def test_same_seed_same_weights():
    a, b = small("vae", epochs=1), small("vae", epochs=1)
    train_to_end(a.trainer)
    train_to_end(b.trainer)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
