"""A class opening the Sample page at the same moment (issue 18 item 7): N sessions on loopback, cold then warm.

    python bench/burst.py --sessions 30 --json docs/results/burst.json

Starts its own `streamlit run app.py` on a free 127.0.0.1 port (nothing else is contacted) with the repository's
shipped checkpoints (or, with --tiny, the test suite's tiny seeded ones: a quick check that the benchmark works),
then drives it over Streamlit's own websocket protocol (the protobuf messages a browser exchanges with the server:
one connection per session, no browser, so 30 sessions cost the client side little on 2 cores). Each session
connects, runs Home, and as soon as Home's script has finished asks for the Sample page; the time to Sample's first
result is when the server sends the element saying "sampled in". A session counts as done when Sample's script has
finished, and as failed if any exception element came (also one after the first result, e.g. in a figure below it).
All sessions start together (one asyncio barrier).

Two bursts against the same server process:
1. cold: the server has just started (it has served only the health check): nothing cached, modules not imported,
   and with the default $RDL_WARM the first visit starts the warm-up (ui/warm.py);
2. warm: the same burst again with new sessions, everything the first burst computed still cached.

Reported per burst: p50/p95/max seconds from the burst's start to Sample's first result (and from each session's
Sample request), the server's CPU seconds during the burst (user + system of the server process, /proc, all its
threads), wall seconds, sessions that failed (an exception element, a timeout, a closed connection). With --json
also the machine (CPU model, lscpu flags, cores), the load average before each burst and the command. Run it on an
otherwise idle machine for numbers to report; `--warm-up off` sets RDL_WARM=0 to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from bench.report import command_line, cpu_flags_summary, cpu_model, load_average, now_utc, write_json  # noqa: E402
from tests.browser.streamlit_harness import free_port  # noqa: E402

RESULT_TEXT = b"sampled in"  # the caption under Sample's first result (pages/sample.py)
SAMPLE_PATH = "sample"  # the Sample page's URL path
START_TIMEOUT_S = 180.0


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process and its waited-for children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Server:
    """`streamlit run app.py` on a free loopback port, stopped on exit."""

    def __init__(self, env: dict, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env, self.log_path = env, log_path

    def __enter__(self) -> Server:
        command = [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.headless", "true",
                   "--server.address", "127.0.0.1", "--server.port", str(self.port), "--server.fileWatcherType", "none",
                   "--browser.gatherUsageStats", "false"]
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **self.env})
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not become healthy in {START_TIMEOUT_S:.0f} s; see {self.log_path}")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)


def rerun_message(page_script_hash: str = "", page_name: str = "") -> bytes:
    """The BackMsg a browser sends to run a page (Streamlit's ClientState)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    message = BackMsg()
    message.rerun_script.query_string = ""
    message.rerun_script.page_script_hash = page_script_hash
    message.rerun_script.page_name = page_name
    return message.SerializeToString()


async def session(url: str, barrier: asyncio.Barrier, timeout: float, out: dict) -> None:
    """One student: connect, run Home, then Sample; record when Sample's first result arrives."""
    import websockets
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    out.update(ok=False, error=None)
    await barrier.wait()
    start = out["start"] = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            async with websockets.connect(url.replace("http", "ws") + "/_stcore/stream", subprotocols=["streamlit"],
                                          max_size=2**28, open_timeout=timeout) as socket_:
                await socket_.send(rerun_message())
                sample_hash, phase = None, "home"
                async for raw in socket_:
                    message = ForwardMsg()
                    message.ParseFromString(raw)
                    kind = message.WhichOneof("type")
                    if kind == "navigation":
                        sample_hash = next((page.page_script_hash for page in message.navigation.app_pages
                                            if page.url_pathname == SAMPLE_PATH), sample_hash)
                    elif kind == "delta" and message.delta.WhichOneof("type") == "new_element" \
                            and message.delta.new_element.WhichOneof("type") == "exception":
                        out["error"] = f"{phase}: {message.delta.new_element.exception.type}: " \
                                       f"{message.delta.new_element.exception.message[:200]}"
                        return
                    elif kind == "delta" and phase == "sample" and RESULT_TEXT in raw:
                        out["to_result_s"] = time.perf_counter() - start
                        out["from_request_s"] = time.perf_counter() - out["sample_requested"]
                        phase = "rest"  # the rest of the page must still come without an exception
                    elif kind == "script_finished" and phase == "rest":
                        out["ok"] = True
                        return
                    elif kind == "script_finished" and phase == "home":
                        if sample_hash is None:
                            out["error"] = "no Sample page in the navigation"
                            return
                        out["home_s"] = time.perf_counter() - start
                        phase, out["sample_requested"] = "sample", time.perf_counter()
                        await socket_.send(rerun_message(sample_hash, SAMPLE_PATH))
                    elif kind == "script_finished" and phase == "sample":
                        out["error"] = "Sample finished without a result"
                        return
    except TimeoutError:
        out["error"] = f"no result within {timeout:.0f} s"
    except Exception as error:  # noqa: BLE001 - a benchmark reports every failed session and goes on
        out["error"] = f"{type(error).__name__}: {error}"


def quantile(values: list, q: float) -> float | None:
    """The q-quantile (linear interpolation between order statistics), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def burst(server: Server, sessions: int, timeout: float) -> dict:
    """All sessions at once; the summary of their times and the server's CPU seconds."""
    load = load_average()
    cpu_before, wall_before = server.cpu_seconds(), time.perf_counter()
    barrier = asyncio.Barrier(sessions)
    results = [{} for _ in range(sessions)]
    await asyncio.gather(*(session(server.url, barrier, timeout, out) for out in results))
    wall, cpu = time.perf_counter() - wall_before, server.cpu_seconds() - cpu_before
    times = [r["to_result_s"] for r in results if r.get("ok")]
    from_request = [r["from_request_s"] for r in results if r.get("ok")]
    return {"sessions": sessions, "ok": len(times), "failed": [r["error"] for r in results if not r.get("ok")],
            "p50_s": quantile(times, 0.5), "p95_s": quantile(times, 0.95), "max_s": max(times, default=None),
            "from_sample_request_p50_s": quantile(from_request, 0.5),
            "from_sample_request_p95_s": quantile(from_request, 0.95),
            "home_p50_s": quantile([r["home_s"] for r in results if "home_s" in r], 0.5),
            "server_cpu_s": cpu, "wall_s": wall, "load_average_before": load}


def run(args) -> dict:
    env = {"RDL_WARM": "1" if args.warm_up == "on" else "0", "OMP_WAIT_POLICY": "PASSIVE"}
    with tempfile.TemporaryDirectory(prefix="rdl-burst-") as folder:
        env["RDL_RUNS_DIR"] = str(Path(folder) / "runs")
        if args.tiny:
            from helpers import make_checkpoints

            env["RDL_CHECKPOINT_DIR"] = str(make_checkpoints(Path(folder) / "checkpoints"))
        with Server(env, Path(args.log)) as server:
            document = {"benchmark": "burst", "when": now_utc(), "command": command_line("bench/burst.py", args.argv),
                        "cpu": cpu_model(), "cpu_flags": cpu_flags_summary(), "cpu_cores": os.cpu_count(),
                        "checkpoints": "tests/helpers.py tiny (T = 40)" if args.tiny else "shipped (checkpoints/)",
                        "warm_up": args.warm_up, "server_cpu_s_at_start": server.cpu_seconds()}
            for name in ("cold", "warm"):
                document[name] = asyncio.run(burst(server, args.sessions, args.timeout))
                summary = document[name]
                print(f"{name}: {summary['ok']}/{summary['sessions']} sessions, p50 {fmt(summary['p50_s'])} s, "
                      f"p95 {fmt(summary['p95_s'])} s to Sample's first result; server {summary['server_cpu_s']:.1f} CPU-s "
                      f"in {summary['wall_s']:.1f} s; load {summary['load_average_before']}", flush=True)
                for error in summary["failed"][:5]:
                    print(f"  failed: {error}", flush=True)
    return document


def fmt(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=30, help="sessions opening Home then Sample at once (default 30)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one session may wait for its result")
    parser.add_argument("--warm-up", choices=("on", "off"), default="on", help="the server's RDL_WARM (default on)")
    parser.add_argument("--tiny", action="store_true", help="the test suite's tiny checkpoints instead of the shipped ones")
    parser.add_argument("--log", default=str(Path(tempfile.gettempdir()) / "rdl-burst-server.log"), help="server log file")
    parser.add_argument("--json", help="write the results here (e.g. docs/results/burst.json)")
    args = parser.parse_args(argv)
    if not 1 <= args.sessions <= 200:
        parser.error("--sessions must be between 1 and 200")
    if not 1 <= args.timeout <= 3600:
        parser.error("--timeout must be between 1 and 3600 seconds")
    args.argv = argv
    document = run(args)
    if args.json:
        write_json(args.json, document)
    failed = sum(len(document[name]["failed"]) for name in ("cold", "warm"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
