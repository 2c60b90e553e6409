"""The load test of bench/load_test.py, small: two sessions at once browsing, sampling and training, then five
session open/close cycles. Asserted: no error element, no failed wait, both sessions connected together, and the
server's resident memory after the cycles within a bound of before (a leak of a session's worth each cycle, or
an upload or job kept forever, would exceed it). Times are reported by the bench script, not asserted.

The run is the bench script itself in a child process (`python bench/load_test.py ... --json FILE`): its asyncio
playwright cannot share this process, where the session's sync playwright browser keeps an event loop running
in the main thread. The child has a bounded wall time (its own --deadline, and a kill after SUBPROCESS_LIMIT_S)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit_harness import CHROMIUM_PATH, REPO_ROOT

RSS_GROWTH_LIMIT_MB = 150.0  # for 5 cycles; one session of the app is a few MB, a kept model tens of MB
SESSIONS, CYCLES, DEADLINE_S = 2, 5, 600
SUBPROCESS_LIMIT_S = DEADLINE_S + 120  # the deadline covers the two phases; this adds server start and stop


def test_small_load_run_has_no_errors_and_no_memory_growth(tmp_path):
    if not Path(CHROMIUM_PATH).exists():
        pytest.skip(f"the load test needs {CHROMIUM_PATH} (Debian package 'chromium')")
    pytest.importorskip("playwright.async_api")
    from bench import load_test

    report_path = tmp_path / "load_test.json"
    command = [sys.executable, str(REPO_ROOT / "bench" / "load_test.py"), "--sessions", str(SESSIONS),
               "--cycles", str(CYCLES), "--deadline", str(DEADLINE_S), "--json", str(report_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_LIMIT_S)
    assert report_path.exists(), f"the load run wrote no report (exit {done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(report_path.read_text())
    print(report)
    assert report["sessions"] == SESSIONS and report["cycles"] == CYCLES, report
    assert report["errors"] == 0 and report["failed_waits"] == 0, report
    assert report["cycle_errors"] == 0 and report["cycle_failed_waits"] == 0, report
    assert report["sessions_connected_at_once"] == SESSIONS and report["page_loads"] == SESSIONS * len(load_test.PAGES)
    assert report["server_rss_after_mb"] - report["server_rss_before_mb"] < RSS_GROWTH_LIMIT_MB, report
    assert done.returncode == 0, done.stderr[-3000:]
