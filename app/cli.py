"""Headless command line: the same core as the window, no Qt.

    python main.py train --data digits --model vae --out runs/digits-vae
    python main.py evaluate runs/digits-vae --json
    python main.py models | datasets

Flags are generated from the config dataclasses (app/core/config.py), so the CLI, the window's
training form and model.json always agree. Every app error is printed as one line and exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from typing import Sequence

from app.core.config import DataConfig, ModelConfig, TrainConfig, parse_int_tuple
from app.core.errors import ConfigError, LatentExplorerError

# Field names whose flag differs from --field-name, for the short forms the README uses.
FLAG_NAMES = {"spec": "--data", "kind": "--model"}


def _flag(name: str) -> str:
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _metavar(name: str, default) -> str:
    """What a flag's value looks like in --help: SPEC, N, X, TEXT."""
    if name == "spec":
        return "SPEC"
    if isinstance(default, int):
        return "N"
    if isinstance(default, float):
        return "X"
    return "TEXT"


def _applies_note(meta) -> str:
    """' [kinds: vae, conv-vae; with --kl-anneal linear|cyclical]' from the field's metadata, so
    `train --help` says which model kinds a setting is for (app/core/config.py, option)."""
    parts = []
    if meta.get("kinds"):
        parts.append("kinds: " + ", ".join(meta["kinds"]))
    if meta.get("shown_if"):
        other, values = meta["shown_if"]
        parts.append(f"with {_flag(other)} {'|'.join(values)}")
    return f" [{'; '.join(parts)}]" if parts else ""


def add_config_flags(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kwargs = {"dest": f"{cls.__name__}.{f.name}", "default": None, "help": f"{meta['help']} (default: "
                  f"{','.join(map(str, default)) if isinstance(default, tuple) else default}){_applies_note(meta)}"}
        if isinstance(default, tuple):
            kwargs["type"] = str
            kwargs["metavar"] = "N,N"
        elif isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = type(default)
            if meta.get("choices"):
                kwargs["choices"] = meta["choices"]
                kwargs["metavar"] = "{" + ",".join(map(str, meta["choices"])) + "}"
            else:   # argparse would show the dest, e.g. DATACONFIG.VAL_FRACTION
                kwargs["metavar"] = _metavar(f.name, default)
        group.add_argument(_flag(f.name), **kwargs)


def config_from_args(args: argparse.Namespace, cls: type, **overrides):
    values = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f"{cls.__name__}.{f.name}", None)
        if value is None:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, tuple):
            value = parse_int_tuple(value, _flag(f.name))
        values[f.name] = value
    values.update(overrides)
    return cls(**values)


# How a value looks in --help, for flags that name none themselves (argparse would show the dest).
VALUE_METAVARS = {"out": "PATH", "data": "SPEC", "latents": "FILE.csv", "scores": "FILE.csv", "csv": "FILE.csv",
                  "traversal": "FILE.png", "space": "FILE.toml", "size": "WIDTHxHEIGHT", "anomaly_classes": "LABELS"}


