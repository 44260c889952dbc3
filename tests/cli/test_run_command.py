"""One error wrapper for every command that runs a coroutine (cli/common.run_command): apply, diff,
delete, export and serve report the same failures the same way, each as `error:` lines and exit 1."""

from __future__ import annotations

import pytest

from reconciler.backends.errors import Unavailable
from reconciler.cli import apply, delete, diff, export, serve
from reconciler.cli.common import UsageError, run_command
from reconciler.manifests import Issue, ManifestError
from reconciler.plan import PlanRefused


async def failing(exc: BaseException) -> int:
    raise exc


@pytest.mark.parametrize("bulk", [False, True])
@pytest.mark.parametrize(("exc", "expected"), [
    (Unavailable("unavailable: node draining").at("UpdateParticipant", "town hall"),
     ['error: UpdateParticipant "town hall": unavailable: node draining']),
    (UsageError("--interval must be a duration"), ["error: --interval must be a duration"]),
    (PlanRefused("refusing to prune with no declared rooms"), ["error: refusing to prune with no declared rooms"]),
    (ManifestError([Issue("rooms.yaml", 3, 5, "spec.maxParticipants", "must be >= 0")]),
     ["error: rooms.yaml:3:5: spec.maxParticipants: must be >= 0",
      "1 error(s); nothing was sent to the server."]),
])
def test_shared_failures_are_error_lines_and_exit_1(exc: BaseException, expected: list[str], bulk: bool,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(failing(exc), bulk=bulk) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == expected


def test_a_command_s_own_exit_code_passes_through() -> None:
    async def changes_pending() -> int:
        return 2

    assert run_command(changes_pending()) == 2


def test_every_coroutine_command_uses_it() -> None:
    import inspect

    for module in (apply, delete, diff, export, serve):
        assert "run_command(" in inspect.getsource(module.run), module.__name__
