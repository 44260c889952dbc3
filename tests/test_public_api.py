"""The public surface (STYLE.md, after httpx's `__all__` test): exactly these names, each resolving
to the object its module defines, and importing the package alone loads no HTTP stack."""

from __future__ import annotations

import subprocess
import sys

import reconciler

PUBLIC = ["Backends", "Inputs", "LiveKitBackend", "ManifestError", "Plan", "PlanOptions", "PlugNmeetBackend",
          "Results", "load_inputs", "load_manifests", "make_combined_plan", "plan_room"]


def test_all_is_exactly_the_public_surface() -> None:
    assert reconciler.__all__ == PUBLIC


def test_every_public_name_resolves_to_its_definition() -> None:
    from reconciler.engine import make_combined_plan
    from reconciler.manifests import load_inputs
    from reconciler.plan import plan_room

    for name in PUBLIC:
        value = getattr(reconciler, name)
        assert getattr(value, "__name__", "") == name, f"{name} resolves to {value!r}"
    assert reconciler.plan_room is plan_room
    assert reconciler.load_inputs is load_inputs
    assert reconciler.make_combined_plan is make_combined_plan


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        reconciler.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")


def test_importing_the_package_loads_no_http_stack() -> None:
    probe = "import sys, reconciler; print(sorted(m for m in ('httpx', 'aiohttp', 'kopf') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
