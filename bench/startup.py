"""Start-up time and resident memory of the window.

startup_s: from just before this script starts `python <child>` to the first paint of the main
window in that child, on the monotonic clock both processes share. The child is this file with
--child: it creates the QApplication, installs an event filter that notes the first Paint event
of any widget of the MainWindow, and then runs exactly what `python main.py` runs
(app.__main__.main([]), the window on the built-in digits). Nothing is added to the app. Settings
go to a temporary XDG_CONFIG_HOME, so no saved layout is read or written. Three runs; the median.

Memory (the last run): resident set size of the window's process once the digits are loaded and
the window has idled a second (memory_idle_mb), then after opening the MNIST test set
(memory_mnist_mb). The projection process the window spawns is counted apart: at that moment it
is still importing and compiling UMAP (the warm-up), so its size is given as measured then.

Also: where the import time goes (python -X importtime of app.gui.main_window, by top-level package).

    python bench/startup.py [--runs 3] [--quick]

Prints a table and, last, one line of JSON with the figures.
"""

from __future__ import annotations

import time

_CHILD_START = time.monotonic()   # as early as possible in the child

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# --- the child ------------------------------------------------------------------------------------
def child(memory: bool, mnist: str) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(ROOT))
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    qt_app = QApplication([sys.argv[0]])

    def rss_mb(pid: int | None = None) -> float:
        import psutil
        return psutil.Process(pid).memory_info().rss / 2**20

    def report(**values) -> None:
        print("STARTUP " + json.dumps(values), flush=True)

    def measure_memory(window) -> None:
        def projection_mb() -> float | None:
            view = next((v for v in window.views if type(v).__name__ == "ProjectionView"), None)
            pid = view.runner.service.pid if view is not None and view.runner.service is not None else None
            return None if pid is None else rss_mb(pid)

        def idle_then(callback, seconds=1.0):
            QTimer.singleShot(int(seconds * 1000), callback)

        def after_digits() -> None:
            idle = rss_mb()
            child_idle = projection_mb()
            window.dataLoaded.connect(lambda: idle_then(lambda: after_mnist(idle, child_idle)))
            window.open_data(mnist)

        def after_mnist(idle, child_idle) -> None:
            report(memory_idle_mb=idle, memory_mnist_mb=rss_mb(), projection_process_mb=child_idle,
                   data_loaded=window.state.data.name if window.state.data is not None else None)
            window.confirm_close = False
            window.close()
            qt_app.quit()

        if window.state.data is not None:
            idle_then(after_digits)
        else:
            window.dataLoaded.connect(lambda: idle_then(after_digits))

    class FirstPaint(QObject):
        def __init__(self):
            super().__init__()
            self.done = False

        def eventFilter(self, obj, event):  # noqa: N802 - Qt override
            if not self.done and event.type() == QEvent.Type.Paint and isinstance(obj, QWidget) \
                    and type(obj.window()).__name__ == "MainWindow":
                self.done = True
                shown = time.monotonic()
                window = obj.window()
                report(child_start=_CHILD_START, shown=shown)
                qt_app.removeEventFilter(self)
                built = getattr(window, "viewsBuilt", None)   # views docked after the first show
                if built is not None and not window.views:
                    built.connect(lambda: report(views_built=time.monotonic()))
                else:
                    report(views_built=shown)
                if memory:
                    QTimer.singleShot(0, lambda: measure_memory(window))
                else:
                    def close():
                        if not window.views:   # wait for the views, to time them too
                            QTimer.singleShot(20, close)
                            return
                        window.confirm_close = False
                        window.close()
                        qt_app.quit()
                    QTimer.singleShot(0, close)
            return False

    watcher = FirstPaint()
    qt_app.installEventFilter(watcher)
    from app.__main__ import main as app_main
    app_main([])


# --- the parent -----------------------------------------------------------------------------------
def one_run(memory: bool, config_home: str) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=config_home,
               LATENT_EXPLORER_NO_CLOSE_PROMPT="1")
    from bench.common import MNIST_DIR
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--mnist", str(MNIST_DIR)]
    if memory:
        command.append("--memory")
    start = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    values: dict = {}
    for line in proc.stdout.splitlines():
        if line.startswith("STARTUP "):
            values.update(json.loads(line[len("STARTUP "):]))
    if "shown" not in values:
        raise SystemExit(f"the window did not report being shown (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    values["startup_s"] = values["shown"] - start
    values["interpreter_s"] = values["child_start"] - start
    values["views_s"] = values.get("views_built", float("nan")) - start
    return values


def import_breakdown() -> list[tuple[str, float]]:
    """Cumulative import seconds of each package that importing the window pulls in (nested ones
    are also inside their importer's figure)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import app.gui.main_window"],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=120,
                          env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    totals: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative_us, name = line.split("|", 2)
        name = name.strip()
        # A package's own line (no dot) carries the cumulative cost of its first import, wherever
        # in the tree it happened; "app" is the whole window, so it is left out.
        if "." in name or name == "app" or name.startswith("_"):
            continue
        totals[name] = totals.get(name, 0.0) + int(cumulative_us) / 1e6
    return sorted(totals.items(), key=lambda kv: -kv[1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run (smoke test)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mnist", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.memory, args.mnist)
        return {}
    sys.path.insert(0, str(ROOT))
    from bench.common import machine_line, print_table

    runs = 1 if args.quick else max(1, args.runs)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="latent-explorer-bench-config-") as config_home:
        results = [one_run(memory=(i == runs - 1), config_home=config_home) for i in range(runs)]
    breakdown = import_breakdown()
    memory = results[-1]
    figures = {
        "startup_s": round(statistics.median(r["startup_s"] for r in results), 2),
        "startup_views_s": round(statistics.median(r["views_s"] for r in results), 2),
        "memory_idle_mb": round(memory["memory_idle_mb"], 0),
        "memory_mnist_mb": round(memory["memory_mnist_mb"], 0),
        "projection_process_mb": None if memory.get("projection_process_mb") is None
        else round(memory["projection_process_mb"], 0),
    }
    print(machine_line())
    print("load average before: " + " / ".join(f"{x:.2f}" for x in load_before) + "; after: "
          + " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    print_table(["run", "interpreter up s", "window painted s", "views docked s"],
                [[i + 1, f"{r['interpreter_s']:.2f}", f"{r['startup_s']:.2f}", f"{r['views_s']:.2f}"]
                 for i, r in enumerate(results)])
    print(f"startup_s (median) {figures['startup_s']} (target <= 2.0)")
    print(f"resident memory: {figures['memory_idle_mb']:.0f} MB idle on digits, {figures['memory_mnist_mb']:.0f} MB "
          f"after opening {memory.get('data_loaded')}; projection process {figures['projection_process_mb']} MB "
          f"(while warming up)")
    print("import time by top-level package (python -X importtime, import app.gui.main_window): "
          + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in breakdown[:8]))
    figures["import_s"] = {name: round(seconds, 2) for name, seconds in breakdown[:6]}
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
