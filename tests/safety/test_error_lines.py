"""Every `error:` line the CLI prints goes through one helper that escapes control characters: a
path, a name or a server's message holding a newline or an ANSI sequence can neither forge a second
`error:` line nor drive the terminal."""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.cli.common import print_error
from tests.support.cli import roomctl

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "webinar.yaml"


def test_print_error_escapes_control_characters(capsys: object) -> None:
    print_error("bad\nerror: forged \x1b[31mred\x1b[0m\u2028x")
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err == "error: bad\\x0aerror: forged \\x1b[31mred\\x1b[0m\\u2028x\n"


def test_a_cli_error_with_a_newline_and_escape_in_a_path_is_one_escaped_line(tmp_path: Path) -> None:
    hostile = str(tmp_path / "no\nerror: forged\x1b[2J")
    result = roomctl(None, "diff", str(EXAMPLE), "--url", "http://127.0.0.1:1", "--api-secret-file", hostile,
                     LIVEKIT_API_KEY="k", LIVEKIT_API_SECRET="")
    assert result.returncode == 1
    assert "\x1b" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_no_cli_module_prints_an_error_line_by_hand() -> None:
    """The helper is the only place that writes `error: ` (the next one added cannot forget escaping)."""
    by_hand = []
    for path in sorted((ROOT / "reconciler" / "cli").glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"""print\(\s*f?["']error:""", line) and "def print_error" not in line:
                by_hand.append(f"{path.name}:{number}: {line.strip()}")
    allowed = [entry for entry in by_hand if entry.startswith("common.py:") and "escape_control" in entry]
    assert by_hand == allowed, by_hand
