"""The process entry point (cli/entry.py): a batch run collects garbage rarely; a server goes back to
CPython's defaults; a library import or an in-process main() changes nothing. Each case runs in a
child interpreter, so this test process's own settings are never touched."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from reconciler.cli.entry import BATCH_THRESHOLDS

PROBE = """
import gc, json
import reconciler.cli.main as cli
from reconciler.cli import entry
seen = {}
def fake_main():
    seen["during"] = gc.get_threshold()
    entry.long_running()  # what serve / operator / sandbox serve call once started
    seen["server"] = gc.get_threshold()
    seen["frozen"] = gc.get_freeze_count()
    return 7
cli.main = fake_main
seen["library"] = gc.get_threshold()
seen["rc"] = entry.main()
print(json.dumps(seen))
"""

BATCH = """
import gc, json
import reconciler.cli.main as cli
from reconciler.cli import entry
cli.main = lambda: 3
rc = entry.main()
print(json.dumps([rc, gc.get_threshold(), gc.get_freeze_count()]))
"""


def test_a_batch_run_ends_with_everything_frozen() -> None:
    """Shutdown's final collection would only rescan what the exit frees anyway."""
    out = subprocess.run([sys.executable, "-c", BATCH], capture_output=True, text=True, check=True, timeout=60)
    rc, thresholds, frozen = json.loads(out.stdout)
    assert rc == 3 and thresholds == list(BATCH_THRESHOLDS) and frozen > 10_000


def test_batch_thresholds_then_defaults_for_servers() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(out.stdout)
    defaults = list(gc.get_threshold())  # this interpreter's, as a fresh one starts
    assert seen["library"] == defaults  # importing reconciler changes nothing
    assert seen["during"] == list(BATCH_THRESHOLDS)
    assert seen["server"] == defaults
    assert seen["frozen"] > 10_000  # modules and classes loaded at start-up are out of later collections
    assert seen["rc"] == 7


def test_long_running_outside_the_entry_point_changes_nothing() -> None:
    probe = ("import gc; from reconciler.cli.entry import long_running; before = gc.get_threshold(); "
             "long_running(); print(gc.get_threshold() == before, gc.get_freeze_count())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["True", "0"]


def test_python_dash_m_and_the_console_script_share_the_entry_point() -> None:
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["roomctl"] == "reconciler.cli.entry:main"
    assert "from .cli.entry import main" in (root / "reconciler" / "__main__.py").read_text()
    out = subprocess.run([sys.executable, "-m", "reconciler", "--version"], capture_output=True, text=True,
                         timeout=60, cwd=root)
    assert out.returncode == 0 and out.stdout.startswith("roomctl ")
