"""The sandbox: an in-memory LiveKit + plugNmeet server that speaks the real wire (DESIGN §5)."""

from .app import DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_PNM_KEY, DEFAULT_PNM_SECRET, Sandbox, SandboxConfig
from .embedded import EMBEDDED_URL, EmbeddedTransport

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEFAULT_PNM_KEY",
    "DEFAULT_PNM_SECRET",
    "EMBEDDED_URL",
    "EmbeddedTransport",
    "Sandbox",
    "SandboxConfig",
]
