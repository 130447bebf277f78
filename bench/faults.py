"""Fault benchmark: crash kills, fuzzing, closing the window mid-training, memory over many cycles.

    python bench/faults.py [--kills 200] [--cli-kills 5] [--fuzz-count 10000] [--cycles 50] [--close-cycles 50]

1. SIGKILL at random moments (uniform 0-300 ms after start) of processes saving checkpoints in a
   tight loop (over one run directory, as autosave generations, into fresh directories), plus
   real CLI trainings killed after their first autosave: afterwards every run directory and
   generation must load completely or say it holds no finished checkpoint (bench/kill_targets.py).
2. Fuzzing every reader (bench/fuzz_readers.py): inputs per reader, unexpected exception types.
3. Closing the window while it trains, in one offscreen process: hangs, crashes, threads and child
   processes left behind (needs app.gui.main_window.MainWindow).
4. Load data / train briefly / encode / PCA / drop everything, in one process: resident memory
   growth and thread count (psutil).

Prints a table and, last, one line of JSON with the same figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------------------
# 1. kills

def measure_kills(kills: int, cli_kills: int, seed: int = 0) -> dict:
    from bench.kill_targets import KillHarness, TreeReport, check_run_dir, check_tree, kill_cli_training

    work = Path(tempfile.mkdtemp(prefix="faults-kill-"))
    survived = 0
    from_previous = 0
    failures: list[str] = []
    delays = []
    t0 = time.perf_counter()
    harness = KillHarness(work / "loop", max_delay_s=0.3, seed=seed)
    try:
        for i in range(kills):
            delays.append(harness.kill_save_loop(f"fresh-{i}"))
            report = TreeReport()
            for name in ("overwrite", f"fresh-{i}"):
                if (work / "loop" / name).exists():
                    check_run_dir(work / "loop" / name, report)
            from app.core.autosave import generations, latest_autosave
            gens = generations(work / "loop" / "autosave")
            for gen in gens:
                check_run_dir(gen, report)
            if gens and latest_autosave(work / "loop" / "autosave") != gens[0]:
                report.failures.append("newest autosave generation does not load")
            from_previous += report.from_previous
            if report.failures:
                failures.extend(report.failures[:3])
            else:
                survived += 1
    finally:
        harness.close()
    loop_seconds = time.perf_counter() - t0
    final = check_tree(work / "loop")
    rng = random.Random(seed)
    cli_survived = 0
    t1 = time.perf_counter()
    for i in range(cli_kills):
        kill_cli_training(work / "cli" / f"run-{i}", rng)
        report = check_tree(work / "cli" / f"run-{i}")
        if report.failures:
            failures.extend(report.failures[:3])
        else:
            cli_survived += 1
    cli_seconds = time.perf_counter() - t1
    cli_final = check_tree(work / "cli") if cli_kills else TreeReport()
    shutil.rmtree(work, ignore_errors=True)
    return {"save_loop_kills": kills, "save_loop_survived": survived, "cli_kills": cli_kills,
            "cli_survived": cli_survived, "loads_from_previous_weights": from_previous, "dirs_loaded": final.loaded + cli_final.loaded,
            "dirs_unfinished": final.unfinished + cli_final.unfinished,
            "final_check_failures": len(final.failures) + len(cli_final.failures),
            "failures": failures[:10], "median_kill_delay_ms": round(1000 * sorted(delays)[len(delays) // 2], 1)
            if delays else None, "seconds": round(loop_seconds + cli_seconds, 1)}


# ---------------------------------------------------------------------------------------------
# 3. close while training (a child process: Qt offscreen)

CLOSE_LOOP_TIMEOUT_S = 20.0
WARM_UP = os.environ.get("FAULTS_WARM_UP_PROJECTIONS", "1") == "1"   # the window starts its projection process


def close_loop_child(cycles: int) -> None:
    """Runs in its own process: 50 x (new window, start training, close) and prints JSON."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["LATENT_EXPLORER_NO_CLOSE_PROMPT"] = "1"
    autosave_dir = tempfile.mkdtemp(prefix="faults-autosave-")
    os.environ["LATENT_EXPLORER_AUTOSAVE_DIR"] = autosave_dir      # the window's autosaves: thrown away
    import psutil
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    try:
        from app.gui.app import configure_pyqtgraph
        configure_pyqtgraph()
    except ImportError:
        pass
    proc = psutil.Process()
    rng = random.Random(0)

    def wait(ms: int, signal=None) -> bool:
        loop = QEventLoop()
        fired = {"ok": signal is None}
        if signal is not None:
            def done(*_):
                fired["ok"] = True
                loop.quit()
            signal.connect(done)
        QTimer.singleShot(ms, loop.quit)
        loop.exec()
        if signal is not None:
            try:
                signal.disconnect(done)
            except (RuntimeError, TypeError):
                pass
        return fired["ok"]

    def configure(window) -> None:
        model = window.training_panel.model_form.widgets
        model["kind"].setCurrentIndex(model["kind"].findData("vae"))
        model["hidden"].setText("64")
        model["latent_dim"].setValue(4)
        form = window.training_panel.train_form.widgets
        form["epochs"].setValue(1000)
        form["device"].setCurrentIndex(form["device"].findData("cpu"))

    result = {"cycles": 0, "started": 0, "slowest_close_s": 0.0, "hangs": 0, "errors": []}
    baseline_threads = None
    for cycle in range(cycles):
        try:
            window = MainWindow(load_builtin="digits", warm_up_projections=WARM_UP)
            window.confirm_close = False
            window.show()
            if window.state.data is None:
                wait(60_000, window.dataLoaded)
            configure(window)
            if window.start_training():
                result["started"] += 1
            wait(rng.randint(50, 600))
            t0 = time.perf_counter()
            closed = window.close()
            seconds = time.perf_counter() - t0
            result["slowest_close_s"] = max(result["slowest_close_s"], round(seconds, 3))
            if not closed or seconds > CLOSE_LOOP_TIMEOUT_S:
                result["hangs"] += 1
            window.deleteLater()
            wait(50)
            app.processEvents()
            result["cycles"] += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported
            result["errors"].append(f"cycle {cycle}: {type(exc).__name__}: {exc}"[:300])
        if cycle == 0:
            gc.collect()
            baseline_threads = (threading.active_count(), proc.num_threads())
    gc.collect()
    wait(200)
    result["python_threads_after_first"] = baseline_threads[0] if baseline_threads else None
    result["python_threads_end"] = threading.active_count()
    result["os_threads_after_first"] = baseline_threads[1] if baseline_threads else None
    result["os_threads_end"] = proc.num_threads()
    result["children_end"] = len(proc.children(recursive=True))
    result["children_names"] = sorted({_describe(c) for c in proc.children(recursive=True)})[:5]
    shutil.rmtree(autosave_dir, ignore_errors=True)
    print("CLOSE-LOOP " + json.dumps(result), flush=True)


