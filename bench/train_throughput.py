"""Training speed and quality of our trainer against a plain PyTorch loop, and FLOP efficiency.

The plain loop is PyTorch's VAE example (examples/vae/main.py): the classic 784-400-20 VAE,
BCE summed over pixels + analytic KL, Adam 1e-3, batch 128. Both loops see the MNIST test set
split 8,000 / 2,000 (same split, same batches drawn by the same index arithmetic, tensors already
in memory for both), and run ALTERNATING epochs in one process so machine drift hits both alike.

    python bench/train_throughput.py [--epochs 10]

Prints a table and, last, one line of JSON: train_time_ratio (ours / plain, per epoch, median),
heldout_loss / plain_heldout_loss (negative ELBO per image, one z sample), flop_efficiency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import MNIST_DIR, machine_line, print_table  # noqa: E402
from app.core.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from app.core.session import prepare_training  # noqa: E402
from app.core.trainer import EpochResult  # noqa: E402


class PlainVAE(nn.Module):
    """PyTorch's example VAE, verbatim in structure."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h1 = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h1), self.fc22(h1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def plain_loss(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def plain_epoch(model, opt, train, batch_size, generator) -> float:
    model.train()
    order = torch.randperm(len(train), generator=generator)
    start = time.perf_counter()
    total = 0.0
    for i in range(0, len(train), batch_size):
        x = train[order[i:i + batch_size]]
        opt.zero_grad()
        recon, mu, logvar = model(x)
        loss = plain_loss(recon, x, mu, logvar)
        loss.backward()
        total += loss.item()
        opt.step()
    return time.perf_counter() - start


@torch.no_grad()
def plain_heldout(model, val) -> float:
    model.eval()
    torch.manual_seed(0)
    total = 0.0
    for i in range(0, len(val), 1024):
        x = val[i:i + 1024]
        recon, mu, logvar = model(x)
        total += plain_loss(recon, x, mu, logvar).item()
    return total / len(val)


def mm_flops_per_sample() -> int:
    """Multiply-adds of the 784-400-20(x2)-400-784 VAE per sample, forward, times 2 for FLOPs."""
    layers = [(784, 400), (400, 20), (400, 20), (20, 400), (400, 784)]
    return sum(2 * a * b for a, b in layers)


def mm_peak(batch: int, repeats: int = 30) -> float:
    """FLOP/s of torch.mm doing exactly a training step's matmuls (forward, grad-input, grad-weight)."""
    layers = [(784, 400), (400, 20), (400, 20), (20, 400), (400, 784)]
    mats = []
    for a, b in layers:
        mats.append((torch.randn(batch, a), torch.randn(a, b)))     # forward  (B,a)@(a,b)
        mats.append((torch.randn(batch, b), torch.randn(b, a)))     # grad in  (B,b)@(b,a)
        mats.append((torch.randn(a, batch), torch.randn(batch, b)))  # grad w   (a,B)@(B,b)
    flops = sum(2 * x.shape[0] * x.shape[1] * y.shape[1] for x, y in mats)
    for x, y in mats:
        torch.mm(x, y)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for x, y in mats:
            torch.mm(x, y)
        best = min(best, time.perf_counter() - start)
    return flops / best


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)

    data_cfg = DataConfig(spec=str(MNIST_DIR), val_fraction=0.2, split_seed=0)
    model_cfg = ModelConfig(kind="vae", latent_dim=20, hidden=(400,), loss="bce")
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, optimizer="adam", seed=0, device="cpu")
    prepared = prepare_training(data_cfg, model_cfg, train_cfg)
    ours = prepared.trainer.run()

    torch.manual_seed(0)
    plain = PlainVAE()
    opt = torch.optim.Adam(plain.parameters(), lr=1e-3)
    train = torch.as_tensor(prepared.data.x[prepared.train_idx])
    val = torch.as_tensor(prepared.data.x[prepared.val_idx])
    generator = torch.Generator().manual_seed(1)

    our_times, plain_times, rows = [], [], []
    for epoch in range(1, args.epochs + 1):
        result = next(e for e in ours if isinstance(e, EpochResult))
        t_plain = plain_epoch(plain, opt, train, 128, generator)
        our_times.append(result.seconds)
        plain_times.append(t_plain)
        rows.append([epoch, f"{result.seconds:.3f}", f"{t_plain:.3f}", f"{result.seconds / t_plain:.3f}",
                     f"{result.val_loss:.2f}"])
    for _ in ours:   # let the trainer finish (restores nothing: no early stopping)
        pass
    torch.manual_seed(0)
    our_heldout = prepared.trainer.evaluate(val, beta=1.0)["total"]
    plain_loss_value = plain_heldout(plain, val)

    median_ours = statistics.median(our_times[1:] or our_times)   # the first epoch warms caches
    median_plain = statistics.median(plain_times[1:] or plain_times)
    achieved = 3 * mm_flops_per_sample() * len(train) / median_ours   # forward + 2x backward
    peak = mm_peak(128)
    figures = {
        "train_time_ratio": round(median_ours / median_plain, 3),
        "epoch_s": round(median_ours, 3),
        "plain_epoch_s": round(median_plain, 3),
        "heldout_loss": round(our_heldout, 2),
        "plain_heldout_loss": round(plain_loss_value, 2),
        "flop_efficiency": round(achieved / peak, 3),
        "achieved_gflops": round(achieved / 1e9, 2),
        "mm_peak_gflops": round(peak / 1e9, 2),
        "epochs": args.epochs,
    }
    print(machine_line())
    print_table(["epoch", "ours s", "plain s", "ratio", "our val loss"], rows)
    print(f"held-out negative ELBO per image: ours {our_heldout:.2f}, plain PyTorch {plain_loss_value:.2f}")
    print(f"median epoch: ours {median_ours:.3f} s, plain {median_plain:.3f} s, ratio {figures['train_time_ratio']}")
    print(f"FLOP efficiency: {figures['achieved_gflops']} GFLOP/s achieved vs {figures['mm_peak_gflops']} GFLOP/s "
          f"torch.mm at the same sizes = {figures['flop_efficiency']}")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