def readable_metavars(parser: argparse.ArgumentParser) -> None:
    """Give every value-taking flag of `parser` and its sub-commands a metavar: N, X, PATH, SPEC, ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                readable_metavars(sub)
        elif action.option_strings and action.nargs != 0 and action.metavar is None and not action.choices:
            name = action.dest.rsplit(".", 1)[-1]
            action.metavar = VALUE_METAVARS.get(name) or {int: "N", float: "X"}.get(action.type, "TEXT")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py", description="Train autoencoders and explore their latent space. Run with no command to "
        "open the window; `python main.py RUN_DIR` opens a run directory in it, `python main.py SPEC` a data set.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="train a model and write a run directory")
    train.add_argument("--out", metavar="RUN_DIR", help="run directory to write (created if missing; default with --resume: that run)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--distributed", action="store_true", help="one rank of a torchrun job: torchrun "
                       "--nproc_per_node N main.py train ... --distributed (gloo on CPU, nccl on CUDA; rank 0 writes --out)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last checkpoint (optimizer, "
                       "epoch, KL annealing and random state) up to --epochs in total")
    train.add_argument("--init-from", metavar="RUN_DIR", help="warm-start: copy this run's encoder (and the decoder "
                       "tensors whose shapes match) into the new model and list the tensors taken")
    from app.core.presets import PRESETS
    train.add_argument("--preset", choices=tuple(PRESETS), help="start from a named setting (app/core/presets.py); "
                       "flags given as well win: " + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()))
    add_config_flags(train, DataConfig, "data")
    add_config_flags(train, ModelConfig, "model")
    add_config_flags(train, TrainConfig, "training")

    evaluate = sub.add_parser("evaluate", help="measure a trained run on data")
    evaluate.add_argument("run_dir", help="run directory written by train or by the window")
    evaluate.add_argument("--data", help="data SPEC (default: the run's own training data)")
    evaluate.add_argument("--limit", type=int, default=0, help="use at most this many samples")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--projections", action="store_true",
                          help="also compute PCA/UMAP/t-SNE and report their trustworthiness (slow)")
    evaluate.add_argument("--anomaly-classes", default="",
                          help="comma-separated labels treated as anomalies: reports ROC AUC of the model and of PCA")
    evaluate.add_argument("--split", choices=("validation", "all"), default="validation",
                          help="on the run's own data, score its held-out validation split (default) or all "
                               "samples, training ones included; other --data is scored whole ('external')")

    export = sub.add_parser("export", help="write latent codes, anomaly scores or a traversal grid headless")
    export.add_argument("run_dir")
    export.add_argument("--data", help="data SPEC (default: the run's own training data)")
    export.add_argument("--limit", type=int, default=0, help="use at most this many samples")
    export.add_argument("--latents", help="CSV of codes z0..z{K-1}, then label and factor_<name> columns")
    export.add_argument("--scores", help="CSV of anomaly scores: index,score,label,flagged")
    export.add_argument("--percentile", type=float, default=95.0, help="flag scores above this percentile (scores CSV)")
    export.add_argument("--traversal", help="PNG of the latent traversal grid (image models)")
    export.add_argument("--split", choices=("all", "validation"), default="all",
                        help="on the run's own data, the rows to write: all samples (default) or the validation split")

    convert = sub.add_parser("convert", help="write any data SPEC once as an .npy that trains memory-mapped")
    convert.add_argument("spec", help="data SPEC: IDX folder (.gz or raw), .npz, .npy, .csv, image folder, built-in")
    convert.add_argument("--out", required=True, help="the .npy to write (labels go to NAME.labels.npy beside it)")
    convert.add_argument("--image-size", type=int, default=0, help="resize images of an image folder to this side")
    sub.add_parser("models", help="list the model kinds")
    sub.add_parser("datasets", help="list the built-in data sets and the file kinds")
    tour = sub.add_parser("tour", help="open the window offscreen, train briefly, write one screenshot per view")
    tour.add_argument("--out", required=True, help="folder for the PNG files")
    tour.add_argument("--epochs", type=int, default=40, help="epochs of the VAE trained on digits (default: 40)")
    tour.add_argument("--size", default="1440x900", help="window size WIDTHxHEIGHT, e.g. 1440x900 or 1920x1080 "
                                                         "(default: 1440x900, a laptop screen)")
    from app.cli_search import add_search_parser  # hyperparameter search (issue 13, app/core/search.py)
    add_search_parser(sub)
    from app.cli_transfer import add_transfer_parser  # few-label transfer (issue 13, app/core/analysis/transfer.py)
    add_transfer_parser(sub)
    readable_metavars(parser)
    return parser


def cmd_train(args) -> int:
    """Train through the core's training session and print its events (app/core/training_run.py)."""
    ctx = None
    if getattr(args, "distributed", False):   # issue 14: one rank of a torchrun job (app/core/distributed.py)
        from app.core.distributed import init_from_env
        ctx = init_from_env()
    try:
        return _train_and_report(args, ctx)
    finally:
        if ctx is not None:
            from app.core.distributed import shutdown
            shutdown(peers_alive=ctx.peers_alive)


