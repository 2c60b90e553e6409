"""The garbage collector's share of a script run: Streamlit collects every generation after every script run, a
scrub step's fragment rerun included (config `runner.postScriptGC`), and on this app's heap that full collection costs
more than the rest of a scrub step.

Almost all of that heap is the imported modules (torch, plotly, Streamlit, NumPy: about 220,000 objects that live as
long as the server), walked again by every collection for nothing. `freeze_imported` moves them, once per server
process, into the collector's permanent generation (gc.freeze): later collections skip them, while everything created
afterwards (sessions, figures, cached results) is collected as before. Reference counting still frees a frozen object
the moment nothing refers to it; only a reference cycle among objects alive at the freeze would stay in memory, and
modules, classes and functions are never freed anyway.
"""

from __future__ import annotations

import gc

_done = False


def freeze_imported() -> None:
    """Once per process (later calls do nothing): gc.freeze() the objects alive now. Call it after the server's
    imports, before a page draws anything."""
    global _done
    if _done:
        return
    _done = True
    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()
