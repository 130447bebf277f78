"""`main.py search`: the hyperparameter search from the command line (core: app/core/search.py).

    python main.py search --data digits --model vae --space space.toml --trials 20 --method bayes \\
        --jobs 2 --out searches/digits --epochs 5

Flags of the training form fix a setting for every trial; the TOML space names what varies.
Running it again with the same --out resumes the search (more --trials extend it).
"""

from __future__ import annotations

import dataclasses
import json
import sys

from app.core.config import DataConfig, ModelConfig, TrainConfig


def add_search_parser(sub) -> None:
    from app.cli import add_config_flags
    from app.core.search import METHODS, OBJECTIVES, PRUNERS

    search = sub.add_parser("search", help="hyperparameter search (grid, random, bayes) with parallel trials",
                            description="Trials are run directories in OUT/trials; OUT/journal.log is Optuna's "
                                        "crash-safe journal; the same --out again resumes the search.")
    search.add_argument("--out", required=True, help="search folder (created; an existing one is resumed)")
    search.add_argument("--space", help="TOML file: a range {low, high, log} or a list of choices per setting")
    search.add_argument("--trials", type=int, help="number of trials in all (default 20; a grid: at most its size)")
    search.add_argument("--method", choices=METHODS, help="grid, random, or bayes (TPE; default)")
    search.add_argument("--jobs", type=int, help="trials run at once, each in its own process (default 1)")
    search.add_argument("--objective", choices=tuple(OBJECTIVES), help="what to optimise, scored on the validation "
                        "split (default val_loss; mig needs factors, probe_accuracy/anomaly_auc labels)")
    search.add_argument("--pruner", choices=PRUNERS, help="stops weak trials from their per-epoch validation loss "
                        "(default hyperband)")
    search.add_argument("--timeout", type=float, help="seconds after which no new trial starts (default: none)")
    search.add_argument("--anomaly-classes", help="labels counted as anomalies (objective anomaly_auc)")
    search.add_argument("--json", action="store_true", help="print the trial table as one JSON object")
    add_config_flags(search, DataConfig, "data (fixed for every trial)")
    add_config_flags(search, ModelConfig, "model (fixed unless the space names it)")
    add_config_flags(search, TrainConfig, "training (fixed unless the space names it)")


def _given(args, cls) -> dict:
    from app.cli import config_from_args

    full = config_from_args(args, cls)
    return {f.name: getattr(full, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f"{cls.__name__}.{f.name}", None) is not None}


def _spec_from_args(args):
    from pathlib import Path

    from app.core.errors import ConfigError
    from app.core.search import SPEC_FILE, read_spec, spec_from_settings
    from app.core.search_space import load_space

    space_text = load_space(args.space).source if args.space else None
    options = {k: v for k, v in (("method", args.method), ("trials", args.trials), ("jobs", args.jobs),
                                 ("objective", args.objective), ("pruner", args.pruner), ("timeout_s", args.timeout),
                                 ("anomaly_classes", args.anomaly_classes)) if v is not None}
    if (Path(args.out) / SPEC_FILE).exists():   # resume: what is not given comes from the folder
        stored = read_spec(args.out)
        return dataclasses.replace(
            stored, data=dataclasses.replace(stored.data, **_given(args, DataConfig)),
            model=dataclasses.replace(stored.model, **_given(args, ModelConfig)),
            train=dataclasses.replace(stored.train, **_given(args, TrainConfig)),
            space=space_text if space_text is not None else stored.space, **options)
    if space_text is None:
        raise ConfigError("search needs --space FILE.toml naming the settings to vary (README: Search)")
    options.setdefault("trials", 20)
    from app.cli import config_from_args
    return spec_from_settings(config_from_args(args, DataConfig), config_from_args(args, ModelConfig),
                              config_from_args(args, TrainConfig), space_text, **options)


def cmd_search(args) -> int:
    from app.core.search import format_rows, run_search

    spec = _spec_from_args(args)
    tty = sys.stderr.isatty()
    last = [None]

    def show(progress) -> None:
        line = progress.line(spec.objective)
        if tty:
            print("\r" + line[:200].ljust(120), end="", file=sys.stderr, flush=True)
        elif progress.finished != last[0]:
            last[0] = progress.finished
            print(line, file=sys.stderr, flush=True)

    print(f"searching {spec.method}, {spec.trials} trials, {spec.jobs} at once, objective {spec.objective} "
          f"({'lower' if spec.direction == 'minimize' else 'higher'} is better) in {args.out}", file=sys.stderr)
    result = run_search(args.out, spec, on_progress=show)
    if tty:
        print(file=sys.stderr)
    for message in result.messages:
        print(message, file=sys.stderr)
    print(result.progress.line(spec.objective), file=sys.stderr)
    if args.json:
        print(json.dumps({"objective": spec.objective, "direction": spec.direction, "best": result.best,
                          "cancelled": result.cancelled, "trials": result.rows}, default=str))
    else:
        print(format_rows(result.rows, spec.objective))
    if result.best is not None:
        print(f"best: trial {result.best['trial']} ({spec.objective} {result.best['value']:.5g}), run directory "
              f"{args.out}/{result.best['run_dir']}", file=sys.stderr)
    if result.cancelled:
        print("cancelled: finished trials are kept; run the same command to resume", file=sys.stderr)
        return 130
    return 0 if result.best is not None else 1

