"""The `roomctl` process: process-wide settings first, then the command line (cli/main.py).

Garbage collection. A roomctl run builds what it works on (the parsed manifests, their models, the
server's rooms) and keeps nearly all of it to the end, and almost none of it is cyclic: it is freed
by reference counting. That is the worst case for CPython's cycle collector, whose collections are
triggered by allocations and rescan every object still alive: `roomctl diff` of 10,000 rooms spent
~0.5 s of its 1.8 s of CPU in collections that freed nothing. Like mypy (which raised its threshold
for the same reason), a run collects young objects every 200,000 allocations instead of every 700;
cycles are still collected. At the end of a run everything left is frozen out of the collection
that interpreter shutdown makes (it would only rescan what the exit frees anyway). The long-running
commands (`serve`, `operator`, `sandbox serve`) go back to CPython's defaults once started
(`long_running`). Measured in bench/RESULTS.md.

Only the process entry points (`roomctl`, `python -m reconciler`) do this: importing reconciler as a
library, or calling cli.main.main() in-process as the tests do, leaves the interpreter's settings
alone.
"""

from __future__ import annotations

import gc

BATCH_THRESHOLDS = (200_000, 30, 30)
_DEFAULTS = gc.get_threshold()
_state = {"batch": False}


def long_running() -> None:
    """A command that serves for hours: CPython's own collection thresholds again, and what start-up
    loaded (modules, classes, the manifests) frozen out of every later collection. Does nothing in a
    process that did not start through main()."""
    if _state["batch"]:
        _state["batch"] = False
        gc.set_threshold(*_DEFAULTS)
        gc.collect()
        gc.freeze()


def main() -> int:
    gc.set_threshold(*BATCH_THRESHOLDS)
    _state["batch"] = True
    from .main import main as cli_main  # after the threshold: the imports allocate a lot too

    try:
        return cli_main()
    finally:
        # The process ends here. Its last full collection, at exit, would rescan every object still
        # alive to free memory that the exit frees anyway: ~70 ms of a 1,000-room apply's exit.
        gc.freeze()
