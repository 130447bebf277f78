"""Run every performance benchmark and print one table of figures against the issue's targets.

Each benchmark is a script of its own (its docstring says what it measures and how); this runs them
one after the other, each in a fresh process (so one's imports, threads and caches do not affect
the next), shows their output, and ends with a combined table and one line of JSON:

    {"figures": {name: {"value": v, "target": "<= 1.05" | null, "pass": true | false | null}}, ...}

    python bench/run_all.py                # the full set: about 8 minutes on the 2-core machine
    python bench/run_all.py --quick        # every script in its tiny mode (a smoke test; not measurements)
    python bench/run_all.py --only slider scatter
    python bench/run_all.py --markdown     # also print the table as Markdown, for the README

The machine is shared: the load average is sampled every 5 s during the run and printed with the
results. Ratios are measured within one process and run (alternating), so they hold up under load
better than absolute seconds do.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine_line, print_table  # noqa: E402

# name, module, arguments for the full run, arguments for --quick
SCRIPTS = [
    ("train_throughput", "bench.train_throughput", ["--epochs", "8"], ["--epochs", "2"]),
    ("gui_train", "bench.gui_train", ["--epochs", "8"], ["--quick"]),
    ("ui_lag", "bench.ui_lag", [], ["--quick"]),
    ("projections", "bench.projections", [], ["--quick"]),
    ("slider", "bench.slider", [], ["--quick"]),
    ("startup", "bench.startup", [], ["--quick"]),
    ("scatter", "bench.scatter", [], ["--quick"]),
]

# The targets (issue 5); figures without one are reported for information.
TARGETS = {
    "train_time_ratio": ("<=", 1.05),
    "gui_train_time_ratio": ("<=", 1.15),
    "flop_efficiency": (">=", 0.4),
    "ui_lag_p99_ms": ("<=", 16),
    "ui_lag_max_ms": ("<=", 50),
    "ui_lag_projection_p99_ms": ("<=", 16),
    "ui_lag_projection_max_ms": ("<=", 50),
    "slider_ms_p50": ("<=", 8),
    "slider_ms_p95": ("<=", 16),
    "umap_overhead_ratio": ("<=", 1.05),
    "tsne_overhead_ratio": ("<=", 1.05),
    "startup_s": ("<=", 2.0),
    "scatter_update_ms": ("<=", 100),
    "scatter_fps": (">=", 30),
    # issue 12 (speed) and issue 15 item 2 (selection at 10,000 points)
    "train_to_umap_s": ("<=", 10),
    "umap_cold_s": ("<=", 15),
    "tsne_s": ("<=", 20),
    "selection_ms": ("<=", 100),
    "selection_clear_ms": ("<=", 100),
    # issue 14, bench/scale.py (the million-point maps); keys missing there show as n/a
    "scatter_1m_update_ms": ("<=", 300),
    "scatter_1m_fps": (">=", 30),
    "hover_1m_ms": ("<=", 16),
}

# What each script must report (the smoke test checks these keys).
EXPECTED = {
    "train_throughput": ["train_time_ratio", "flop_efficiency"],
    "gui_train": ["gui_train_time_ratio"],
    "ui_lag": ["ui_lag_p99_ms", "ui_lag_max_ms", "ui_lag_projection_p99_ms", "ui_lag_projection_max_ms",
               "train_to_umap_s"],
    "projections": ["pca_s", "umap_s", "tsne_s", "umap_overhead_ratio", "tsne_overhead_ratio", "umap_cold_s",
                    "umap_trust", "tsne_trust"],
    "slider": ["slider_ms_p50", "slider_ms_p95", "slider_ms_p50_training", "slider_ms_p95_training",
               "slider_ms_p50_conv", "slider_ms_p95_conv"],
    "startup": ["startup_s", "memory_idle_mb", "memory_mnist_mb"],
    "scatter": ["scatter_update_ms", "scatter_fps", "selection_ms", "selection_clear_ms"],
}


class LoadSampler:
    """The 1-minute load average every few seconds, in a daemon thread."""

    def __init__(self, every_s: float = 5.0):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    def _run(self, every_s: float) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(every_s):
                return

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples or [os.getloadavg()[0]]
        return {"mean": round(sum(s) / len(s), 2), "min": round(min(s), 2), "max": round(max(s), 2), "samples": len(s)}


def run_script(module: str, args: list[str]) -> tuple[dict | None, str]:
    """Run `python -m module args` in a fresh process, echoing its output; (its JSON, error text)."""
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=str(ROOT), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True)
    reader.start()
    last = ""
    for line in proc.stdout:
        print("  " + line, end="", flush=True)
        if line.strip():
            last = line.strip()
    proc.wait()
    reader.join()
    noise = ("propagateSizeHints",)
    errors = "".join(line for line in stderr_lines[-30:] if not any(n in line for n in noise))
    if proc.returncode != 0:
        return None, f"exit code {proc.returncode}: {errors.strip()[-2000:]}"
    try:
        return json.loads(last), ""
    except json.JSONDecodeError:
        return None, f"the last line was not JSON: {last[:200]}"


def run_in_process(module: str, args: list[str]) -> tuple[dict | None, str]:
    """Import the script and call its main(args) here (used by --in-process, e.g. the smoke test)."""
    try:
        return importlib.import_module(module).main(args), ""
    except SystemExit as exc:
        return None, f"SystemExit: {exc}"
    except Exception as exc:  # noqa: BLE001 - one script failing must not hide the others
        import traceback
        traceback.print_exc()
        return None, f"{type(exc).__name__}: {exc}"


def verdict(name: str, value) -> tuple[str, bool | None]:
    target = TARGETS.get(name)
    if target is None:
        return "", None
    op, limit = target
    if value is None:
        return f"{op} {limit:g}", None
    ok = value <= limit if op == "<=" else value >= limit
    return f"{op} {limit:g}", bool(ok)


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every script in its tiny mode (smoke test)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=[s[0] for s in SCRIPTS],
                        help="run only these benchmarks")
    parser.add_argument("--in-process", action="store_true", help="call each main() in this process")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    chosen = [s for s in SCRIPTS if args.only is None or s[0] in args.only]
    results: dict[str, dict] = {}
    failures: dict[str, str] = {}
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    load_start = os.getloadavg()
    with LoadSampler() as load:
        for name, module, full_args, quick_args in chosen:
            script_args = quick_args if args.quick else full_args
            print(f"\n=== {name}: python -m {module} {' '.join(script_args)}", flush=True)
            t = time.perf_counter()
            runner = run_in_process if args.in_process else run_script
            figures, error = runner(module, script_args)
            seconds[name] = round(time.perf_counter() - t, 1)
            if figures is None:
                failures[name] = error
                print(f"  !! {name} failed: {error}", flush=True)
            else:
                results[name] = figures
    elapsed = time.perf_counter() - start

    combined: dict[str, dict] = {}
    rows = []
    for name, _, _, _ in chosen:
        figures = results.get(name)
        for key in EXPECTED[name] + [k for k in (figures or {}) if k not in EXPECTED[name]]:
            value = None if figures is None else figures.get(key)
            target, ok = verdict(key, value)
            combined[key] = {"value": value, "target": target or None, "pass": ok, "script": name}
            rows.append([name, key, fmt(value), target or "-",
                         "-" if ok is None and not target else ("PASS" if ok else "FAIL" if ok is False else "n/a")])
    load_summary = load.summary()
    print("\n" + "=" * 100)
    print(machine_line())
    print(f"load average (1 min) during the run: mean {load_summary['mean']}, min {load_summary['min']}, "
          f"max {load_summary['max']} ({load_summary['samples']} samples); at the start "
          + " / ".join(f"{x:.2f}" for x in load_start))
    print(f"total {elapsed:.0f} s: " + ", ".join(f"{k} {v:g} s" for k, v in seconds.items())
          + (" (QUICK MODE: smoke test, not measurements)" if args.quick else ""))
    print_table(["script", "figure", "value", "target", "verdict"], rows)
    for name, error in failures.items():
        print(f"FAILED {name}: {error}")
    if args.markdown:
        print("\n| figure | value | target | verdict |\n|---|---|---|---|")
        for _, key, value, target, verdict_text in rows:
            print(f"| `{key}` | {value} | {target} | {verdict_text} |")
    output = {"figures": combined, "failed": failures, "seconds": seconds, "elapsed_s": round(elapsed, 1),
              "load_average": load_summary, "quick": args.quick, "machine": machine_line()}
    print(json.dumps(output))
    return output


if __name__ == "__main__":
    result = main()
    sys.exit(1 if result["failed"] else 0)