def _describe(process) -> str:
    """A child process in a few words: multiprocessing's helper processes say which they are."""
    try:
        cmd = " ".join(process.cmdline())
    except Exception:  # noqa: BLE001 - it may have just ended
        return "?"
    for marker in ("resource_tracker", "forkserver", "spawn_main", "semaphore_tracker"):
        if marker in cmd:
            return f"multiprocessing {marker}"
    return cmd[:60]


def measure_close_loop(cycles: int) -> dict:
    try:
        import importlib.util
        if importlib.util.find_spec("app.gui.main_window") is None:
            raise ImportError
        from app.gui.main_window import MainWindow  # noqa: F401
    except Exception:  # noqa: BLE001 - the window is optional in this figure
        return {"measured": False, "reason": "not measured: window not built"}
    t0 = time.perf_counter()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LATENT_EXPLORER_NO_CLOSE_PROMPT": "1"}
    try:
        out = subprocess.run([sys.executable, str(Path(__file__)), "--close-loop-child", str(cycles)], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60 + 30 * cycles)
    except subprocess.TimeoutExpired:
        return {"measured": True, "crashed": False, "hung": True, "seconds": round(time.perf_counter() - t0, 1)}
    lines = [line for line in out.stdout.splitlines() if line.startswith("CLOSE-LOOP ")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        return {"measured": True, "crashed": True, "returncode": out.returncode, "tail": tail,
                "seconds": round(time.perf_counter() - t0, 1)}
    result = json.loads(lines[-1][len("CLOSE-LOOP "):])
    result.update(measured=True, crashed=False, seconds=round(time.perf_counter() - t0, 1))
    return result


# ---------------------------------------------------------------------------------------------
# 4. memory over cycles (the core, in this process)

def measure_memory(cycles: int) -> dict:
    import psutil

    from app.core.config import DataConfig, ModelConfig, TrainConfig
    from app.core.projections import project
    from app.core.session import encode, prepare_training
    from app.core.trainer import train_to_end

    proc = psutil.Process()
    # One torch thread: on a busy 2-core machine, two OpenMP threads that spin-wait for each other
    # made these tiny steps 50-100x slower (1-7 s instead of 15 ms an epoch), and memory is the point here.
    import torch
    torch.set_num_threads(1)

    def one_cycle(i: int) -> None:
        prepared = prepare_training(DataConfig(spec="digits"), ModelConfig(kind="vae", latent_dim=4, hidden=(64,)),
                                    TrainConfig(epochs=1, batch_size=128, seed=i))
        train_to_end(prepared.trainer)
        codes = encode(prepared.model, prepared.data.x)
        project(codes, "pca")
        del prepared, codes

    rss = []
    t0 = time.perf_counter()
    start_threads = None
    for i in range(cycles):
        one_cycle(i)
        gc.collect()
        rss.append(proc.memory_info().rss)
        if i == 0:
            start_threads = (threading.active_count(), proc.num_threads())
    warm = min(5, cycles - 1)
    return {"cycles": cycles, "rss_after_first_mb": round(rss[0] / 2**20, 1),
            "rss_growth_mb": round((rss[-1] - rss[warm]) / 2**20, 1), "warmup_cycles": warm,
            "rss_growth_from_first_mb": round((rss[-1] - rss[0]) / 2**20, 1),
            "python_threads_start": start_threads[0], "python_threads_end": threading.active_count(),
            "os_threads_start": start_threads[1], "os_threads_end": proc.num_threads(),
            "seconds": round(time.perf_counter() - t0, 1)}


# ---------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="crash kills, fuzzing, close-while-training, memory growth")
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs of the save loop")
    parser.add_argument("--cli-kills", type=int, default=5, help="SIGKILLs of real CLI trainings")
    parser.add_argument("--fuzz-count", type=int, default=10_000, help="fuzz inputs per reader")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cycles", type=int, default=50, help="load/train/project cycles for memory")
    parser.add_argument("--close-cycles", type=int, default=50, help="window close-while-training cycles")
    parser.add_argument("--close-loop-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.close_loop_child is not None:
        close_loop_child(args.close_loop_child)
        return 0

    from bench.common import machine_line, print_table
    from bench.fuzz_readers import run_all

    print(machine_line())
    t_all = time.perf_counter()
    kills = measure_kills(args.kills, args.cli_kills)
    print(f"kills done in {kills['seconds']} s", file=sys.stderr)
    fuzz = run_all(args.fuzz_count, workers=args.workers) if args.fuzz_count else []
    print("fuzz done", file=sys.stderr)
    close = measure_close_loop(args.close_cycles) if args.close_cycles else {"measured": False, "reason": "skipped"}
    print("close loop done", file=sys.stderr)
    memory = measure_memory(args.cycles)

    rows = [
        ["SIGKILL of a save loop (0-300 ms)", f"{kills['save_loop_survived']}/{kills['save_loop_kills']} survived",
         f"{kills['dirs_loaded']} run dirs loaded, {kills['dirs_unfinished']} said 'no finished checkpoint', "
         f"{kills['final_check_failures']} broken; {kills['loads_from_previous_weights']} checks loaded the kept "
         f"previous weights of an interrupted overwrite"],
        ["SIGKILL of a CLI training", f"{kills['cli_survived']}/{kills['cli_kills']} survived",
         "autosave generations and run dir checked after each"],
    ]
    for r in fuzz:
        kinds = "; ".join(f"{n} x {k}" for k, n in r["kinds"].items()) or "none"
        rows.append([f"fuzz {r['reader']}", f"{r['inputs']:,} inputs", f"{r['unexpected']} unexpected ({kinds[:80]}), "
                     f"{r['refused']:,} refused with a message, {r['seconds']} cpu-s"])
    if close.get("measured") and not close.get("crashed") and not close.get("hung"):
        rows.append(["close window while training", f"{close['cycles']}/{args.close_cycles} cycles",
                     f"{close['started']} trainings started, {close['hangs']} hangs, slowest close "
                     f"{close['slowest_close_s']} s, threads {close['python_threads_after_first']}->"
                     f"{close['python_threads_end']} (python), {close['os_threads_after_first']}->"
                     f"{close['os_threads_end']} (OS), {close['children_end']} child processes left "
                     f"{close.get('children_names') or ''}, "
                     f"{len(close['errors'])} errors"])
    elif close.get("measured"):
        rows.append(["close window while training", "CRASHED" if close.get("crashed") else "HUNG",
                     " | ".join(close.get("tail", []))[:200]])
    else:
        rows.append(["close window while training", close["reason"], ""])
    rows.append([f"{memory['cycles']} x load/train/encode/PCA", f"{memory['rss_growth_mb']:+} MB RSS",
                 f"after {memory['warmup_cycles']} warm-up cycles ({memory['rss_growth_from_first_mb']:+} MB from "
                 f"cycle 1); threads {memory['python_threads_start']}->{memory['python_threads_end']} (python), "
                 f"{memory['os_threads_start']}->{memory['os_threads_end']} (OS)"])
    print_table(["fault", "result", "details"], rows)
    for failure in kills["failures"]:
        print(f"  kill failure: {failure}")
    for r in fuzz:
        for e in r["examples"]:
            print(f"  fuzz {r['reader']}: {e['error']} ({e['input']})")
    if close.get("errors"):
        for e in close["errors"][:5]:
            print(f"  close loop: {e}")
    total = time.perf_counter() - t_all
    print(f"total {total:.0f} s")
    summary = {
        "kills": {"save_loop": kills["save_loop_kills"], "save_loop_survived": kills["save_loop_survived"],
                  "cli": kills["cli_kills"], "cli_survived": kills["cli_survived"],
                  "broken_dirs": kills["final_check_failures"]},
        "fuzz": {r["reader"]: {"inputs": r["inputs"], "unexpected": r["unexpected"]} for r in fuzz},
        "close_while_training": {k: v for k, v in close.items() if k not in ("errors", "tail", "children_names")},
        "memory": memory,
        "seconds": round(total, 1),
    }
    print(json.dumps(summary))
    ok = (kills["save_loop_survived"] == kills["save_loop_kills"] and kills["cli_survived"] == kills["cli_kills"]
          and all(r["unexpected"] == 0 for r in fuzz) and memory["rss_growth_mb"] < 50)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
