"""The architecture as a checked fact (STYLE.md): the plan engine is pure, only `backends/` (and the
sandbox that stands in for a server) speak HTTP to a server, only `operator/` imports kopf, and the
CLI and the operator never import each other. Walks every module's imports with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reconciler"

# What the pure layer (model, plan, observed) may never reach: I/O, clocks, randomness, other layers.
IMPURE = ("httpx", "aiohttp", "kopf", "uvicorn", "asyncio", "socket", "subprocess", "os", "pathlib", "time",
          "random", "datetime", "prometheus_client", "reconciler.backends", "reconciler.sandbox",
          "reconciler.cli", "reconciler.operator", "reconciler.execute", "reconciler.engine", "reconciler.auth")
PURE = ("reconciler.model", "reconciler.plan", "reconciler.observed")
HTTP_CLIENTS = ("httpx", "aiohttp")
# Modules that may use an HTTP client: the LiveKit/plugNmeet backends, the sandbox (it is a server and
# sends webhooks), and the operator's Kubernetes API client (`servers` only names a transport type).
HTTP_ALLOWED = ("reconciler.backends", "reconciler.sandbox", "reconciler.operator.kube", "reconciler.operator.servers")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved to absolute names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _within(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


MODULES = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_walk_sees_the_whole_package() -> None:
    # A walk that found nothing would make every rule below pass vacuously.
    assert {"reconciler.plan.room", "reconciler.model.room", "reconciler.backends.twirp",
            "reconciler.cli.main", "reconciler.operator.handlers"} <= set(MODULES)
    assert "reconciler.model.room" in MODULES["reconciler.plan.room"]
    assert "httpx" in MODULES["reconciler.backends.twirp"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, PURE)))
def test_plan_and_model_import_no_io(module: str) -> None:
    bad = sorted(i for i in MODULES[module] if _within(i, IMPURE))
    assert not bad, f"{module} is in the pure layer but imports {bad}"


def test_only_backends_and_the_sandbox_speak_http() -> None:
    bad = {m: sorted(i for i in imports if _within(i, HTTP_CLIENTS))
           for m, imports in MODULES.items() if not _within(m, HTTP_ALLOWED)}
    assert not {m: i for m, i in bad.items() if i}


def test_only_the_operator_imports_kopf() -> None:
    bad = [m for m, imports in MODULES.items() if not _within(m, ("reconciler.operator",))
           and any(_within(i, ("kopf",)) for i in imports)]
    assert not bad


def test_cli_and_operator_never_import_each_other() -> None:
    cli_to_operator = [m for m, imports in MODULES.items() if _within(m, ("reconciler.cli",))
                       and any(_within(i, ("reconciler.operator",)) for i in imports)]
    operator_to_cli = [m for m, imports in MODULES.items() if _within(m, ("reconciler.operator",))
                       and any(_within(i, ("reconciler.cli",)) for i in imports)]
    assert not operator_to_cli
    # `roomctl operator` is a CLI command: its one module may start the operator, nothing else in cli/.
    assert set(cli_to_operator) <= {"reconciler.cli.operator"}
