"""Codes as features when labels are few: the label-efficiency curve of a pretrained autoencoder.

For n labelled samples per class, drawn several times from the run's training split, a classifier
is fitted on
  (a) the autoencoder's codes (encoder means for VAE kinds),
  (b) PCA components of the same size (PCA fitted on the whole, unlabelled training split, as the
      autoencoder was),
  (c) the raw inputs,
and scored on the held-out (validation) split; (a)-(c) use a standardised logistic regression, as
the linear probes do (app/core/analysis/probes.py). (d) fine-tunes a copy of the encoder with a small
linear classifier head on the same labelled samples (cross-entropy, Adam). Each point is the mean
over the draws with the standard deviation as its error bar.

Published anchor: Kingma et al. (2014), "Semi-supervised learning with deep generative models",
report 3.33% MNIST test error with 100 labels in all (10 per class) for their M1+M2 model, which
also trains on the unlabelled data with the labels; our (a)-(d) use the labels only in the
classifier, so they should land well above that error.
"""

from __future__ import annotations

import copy
import csv
import io
from dataclasses import dataclass, field

import numpy as np

from app.core.errors import DataError

METHODS = ("codes", "pca", "raw", "fine_tuned")
METHOD_LABELS = {"codes": "logistic regression on the AE's codes", "pca": "logistic regression on PCA (same size)",
                 "raw": "logistic regression on raw inputs", "fine_tuned": "encoder fine-tuned with a linear head"}
MAX_TEST = 5000            # held-out samples scored per point (a seeded subset beyond this)
FINE_TUNE_LR = 1e-3
ANCHOR = "Kingma et al. 2014: 3.33% MNIST error with 100 labels (M1+M2 semi-supervised VAE)"


@dataclass
class TransferResult:
    labels_per_class: list[int]                 # as asked
    used_per_class: list[int]                   # after capping at the smallest class's training count
    accuracies: dict[str, list[list[float]]]    # method -> per size -> one accuracy per draw
    n_classes: int
    n_test: int
    split: str                                  # which samples were scored
    latent_dim: int
    notes: list[str] = field(default_factory=list)

    def mean(self, method: str) -> list[float]:
        return [float(np.mean(a)) for a in self.accuracies[method]]

    def std(self, method: str) -> list[float]:
        return [float(np.std(a, ddof=1)) if len(a) > 1 else 0.0 for a in self.accuracies[method]]

    def to_json(self) -> dict:
        return {"labels_per_class": self.labels_per_class, "used_per_class": self.used_per_class,
                "n_classes": self.n_classes, "n_test": self.n_test, "split": self.split, "latent_dim": self.latent_dim,
                "draws": len(next(iter(self.accuracies.values()))[0]) if self.accuracies else 0,
                "methods": {m: {"mean": self.mean(m), "std": self.std(m), "accuracies": a}
                            for m, a in self.accuracies.items()},
                "anchor": ANCHOR, "notes": self.notes}

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["method", "labels_per_class", "labels_total", "mean_accuracy", "std_accuracy", "draws"])
        for m in self.accuracies:
            for i, n in enumerate(self.used_per_class):
                writer.writerow([m, n, n * self.n_classes, f"{self.mean(m)[i]:.6f}", f"{self.std(m)[i]:.6f}",
                                 len(self.accuracies[m][i])])
        return out.getvalue()


def draw_labelled(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `per_class` samples of every class, without replacement."""
    picks = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    return np.sort(np.concatenate(picks))


def fine_tune_accuracy(model, x_l: np.ndarray, y_l: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                       n_classes: int, seed: int, steps: int = 0, lr: float = FINE_TUNE_LR) -> float:
    """Copy of the encoder + Linear(K, classes), trained end to end on the labelled samples
    (steps 0: about 20 passes over them, 300 to 3,000 steps)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from app.core.session import model_device

    device = model_device(model)
    torch.manual_seed(seed)
    encoder = copy.deepcopy(model).to(device).train()
    for p in encoder.parameters():   # the window's snapshots are frozen copies
        p.requires_grad_(True)
    head = nn.Linear(encoder.latent_dim, n_classes).to(device)
    opt = torch.optim.Adam(list(encoder.parameters()) + list(head.parameters()), lr=lr)
    x = torch.as_tensor(x_l, device=device)
    y = torch.as_tensor(y_l, dtype=torch.long, device=device)
    with torch.no_grad():   # codes standardised as the logistic regressions' inputs are (fixed affine)
        codes = encoder.encode(x)
        centre, scale = codes.mean(0), codes.std(0).clamp_min(1e-6) if len(x) > 1 else torch.ones_like(codes[0])
    generator = torch.Generator().manual_seed(seed)
    batch = min(64, len(x))
    steps = steps or int(np.clip(20 * len(x) / batch, 300, 3000))   # about 20 epochs of the labelled set
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=generator).to(device)
        loss = F.cross_entropy(head((encoder.encode(x[idx]) - centre) / scale), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    encoder.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_test), 2048):
            xb = torch.as_tensor(x_test[i:i + 2048], device=device)
            pred = head((encoder.encode(xb) - centre) / scale).argmax(1).cpu().numpy()
            correct += int((pred == y_test[i:i + 2048]).sum())
    return correct / max(len(x_test), 1)


