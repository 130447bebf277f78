"""Shared bits of the benchmark scripts: where MNIST lives, a machine line, a plain table."""

from __future__ import annotations

import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("LATENT_EXPLORER_MNIST", ROOT.parent / "shared" / "data" / "mnist"))


def machine_line() -> str:
    import torch

    try:
        import psutil
        memory = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:
        memory = "? GiB"
    cpu = platform.processor() or platform.machine()
    return (f"machine: {os.cpu_count()} cores ({cpu}), {memory}, Python {platform.python_version()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")


def print_table(header: list[str], rows: list[list]) -> None:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))