def _train_and_report(args, ctx) -> int:
    from app.core.training_run import Finished

    session = _prepare_train(args)
    writer = ctx is None or ctx.is_writer
    for skipped in session.data.skipped[:10] if writer else []:
        print(f"skipped: {skipped}", file=sys.stderr)
    if writer:
        print(f"{session.data.summary()}\n{session.describe()}"
              + (f" across {ctx.world} processes ({ctx.backend})" if ctx else ""), file=sys.stderr)
        print(f"follow it live: python main.py {session.out}", file=sys.stderr)  # app/core/live_writer.py
    printer = _EventPrinter(show_bar=writer and not args.quiet and sys.stderr.isatty())
    if ctx is not None:
        from app.core.distributed import distributed_events
        events = distributed_events(session, ctx)
    else:
        events = session.events()
    try:
        for event in events:
            if writer or type(event).__name__ in ("Finished",):
                printer.show(event)
    except KeyboardInterrupt:   # while printing: the trainer is between steps, save what it has
        printer.close()
        print("interrupted: saving the model trained so far", file=sys.stderr)
        for event in session.finish_events():
            printer.show(event)
    finished: Finished = printer.finished
    if finished.save_error is not None:
        return 1
    if not writer:   # ranks > 0 write nothing; rank 0 reports the run directory
        if not finished.ok:
            print(f"error: {finished.message}", file=sys.stderr)
        return 0 if finished.ok else 1
    if not finished.ok:
        print(f"error: {finished.message}. The run directory {session.out} holds the last good weights.",
              file=sys.stderr)
        return 1
    print(f"saved {session.out} ({finished.message})", file=sys.stderr)
    print(f"open it in the window: python main.py {session.out}", file=sys.stderr)
    return 0


class _EventPrinter:
    """Training events as terminal lines: a tqdm bar within each epoch when stderr is a terminal
    (never in a log file or a pipe), one line per epoch, warnings and saves."""

    def __init__(self, show_bar: bool):
        self.show_bar = show_bar
        self.bar = None
        self.finished = None

    def show(self, event) -> None:
        from app.core.training_run import Epoch, Finished, Progress, Saved, TrainingWarning

        if isinstance(event, Progress):
            self._progress(event.progress)
        elif isinstance(event, Epoch):
            self.close()
            r = event.result
            val = "" if r.val_loss is None else f"  val {r.val_loss:.4f}"
            print(f"epoch {r.epoch:>3}/{event.epochs}  train {r.train_loss:.4f}{val}  "
                  f"({r.seconds:.2f} s, {r.samples_per_second:,.0f} samples/s)", file=sys.stderr)
        elif isinstance(event, TrainingWarning):
            self.close()
            text = event.text
            print(text if text.startswith(("error:", "interrupted")) else f"warning: {text}", file=sys.stderr)
        elif isinstance(event, Saved) and event.kind == "rescued":
            print(f"the trained model was saved to {event.path} instead", file=sys.stderr)
        elif isinstance(event, Finished):
            self.close()
            self.finished = event

    def _progress(self, p) -> None:
        if not self.show_bar:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=p.steps_per_epoch, desc=f"epoch {p.epoch}/{p.epochs}", unit="step", leave=False,
                            file=sys.stderr)
        self.bar.n = p.step_in_epoch
        self.bar.set_postfix(loss=f"{p.parts.get('total', math.nan):.4g}", samples_s=f"{p.samples_per_second:,.0f}",
                             refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _prepare_train(args):
    """The training session for `train`: fresh, warm-started (--init-from) or resumed (--resume)."""
    from app.core.session import prepare_training

    if args.resume:
        from app.core.resume import prepare_resume
        given = [_flag(f.name) for cls in (DataConfig, ModelConfig, TrainConfig) for f in dataclasses.fields(cls)
                 if getattr(args, f"{cls.__name__}.{f.name}", None) is not None and f.name not in ("epochs", "device")]
        if given or args.init_from or args.preset:
            raise ConfigError(f"--resume continues with the run's own settings; drop {', '.join(given) or ('--preset' if args.preset else '--init-from')} "
                              f"(only --epochs and --device may be given) or start a new run with --init-from")
        epochs = getattr(args, "TrainConfig.epochs", None)
        if epochs is None:
            raise ConfigError("--resume needs --epochs: the total number of epochs, counting those already done")
        plan = prepare_resume(args.resume, epochs=epochs, device=getattr(args, "TrainConfig.device", None))
        print(f"resuming {args.resume} after epoch {plan.epochs_done} of {epochs}", file=sys.stderr)
        plan.prepared.write_to(args.out or args.resume)
        return plan.prepared
    if not args.out:
        raise ConfigError("train needs --out RUN_DIR (the run directory to write), or --resume RUN_DIR")
    data_cfg = config_from_args(args, DataConfig)
    model_cfg = config_from_args(args, ModelConfig)
    train_cfg = config_from_args(args, TrainConfig)
    if args.preset:
        from app.core.presets import apply_preset
        given = {cls.__name__: {f.name for f in dataclasses.fields(cls)
                                if getattr(args, f"{cls.__name__}.{f.name}", None) is not None}
                 for cls in (DataConfig, ModelConfig, TrainConfig)}
        data_cfg, model_cfg, train_cfg = apply_preset(args.preset, data_cfg, model_cfg, train_cfg, given)
        print(f"preset {args.preset} (flags given win over it)", file=sys.stderr)
    session = prepare_training(data_cfg, model_cfg, train_cfg, out=args.out)
    if args.init_from:
        from app.core.resume import warm_start
        print(warm_start(session.model, args.init_from).summary(), file=sys.stderr)
    return session


def cmd_evaluate(args) -> int:
    from app.core.evaluation import evaluate_run

    report = evaluate_run(args.run_dir, spec=args.data, limit=args.limit, projections=args.projections,
                          anomaly_classes=args.anomaly_classes, split=args.split)
    for warning in report.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, default=float))
    else:
        for key, value in report.items():
            print(f"{key:28} {value}")
    return 0


