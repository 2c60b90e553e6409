"""How long each page takes to load with the shipped models, measured with Streamlit's AppTest.

Every page runs in a fresh Python process (cold caches, as for the first visitor after a server start): the
app shell (app.py, Home) runs first, untimed, so imports of torch and Streamlit are not counted; then
`switch_page(page)` + `run()` is timed (first view), and one more `run()` (a rerun, warm caches).

    python bench/page_load.py                   # every page of ui/navigation.py, 1 torch thread
    python bench/page_load.py --pages pages/objective.py pages/time.py --repeats 3

Writes docs/results/page_load.json and the "page_load" section of docs/benchmarks.md (unless --no-write).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from bench.report import (
    BENCHMARKS_MD,
    REPO_ROOT,
    command_line,
    hardware,
    markdown_table,
    now_utc,
    run_header,
    set_threads,
    update_markdown_section,
    write_json,
)

CHILD = r"""
import json, os, sys, time
import torch
torch.set_num_threads(int(sys.argv[2]))
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("app.py", default_timeout=300)
at.run()
start = time.perf_counter()
at.switch_page(sys.argv[1])
at.run()
first = time.perf_counter() - start
start = time.perf_counter()
at.run()
rerun = time.perf_counter() - start
problems = [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]
print(json.dumps({"first": first, "rerun": rerun, "problems": problems}))
"""


def measure(page: str, threads: int) -> dict:
    """One fresh process: seconds of the first view and of a rerun of `page`."""
    result = subprocess.run([sys.executable, "-c", CHILD, page, str(threads)], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=600, env={**__import__("os").environ, "OMP_WAIT_POLICY": "PASSIVE",
                                                         "PYTHONPATH": str(REPO_ROOT)})
    if result.returncode != 0:
        raise RuntimeError(f"{page}: the child process failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    from ui.navigation import available_pages

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", nargs="*", help="page files (default: every registered page)")
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes per page (the median is reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each child (default 1)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    set_threads(args.threads)  # the header's thread count is the children's
    pages = args.pages or [page.file for page in available_pages()]
    document = {"command": command_line("bench/page_load.py", argv), "date": now_utc(), "hardware": hardware(),
                "threads": args.threads, "repeats": args.repeats, "pages": {}}
    for page in pages:
        runs = [measure(page, args.threads) for _ in range(args.repeats)]
        document["pages"][page] = {"first": statistics.median(r["first"] for r in runs),
                                   "rerun": statistics.median(r["rerun"] for r in runs),
                                   "all_first": [r["first"] for r in runs],
                                   "problems": sorted({p for r in runs for p in r["problems"]})}
        print(f"{page}: first view {document['pages'][page]['first']:.2f} s, rerun {document['pages'][page]['rerun']:.2f} s",
              file=sys.stderr)
    if not args.no_write:
        write_json(REPO_ROOT / "docs" / "results" / "page_load.json", document)
        rows = [(page, r["first"], r["rerun"], "; ".join(r["problems"]) or "none") for page, r in document["pages"].items()]
        update_markdown_section(BENCHMARKS_MD, "page_load", "## Page load times (bench/page_load.py)\n\n"
                                + run_header(document) + "\n\n"
                                + f"Median of {args.repeats} fresh process(es) per page, {args.threads} torch thread(s); "
                                "seconds of `switch_page` + `run()` in AppTest after the shell has run (cold caches), "
                                "and of one more `run()` (warm caches). AppTest runs the script without a browser, so "
                                "this is server time, not time until the browser has drawn the figures.\n\n"
                                + markdown_table(["page", "first view [s]", "rerun [s]", "errors"], rows))
    return document


if __name__ == "__main__":
    main()
