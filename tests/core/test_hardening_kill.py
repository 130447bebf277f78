"""Crash safety: processes killed with SIGKILL while saving leave run directories that either load
completely or say they hold no finished checkpoint (bench/faults.py does the same 200 times)."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the project root, for bench/
from bench.kill_targets import KillHarness, TreeReport, check_run_dir, check_tree, kill_cli_training  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not hasattr(os, "fork"), reason="needs fork and SIGKILL")


def test_save_loops_killed_at_random_moments_leave_loadable_or_unfinished_runs(tmp_path):
    harness = KillHarness(tmp_path, max_delay_s=0.3, seed=7)
    try:
        report = TreeReport()
        for i in range(12):
            harness.kill_save_loop(f"fresh-{i}")
            for name in ("overwrite", f"fresh-{i}"):
                if (tmp_path / name).exists():
                    check_run_dir(tmp_path / name, report)
            assert not report.failures, report.failures
    finally:
        harness.close()
    final = check_tree(tmp_path)
    assert not final.failures, final.failures
    assert final.loaded >= 3          # the overwritten run and the autosaves at least
    assert harness.kills == 12


def test_a_real_cli_training_killed_twice_keeps_its_autosaves(tmp_path):
    rng = random.Random(3)
    for i in range(2):
        kill_cli_training(tmp_path / f"run-{i}", rng, max_after_first_save_s=1.0)
    report = check_tree(tmp_path)
    assert not report.failures, report.failures
    assert report.loaded >= 2          # at least one autosave generation per run
