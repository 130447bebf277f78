"""Smoke test of the performance benchmarks (bench/): every script's main() runs in its tiny
--quick mode and reports the figures run_all expects from it.

Nothing is timed here: benchmarks report, CI does not judge speed. The scripts run in one
subprocess (bench/run_all.py --quick --in-process), so Qt (offscreen) stays out of this test
process, and with one thread per library so that a busy machine does not stretch the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MNIST = Path(os.environ.get("LATENT_EXPLORER_MNIST", ROOT.parent / "shared" / "data" / "mnist"))


def expected_figures() -> dict[str, list[str]]:
    sys.path.insert(0, str(ROOT))
    try:
        from bench.run_all import EXPECTED
    finally:
        sys.path.remove(str(ROOT))
    return EXPECTED


def test_every_benchmark_runs_in_quick_mode_and_reports_its_figures(tmp_path):
    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the benchmarks need the MNIST test set in {MNIST}")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1", XDG_CONFIG_HOME=str(tmp_path / "config"), PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--in-process"],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["quick"] is True
    assert not result["failed"], result["failed"]
    for script, keys in expected_figures().items():
        assert script in result["seconds"], f"{script} did not run"
        for key in keys:
            assert key in result["figures"], f"{script} did not report {key}"
            assert result["figures"][key]["script"] == script
    # Every figure with a target gets a verdict slot (None when a quick run skipped it).
    for key in ("train_time_ratio", "gui_train_time_ratio", "ui_lag_p99_ms", "slider_ms_p50", "startup_s",
                "scatter_update_ms"):
        figure = result["figures"][key]
        assert figure["target"] is not None and isinstance(figure["value"], (int, float))
        assert figure["pass"] in (True, False)