def cmd_export(args) -> int:
    from app.core.evaluation import export_run

    if not (args.latents or args.scores or args.traversal):
        print("error: nothing to export: give --latents FILE.csv, --scores FILE.csv and/or --traversal FILE.png",
              file=sys.stderr)
        return 2
    notes: list[str] = []
    written = export_run(args.run_dir, spec=args.data, limit=args.limit, latents=args.latents, scores=args.scores,
                         traversal=args.traversal, percentile=args.percentile, split=args.split, notes=notes)
    for note in notes:
        print(note, file=sys.stderr)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_models(_args) -> int:
    from app.core.models import MODEL_KINDS_HELP
    for kind, text in MODEL_KINDS_HELP.items():
        print(f"{kind:12} {text}")
    return 0


def cmd_datasets(_args) -> int:
    from app.core.data import BUILTIN_DATASETS, describe_spec_kinds
    for name, text in BUILTIN_DATASETS.items():
        print(f"{name:12} {text}")
    for line in describe_spec_kinds():
        print(line)
    return 0


def cmd_search(args) -> int:
    from app.cli_search import cmd_search as run
    return run(args)


def cmd_transfer(args) -> int:
    from app.cli_transfer import cmd_transfer as run
    return run(args)


def cmd_tour(args) -> int:
    from app.gui.tour import run_tour  # the only command that needs Qt
    return run_tour(args.out, epochs=args.epochs, size=args.size)


def cmd_convert(args) -> int:
    from app.core.convert import convert  # issue 14: data larger than memory

    written = convert(DataConfig(spec=args.spec, image_size=args.image_size, memory_map="off"), args.out)
    print(f"wrote {written['out']}: {'x'.join(map(str, written['shape']))} {written['dtype']}"
          + (f", labels {written['labels']}" if written["labels"] else ""), file=sys.stderr)
    return 0


COMMANDS = {"convert": cmd_convert, "train": cmd_train, "evaluate": cmd_evaluate, "export": cmd_export, "models": cmd_models,
            "datasets": cmd_datasets, "tour": cmd_tour, "search": cmd_search,
            "transfer": cmd_transfer}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except LatentExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
