"""roomctl: make LiveKit rooms match what is declared in YAML.

The few names a Python user calls; everything else is internal and may change. Resolved on first
use (PEP 562), so `import reconciler.cli.main` does not pay for the backends' HTTP stack. The executor
is `reconciler.execute.execute` (a name here would be shadowed by the module of the same name)."""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that defines it
_PUBLIC = {
    "Backends": "reconciler.engine",
    "Inputs": "reconciler.manifests",
    "LiveKitBackend": "reconciler.backends.livekit",
    "ManifestError": "reconciler.manifests",
    "Plan": "reconciler.plan",
    "PlanOptions": "reconciler.plan",
    "PlugNmeetBackend": "reconciler.backends.plugnmeet",
    "Results": "reconciler.execute",
    "load_inputs": "reconciler.manifests",
    "load_manifests": "reconciler.manifests",
    "make_combined_plan": "reconciler.engine",
    "plan_room": "reconciler.plan",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'reconciler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
