"""`main.py transfer RUN_DIR`: the label-efficiency curve headless (core: app/core/analysis/transfer.py)."""

from __future__ import annotations

import json
import sys


def add_transfer_parser(sub) -> None:
    transfer = sub.add_parser("transfer", help="codes as features with few labels: accuracy for n labels per class, "
                              "codes vs PCA vs raw inputs vs the fine-tuned encoder")
    transfer.add_argument("run_dir", help="run directory of a trained autoencoder")
    transfer.add_argument("--data", help="labelled data SPEC (default: the run's own data)")
    transfer.add_argument("--labels-per-class", default="10,100,1000", help="comma-separated sizes (default 10,100,1000)")
    transfer.add_argument("--draws", type=int, default=5, help="label draws per size, for the error bars (default 5)")
    transfer.add_argument("--seed", type=int, default=0, help="seed of the label draws")
    transfer.add_argument("--limit", type=int, default=0, help="use at most this many samples")
    transfer.add_argument("--no-fine-tune", action="store_true", help="skip (d), the fine-tuned encoder")
    transfer.add_argument("--csv", help="also write the curve as CSV to this file")
    transfer.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_transfer(args) -> int:
    from app.core.analysis.transfer import ANCHOR, METHOD_LABELS, transfer_for_run
    from app.core.config import parse_int_tuple

    sizes = parse_int_tuple(args.labels_per_class, "--labels-per-class")

    def progress(done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\rfitting classifiers {done}/{total}", end="", file=sys.stderr, flush=True)

    result = transfer_for_run(args.run_dir, args.data, sizes, draws=args.draws, seed=args.seed,
                              fine_tune=not args.no_fine_tune, limit=args.limit, progress=progress)
    if args.csv:
        from app.core.atomic import atomic_write_text
        atomic_write_text(args.csv, result.to_csv())
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    print(f"\nscored on the {result.split}; mean accuracy +- std over {args.draws} draws", file=sys.stderr)
    header = "labels/class " + "".join(f"{m:>18}" for m in result.accuracies)
    print(header)
    for i, n in enumerate(result.used_per_class):
        cells = "".join(f"{result.mean(m)[i]:>11.4f} +-{result.std(m)[i]:.3f}" for m in result.accuracies)
        print(f"{n:>12} {cells}")
    for m in result.accuracies:
        print(f"  {m}: {METHOD_LABELS[m]}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"published anchor: {ANCHOR}", file=sys.stderr)
    return 0
