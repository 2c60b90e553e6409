"""What one scrub step costs the server: a real `streamlit run app.py`, a headless chromium tab, the keyboard.

For each page's timestep scrubber (Denoise's t, the Sample page's and the 2-D playground's trajectories; all are linked
settings drawn in an st.fragment, ui/settings.py) the tab focuses the scrubber and presses → `--steps` times. Per step it records

- server CPU seconds: user + system time of the Streamlit server process (/proc/<pid>/stat) from the key press
  until the step is done; CPU time counts only the server's own work, so it stays meaningful on a shared machine,
- wall seconds from the key press until the URL carries the new t (written at the end of the fragment's run), the
  app is idle again and the figure shows the new t (its own Plotly slider's active step; polled every 20 ms, so up
  to ~20 ms of it is polling),
- whether the step reran the whole script (it should not: only the fragment reruns).

    python bench/scrub_step.py                       # shipped checkpoints, 10 steps per page
    python bench/scrub_step.py --steps 20 --no-write

Writes docs/results/scrub_step.json and the "scrub_step" section of docs/benchmarks.md only when the machine is
quiet (1-minute load average below --max-load, default 1.0 on this 2-core machine); otherwise it prints the numbers
and says why nothing was written. Needs /usr/bin/chromium and the playwright package (as tests/browser/).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's bench/ (not an installed copy's)
from bench.report import (
    BENCHMARKS_MD,
    REPO_ROOT,
    command_line,
    cpu_flags_summary,
    hardware,
    load_average,
    markdown_table,
    now_utc,
    run_header,
    update_markdown_section,
    write_json,
)

sys.path.insert(0, str(REPO_ROOT / "tests" / "browser"))
from streamlit_harness import CHROMIUM_ARGS, CHROMIUM_PATH, AppPage, serve_streamlit  # noqa: E402

SCRUBBERS = {  # page -> (the scrubber's label, its query parameter, the key of the figure it drives)
    "denoise": ("t (paper's step)", "denoise_t", "denoise_scrubber"),
    "sample": ("Trajectory step (t)", "sample_trajectory_t", "sample_trajectory"),
    "playground_2d": ("Trajectory step (t)", "pg_trajectory_t", "pg_trajectory_chart"),
}
# The label of the frame figure `key` shows (its Plotly slider's active step), or null while it is not drawn
FRAME_JS = """(key) => {
  const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  const slider = plot && plot._fullLayout && (plot._fullLayout.sliders || [])[0];
  return slider ? String(slider.steps[slider.active].label) : null;
}"""
# True when no script run is in progress or pending (the harness's idle test without its 250 ms settle delay)
IDLE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
      && app.getAttribute('data-test-script-state') === 'notRunning';
}"""
TICKS = os.sysconf("SC_CLK_TCK")


def server_pid(port: int) -> int:
    """The pid of the `streamlit run` process listening on `port` (its command line names the port)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"streamlit" in b" ".join(command) and str(port).encode() in command:
                return int(entry.name)
    raise RuntimeError(f"no streamlit process found for port {port}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def full_rerun_counter(page) -> list:
    """A one-element list counting the full-script reruns the tab asks for (fragment runs excluded)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    count = [0]

    def frame(payload) -> None:
        if not isinstance(payload, str):
            message = BackMsg.FromString(payload)
            if message.WhichOneof("type") == "rerun_script" and not message.rerun_script.fragment_id:
                count[0] += 1

    page.on("websocket", lambda socket: socket.on("framesent", frame))
    return count


def scrub(app: AppPage, pid: int, label: str, key: str, chart_key: str, steps: int, full_runs: list) -> list[dict]:
    thumb = app.page.locator('[data-testid="stMain"] [data-testid="stSlider"]').filter(has_text=label).first.get_by_role("slider")
    thumb.focus()
    results = []
    for _ in range(steps):
        before_url, before_runs = app.page.url, full_runs[0]
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        app.page.keyboard.press("ArrowRight")
        deadline = wall + 120
        while True:  # the URL changed (the fragment wrote the new t), no run is pending and the figure shows the t
            if (app.page.url != before_url and app.page.evaluate(IDLE_JS)
                    and app.page.evaluate(FRAME_JS, chart_key) == thumb.get_attribute("aria-valuetext")):
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"a scrub step on {label!r} did not finish within 120 s")
            app.page.wait_for_timeout(20)
        results.append({"wall_s": time.perf_counter() - wall, "server_cpu_s": cpu_seconds(pid) - cpu,
                        "t": parse_qs(urlsplit(app.page.url).query).get(key, ["?"])[0],
                        "full_rerun": full_runs[0] != before_runs})
    return results


