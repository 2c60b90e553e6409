"""A bounded load test of the app: N browser sessions at once, then repeated session open/close cycles.

    python bench/load_test.py --sessions 6 --cycles 50 --json docs/results/load_test.json

It starts its own `streamlit run app.py` on a free 127.0.0.1 port (loopback only; nothing else is contacted)
with tiny seeded checkpoints (tests/helpers.py, T = 40), drives it with headless Debian chromium through
playwright, and stops by itself: every wait has a timeout and the whole run a --deadline. Phases:

1. concurrent: --sessions browser contexts (each its own Streamlit session and identity cookie) at the same
   time, each opening Home, Sample (one sampling run), Schedule lab and Train; the first session also starts
   a small training job and stops it. Reported: sessions connected at once, p50/p95 page time (goto until
   the script run has finished), error elements and failed waits.
2. cycles: after 3 warm-up cycles, --cycles times open a new session on Home and close it. The server's
   resident memory (VmRSS of its process) is read before and after, once the closed sessions have expired
   (STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL=2 for this server).

Page time includes the browser's own work on the same machine; on a 2-core CPU that is most of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "browser")]  # the shared test harness and checkpoints

from helpers import make_checkpoints  # noqa: E402
from streamlit_harness import _APP_IDLE_JS, CHROMIUM_ARGS, CHROMIUM_PATH, ERROR_SELECTOR, serve_streamlit  # noqa: E402

PAGES = ("", "sample", "schedules", "train")
WAIT_S = 180.0  # one page's script run, on a loaded 2-core machine
SESSION_TTL_S = 2  # closed sessions are dropped this long after their websocket closes
WARM_CYCLES = 3  # open/close cycles before the "before" memory reading


def server_rss_bytes(port: int) -> int:
    """VmRSS of the `streamlit run` process listening on `port` (found through /proc; Linux only)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(args) and str(port).encode() in args:
            status = (cmdline.parent / "status").read_text()
            return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) * 1024
    raise RuntimeError(f"no streamlit process on port {port}")


class Session:
    """One browser context = one Streamlit session, with timing of every page it opens."""

    def __init__(self, browser, base_url: str, results: dict):
        self.browser, self.base_url, self.results = browser, base_url, results

    async def __aenter__(self):
        self.context = await self.browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = await self.context.new_page()
        return self

    async def __aexit__(self, *exc):
        await self.context.close()

    async def wait_idle(self) -> bool:
        await self.page.wait_for_timeout(250)
        try:
            await self.page.wait_for_function(_APP_IDLE_JS, timeout=WAIT_S * 1000, polling=100)
            return True
        except Exception:  # a playwright timeout: counted, the run goes on
            self.results["failed_waits"] += 1
            return False

    async def open(self, path: str) -> None:
        started = time.perf_counter()
        try:
            await self.page.goto(f"{self.base_url}/{path}", timeout=WAIT_S * 1000)
        except Exception:
            self.results["failed_waits"] += 1
            return
        if await self.wait_idle():
            self.results["page_seconds"].append(time.perf_counter() - started)
        self.results["errors"] += await self.page.locator(ERROR_SELECTOR).count()

    async def click(self, name: str) -> None:
        try:
            await self.page.get_by_role("button", name=name).first.click(timeout=WAIT_S * 1000)
        except Exception:  # a playwright timeout: the button never appeared
            self.results["failed_waits"] += 1
            return
        await self.wait_idle()
        self.results["errors"] += await self.page.locator(ERROR_SELECTOR).count()

    async def connected(self) -> bool:
        return await self.page.evaluate(
            "() => document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-connection-state')"
            " === 'CONNECTED'")


async def browse(session: Session, trains: bool, barrier: asyncio.Barrier, held: list) -> None:
    for path in PAGES:
        await session.open(path)
        if path == "sample":
            await session.click("Sample")
        if path == "train" and trains:
            await session.click("Start training")
            await session.click("Stop")
    await barrier.wait()  # every session has done its pages and is still open: count those connected
    held.append(await session.connected())
    await barrier.wait()


async def run(args) -> dict:
    from playwright.async_api import async_playwright

    results = {"page_seconds": [], "errors": 0, "failed_waits": 0}
    cycle_results = {"page_seconds": [], "errors": 0, "failed_waits": 0}
    with tempfile.TemporaryDirectory() as folder:
        env = {"RDL_CHECKPOINT_DIR": str(make_checkpoints(Path(folder))),
               "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(SESSION_TTL_S)}
        log = Path(folder) / "server.log"
        with serve_streamlit(REPO / "app.py", log, env=env) as base_url:
            port = int(base_url.rsplit(":", 1)[1])
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
                # 1. concurrent sessions
                barrier, held = asyncio.Barrier(args.sessions), []
                sessions = [Session(browser, base_url, results) for _ in range(args.sessions)]
                started = time.perf_counter()
                async with asyncio.timeout(args.deadline / 2):
                    await asyncio.gather(*(_with(s, browse, i == 0, barrier, held) for i, s in enumerate(sessions)))
                concurrent_seconds = time.perf_counter() - started
                # 2. open/close cycles, memory before and after (after WARM_CYCLES, so caches are filled)
                for _ in range(WARM_CYCLES):
                    async with Session(browser, base_url, cycle_results) as warm:
                        await warm.open("")
                await asyncio.sleep(SESSION_TTL_S + 3)
                rss_before = server_rss_bytes(port)
                async with asyncio.timeout(args.deadline / 2):
                    for _ in range(args.cycles):
                        async with Session(browser, base_url, cycle_results) as session:
                            await session.open("")
                await asyncio.sleep(SESSION_TTL_S + 3)
                rss_after = server_rss_bytes(port)
                await browser.close()
    times = sorted(results["page_seconds"])
    return {
        "sessions": args.sessions, "sessions_connected_at_once": sum(held),
        "page_loads": len(times), "p50_page_s": _quantile(times, 0.5), "p95_page_s": _quantile(times, 0.95),
        "errors": results["errors"], "failed_waits": results["failed_waits"],
        "concurrent_phase_s": round(concurrent_seconds, 1),
        "cycles": args.cycles, "cycle_errors": cycle_results["errors"], "cycle_failed_waits": cycle_results["failed_waits"],
        "cycle_p50_page_s": _quantile(sorted(cycle_results["page_seconds"]), 0.5),
        "server_rss_before_mb": round(rss_before / 2**20, 1), "server_rss_after_mb": round(rss_after / 2**20, 1),
        "rss_growth_per_cycle_kb": round((rss_after - rss_before) / max(1, args.cycles) / 1024, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


async def _with(session: Session, work, *args):
    async with session:
        await work(session, *args)


def _quantile(values: list, q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=6, help="browser sessions at once (1..32)")
    parser.add_argument("--cycles", type=int, default=50, help="session open/close cycles (0..500)")
    parser.add_argument("--deadline", type=float, default=1200.0, help="seconds for the whole run (60..3600)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not (1 <= args.sessions <= 32 and 0 <= args.cycles <= 500 and 60 <= args.deadline <= 3600):
        parser.error("--sessions 1..32, --cycles 0..500, --deadline 60..3600")
    if not Path(CHROMIUM_PATH).exists():
        parser.error(f"needs {CHROMIUM_PATH} (Debian package 'chromium')")
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["errors"] == 0 and report["failed_waits"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
