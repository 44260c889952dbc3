"""The sandbox: an in-memory LiveKit + plugNmeet server that speaks the real wire (DESIGN §5).

The server itself loads on first use (PEP 562): the constants come from `defaults`, so a command
run against a real server never imports the sandbox's protobufs."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .defaults import DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_PNM_KEY, DEFAULT_PNM_SECRET, EMBEDDED_URL

if TYPE_CHECKING:
    from .app import Sandbox, SandboxConfig, SandboxStateError
    from .embedded import EmbeddedTransport

_LAZY = {"Sandbox": ".app", "SandboxConfig": ".app", "SandboxStateError": ".app", "EmbeddedTransport": ".embedded"}

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEFAULT_PNM_KEY",
    "DEFAULT_PNM_SECRET",
    "EMBEDDED_URL",
    "EmbeddedTransport",
    "Sandbox",
    "SandboxConfig",
    "SandboxStateError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