def summary(steps: list[dict]) -> dict:
    walls, cpus = sorted(s["wall_s"] for s in steps), sorted(s["server_cpu_s"] for s in steps)
    p95 = lambda values: values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]  # noqa: E731
    return {"steps": len(steps), "wall_median_s": statistics.median(walls), "wall_p95_s": p95(walls),
            "server_cpu_median_s": statistics.median(cpus), "server_cpu_p95_s": p95(cpus),
            "full_reruns": sum(s["full_rerun"] for s in steps), "all": steps}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="→ presses per scrubber (default 10)")
    parser.add_argument("--pages", nargs="*", default=list(SCRUBBERS), choices=list(SCRUBBERS))
    parser.add_argument("--max-load", type=float, default=1.0, help="write results only below this 1-minute load average")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args(argv)
    if not 1 <= args.steps <= 200:
        parser.error("--steps must be in 1..200")
    from playwright.sync_api import sync_playwright

    document = {"command": command_line("bench/scrub_step.py", argv), "date": now_utc(), "hardware": hardware(),
                "cpu_flags": cpu_flags_summary(), "pages": {}}
    log = REPO_ROOT / "test-artifacts" / "scrub-step-server.log"
    with serve_streamlit(REPO_ROOT / "app.py", log) as base_url, sync_playwright() as playwright:
        pid = server_pid(int(base_url.rsplit(":", 1)[1]))
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        try:
            for page_path in args.pages:
                label, key, chart_key = SCRUBBERS[page_path]
                context = browser.new_context(viewport={"width": 1280, "height": 720})
                tab = context.new_page()
                tab.set_default_timeout(300_000)
                full_runs = full_rerun_counter(tab)
                app = AppPage(tab, base_url).open(page_path)
                document["pages"][page_path] = summary(scrub(app, pid, label, key, chart_key, args.steps, full_runs))
                context.close()
                result = document["pages"][page_path]
                print(f"{page_path}: wall median {result['wall_median_s']:.3f} s (p95 {result['wall_p95_s']:.3f}), server CPU "
                      f"median {result['server_cpu_median_s']:.3f} s, full reruns {result['full_reruns']}", file=sys.stderr)
        finally:
            browser.close()
    load_now = load_average()
    document["load_average_at_end"] = load_now
    quiet = all(load is not None and load[0] < args.max_load
                for load in (document["hardware"]["load_average_at_start"], load_now))
    if args.no_write:
        return document
    if not quiet:
        print(f"Not written: the machine was busy (1-minute load average {document['hardware']['load_average_at_start']} "
              f"at start, {load_now} at end; --max-load {args.max_load}).", file=sys.stderr)
        return document
    write_json(REPO_ROOT / "docs" / "results" / "scrub_step.json", document)
    rows = [(page, r["steps"], r["wall_median_s"], r["wall_p95_s"], r["server_cpu_median_s"], r["server_cpu_p95_s"],
             r["full_reruns"]) for page, r in document["pages"].items()]
    update_markdown_section(BENCHMARKS_MD, "scrub_step", "## One scrub step (bench/scrub_step.py)\n\n"
                            + run_header(document) + f"  \nCPU flags: {document['cpu_flags']}\n\n"
                            + "A → key press on the page's timestep scrubber in headless chromium at 1280×720, shipped "
                            "checkpoints: wall seconds until the URL holds the new t, the app is idle and the figure "
                            "shows the new t, and the server "
                            "process's CPU seconds over the same interval. The scrubber and its figure are an st.fragment, "
                            "so a step reruns only them (full reruns counted).\n\n"
                            + markdown_table(["page", "steps", "wall median [s]", "wall p95 [s]", "server CPU median [s]",
                                              "server CPU p95 [s]", "full reruns"], rows))
    return document


if __name__ == "__main__":
    main()
