"""Which LiveKit server a Room object talks to, and one backend per server.

Operator-wide credentials come from the environment (the Helm chart fills it from a Secret);
`spec.serverRef.secretName` names a Secret in the Room's namespace with keys url, apiKey, apiSecret."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from ..backends.livekit import LiveKitBackend
from ..backends.twirp import CallObserver
from .decide import CredentialsError, RoomObject
from .kube import KubeClient, KubeError

DEFAULT_SERVER = "default"
SECRET_KEYS = ("url", "apiKey", "apiSecret")


@dataclass(frozen=True)
class Credentials:
    url: str
    api_key: str
    api_secret: str

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, api_key={self.api_key!r})"

    @property
    def fingerprint(self) -> str:
        # Backends are shared per distinct credentials; the secret only enters as a hash.
        return hashlib.sha256(f"{self.url}\0{self.api_key}\0{self.api_secret}".encode()).hexdigest()[:16]


def server_key(namespace: str, spec: Mapping[str, object]) -> str:
    """The index key: Rooms sharing it are observed together, one ListRooms per sweep."""
    ref = spec.get("serverRef")
    if isinstance(ref, Mapping) and ref.get("secretName"):
        return f"secret:{namespace}/{ref['secretName']}"
    return DEFAULT_SERVER


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials | None:
    env = os.environ if env is None else env
    url = env.get("LIVEKIT_URL", "")
    if not url:
        return None
    secret = env.get("LIVEKIT_API_SECRET", "")
    secret_file = env.get("LIVEKIT_API_SECRET_FILE", "")
    if not secret and secret_file:
        with open(secret_file, encoding="utf-8") as handle:
            secret = handle.read().strip()
    return Credentials(url, env.get("LIVEKIT_API_KEY", ""), secret)


class ServerPool:
    """Resolves credentials (Secrets cached for `secret_ttl` seconds) and shares one backend per server."""

    def __init__(
        self,
        default: Credentials | None,
        kube: Callable[[], KubeClient | None],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        on_call: CallObserver | None = None,
        secret_ttl: float = 60.0,
    ) -> None:
        self.default = default
        self.kube = kube
        self.transport = transport
        self.timeout = timeout
        self.on_call = on_call
        self.secret_ttl = secret_ttl
        self._secrets: dict[str, tuple[float, Credentials]] = {}
        self._backends: dict[str, LiveKitBackend] = {}

    async def credentials(self, obj: RoomObject) -> Credentials:
        key = server_key(obj.namespace, obj.spec)
        if key == DEFAULT_SERVER:
            if self.default is None or not self.default.api_key or not self.default.api_secret:
                raise CredentialsError("no operator-wide LiveKit server: set LIVEKIT_URL, LIVEKIT_API_KEY and "
                                       "LIVEKIT_API_SECRET (Helm values livekit.*), or spec.serverRef.secretName")
            return self.default
        cached = self._secrets.get(key)
        if cached and time.monotonic() - cached[0] < self.secret_ttl:
            return cached[1]
        ref = obj.spec.get("serverRef")
        assert isinstance(ref, Mapping)
        name = str(ref["secretName"])
        kube = self.kube()
        if kube is None:
            raise CredentialsError("not connected to the Kubernetes API yet")
        try:
            data = await kube.get_secret(obj.namespace, name)
        except KubeError as exc:
            hint = {404: "it does not exist", 403: "the operator may not read it (Helm value serverRefSecrets)"}
            raise CredentialsError(f"cannot read Secret {obj.namespace}/{name}: "
                                   f"{hint.get(exc.status, str(exc))}") from None
        missing = [k for k in SECRET_KEYS if not data.get(k)]
        if missing:
            raise CredentialsError(f"Secret {obj.namespace}/{name} lacks key(s) {', '.join(missing)} "
                                   f"(needs {', '.join(SECRET_KEYS)})")
        creds = Credentials(data["url"], data["apiKey"], data["apiSecret"])
        self._secrets[key] = (time.monotonic(), creds)
        return creds

    def backend(self, creds: Credentials) -> LiveKitBackend:
        found = self._backends.get(creds.fingerprint)
        if found is None:
            found = LiveKitBackend(creds.url, creds.api_key, creds.api_secret, transport=self.transport,
                                   timeout=self.timeout, on_call=self.on_call)
            self._backends[creds.fingerprint] = found
        return found

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()
