"""Posterior collapse: a VAE whose decoder learned to ignore the code.

Symptoms (Bowman et al. 2016; Burda et al. 2015 for "active units"): the KL term of every latent
dimension drops to about zero, so q(z|x) equals the prior for every input, and no dimension's
encoder mean varies across the data (Cov_x E_q[z_u] <= 0.01: an inactive unit). Early in
training, and during a KL warm-up, a small KL is normal, so the check only speaks after warm-up.

    warning = check_posterior_collapse(model, x_val, epoch, warmup_epochs_for(train_cfg))
    if warning: show it next to the loss curves
"""

from __future__ import annotations

import numpy as np

COLLAPSE_KL_NATS = 0.01       # per dimension, per sample
MAX_SAMPLES = 2000            # encoding more adds nothing to the decision


def collapse_warning(kl_per_dim, active_units: int, epoch: int, warmup_epochs: int, *,
                     beta: float | None = None) -> str | None:
    """The warning text when a VAE has collapsed after warm-up, else None.

    kl_per_dim: KL(q(z_d|x) || N(0,1)) of each latent dimension averaged over samples, in nats
        (an array of K values), or one number: the KL per dimension averaged over dimensions.
    active_units: how many dimensions are active (encoder-mean variance above 0.01).
    epoch: epochs finished (1-based); warmup_epochs: no warning until this many have passed.
    Collapse means: no active unit, or every dimension's KL under 0.01 nats.
    """
    if epoch <= warmup_epochs:
        return None
    kl = np.atleast_1d(np.asarray(kl_per_dim, dtype=np.float64))
    if kl.size == 0 or not np.all(np.isfinite(kl)):
        return None
    low_kl = bool(np.all(kl < COLLAPSE_KL_NATS))
    if active_units > 0 and not low_kl:
        return None
    k = kl.size
    units = f"{active_units} of {k} latent units are active" if k > 1 else f"{active_units} active latent units"
    beta_hint = f"a smaller beta (now {beta:g})" if beta is not None else "a smaller beta"
    return (f"posterior collapse after epoch {epoch}: {units} and the KL is {float(kl.mean()):.3g} nats per "
            f"dimension, so the decoder ignores the code. Try KL annealing (kl_anneal = linear or cyclical), "
            f"{beta_hint}, or a weaker decoder (fewer or smaller hidden layers)")


def warmup_epochs_for(train_cfg) -> int:
    """Epochs during which a small KL is expected: the KL warm-up when annealing, else one epoch."""
    if getattr(train_cfg, "kl_anneal", "none") != "none":
        return int(train_cfg.kl_warmup_epochs)
    return 1


def check_posterior_collapse(model, x: np.ndarray, epoch: int, warmup_epochs: int,
                             max_samples: int = MAX_SAMPLES, seed: int = 0) -> str | None:
    """Encode (a sample of) `x` and apply collapse_warning; None for non-variational models."""
    if not getattr(model, "variational", False) or len(x) == 0 or epoch <= warmup_epochs:
        return None
    from app.core.latent import dimension_stats
    from app.core.session import encode_all

    if len(x) > max_samples:
        x = x[np.random.default_rng(seed).choice(len(x), max_samples, replace=False)]
    was_training = model.training   # called between training steps: leave the mode as it was
    try:
        encoded = encode_all(model, x)
    finally:
        model.train(was_training)
    if encoded.logvar is None:
        return None
    stats = dimension_stats(encoded.codes, encoded.logvar)
    return collapse_warning(stats.kl, int(stats.active.sum()), epoch, warmup_epochs,
                            beta=getattr(getattr(model, "cfg", None), "beta", None))