def _features(model, data, train_idx: np.ndarray, test_idx: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from app.core.analysis.pca_baseline import fit_pca, flatten, pca_transform
    from app.core.session import encode

    x_train, x_test = data.x[train_idx], data.x[test_idx]
    pca = fit_pca(flatten(x_train), model.latent_dim)
    return {"codes": (encode(model, x_train), encode(model, x_test)),
            "pca": (pca_transform(pca, flatten(x_train)), pca_transform(pca, flatten(x_test))),
            "raw": (flatten(x_train), flatten(x_test))}


def label_efficiency(model, data, labels_per_class=(10, 100, 1000), draws: int = 5, seed: int = 0,
                     fine_tune: bool = True, max_test: int = MAX_TEST, progress=None, val_fraction: float = 0.2,
                     split_seed: int = 0) -> TransferResult:
    """The curve for every method; progress(done, total) after each fitted classifier. The split is
    the model's training split (val_fraction, split_seed), so the scored samples are held out."""
    from app.core.analysis.pca_baseline import heldout_split
    from app.core.analysis.probes import linear_probe_accuracy

    if data.y is None:
        raise DataError(f"{data.name}: has no labels, so there is nothing to classify; use labelled data")
    if draws < 1 or not labels_per_class or min(labels_per_class) < 1:
        raise DataError("--labels-per-class needs whole numbers >= 1 and --draws at least 1")
    train_idx, test_idx = heldout_split(data, val_fraction, split_seed)
    classes, y_all = np.unique(data.y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{data.name}: needs at least two classes, it has {len(classes)}")
    if len(test_idx) > max_test:
        test_idx = np.sort(np.random.default_rng(seed).choice(test_idx, max_test, replace=False))
    y_train, y_test = y_all[train_idx], y_all[test_idx]
    smallest = int(np.bincount(y_train, minlength=len(classes)).min())
    used = sorted({min(int(n), smallest) for n in labels_per_class})
    notes = [f"{n} per class asked, only {smallest} in the smallest class's training split: capped"
             for n in labels_per_class if n > smallest]
    features = _features(model, data, train_idx, test_idx)
    methods = list(features) + (["fine_tuned"] if fine_tune else [])
    accuracies = {m: [[] for _ in used] for m in methods}
    total, done = len(used) * draws * len(methods), 0
    for si, n in enumerate(used):
        for d in range(draws):
            pick = draw_labelled(y_train, n, np.random.default_rng([seed, n, d]))
            for m in methods:
                if m == "fine_tuned":
                    acc = fine_tune_accuracy(model, data.x[train_idx[pick]], y_train[pick], data.x[test_idx],
                                             y_test, len(classes), seed=seed * 1000 + d)
                else:
                    tr, te = features[m]
                    acc = linear_probe_accuracy(tr[pick], y_train[pick], te, y_test, seed=seed)
                accuracies[m][si].append(float(acc))
                done += 1
                if progress is not None:
                    progress(done, total)
    split = (f"held-out validation split ({len(test_idx):,} samples scored; the labels are drawn from the "
             f"{len(train_idx):,} samples the model trained on)")
    return TransferResult(labels_per_class=[int(n) for n in labels_per_class], used_per_class=used,
                          accuracies=accuracies, n_classes=len(classes), n_test=len(test_idx), split=split,
                          latent_dim=model.latent_dim, notes=notes)


def transfer_for_run(run_dir, spec: str | None = None, labels_per_class=(10, 100, 1000), draws: int = 5,
                     seed: int = 0, fine_tune: bool = True, limit: int = 0, progress=None) -> TransferResult:
    """The CLI's entry point: load the run and its (or other) data, then the curve."""
    from app.core.checkpoint import load_run
    from app.core.session import load_data_for_run

    run = load_run(run_dir) if not hasattr(run_dir, "model") else run_dir
    data = load_data_for_run(run, spec, limit)
    return label_efficiency(run.model, data, labels_per_class, draws=draws, seed=seed, fine_tune=fine_tune,
                            progress=progress, val_fraction=run.data_cfg.val_fraction,
                            split_seed=run.data_cfg.split_seed)
