"""The load test of bench/load_test.py, small: two sessions at once browsing, sampling and training, then five
session open/close cycles. Asserted: no error element, no failed wait, both sessions connected together, and the
server's resident memory after the cycles within a bound of before (a leak of a session's worth each cycle, or
an upload or job kept forever, would exceed it). Times are reported by the bench script, not asserted."""

import asyncio
import concurrent.futures
import types
from pathlib import Path

import pytest
from streamlit_harness import CHROMIUM_PATH

RSS_GROWTH_LIMIT_MB = 150.0  # for 5 cycles; one session of the app is a few MB, a kept model tens of MB


def test_small_load_run_has_no_errors_and_no_memory_growth():
    if not Path(CHROMIUM_PATH).exists():
        pytest.skip(f"the load test needs {CHROMIUM_PATH} (Debian package 'chromium')")
    pytest.importorskip("playwright.async_api")
    from bench import load_test

    arguments = types.SimpleNamespace(sessions=2, cycles=5, deadline=600.0)
    # its own thread: the other browser tests' sync playwright keeps an event loop running in this one
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        report = pool.submit(asyncio.run, load_test.run(arguments)).result()
    print(report)
    assert report["errors"] == 0 and report["failed_waits"] == 0, report
    assert report["cycle_errors"] == 0 and report["cycle_failed_waits"] == 0, report
    assert report["sessions_connected_at_once"] == 2 and report["page_loads"] == 2 * len(load_test.PAGES)
    assert report["server_rss_after_mb"] - report["server_rss_before_mb"] < RSS_GROWTH_LIMIT_MB, report
