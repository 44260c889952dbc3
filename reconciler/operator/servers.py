"""Which server an object talks to, and one backend per server: LiveKit for a Room, plugNmeet for a
PlugNmeetRoom.

Operator-wide credentials come from the environment (LIVEKIT_* and PLUGNMEET_*; the Helm chart fills
them from Secrets); `spec.serverRef.secretName` names a Secret in the object's namespace with keys
url, apiKey, apiSecret (of a LiveKit server for a Room, of a plugNmeet server for a PlugNmeetRoom)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from ..backends.livekit import LiveKitBackend
from ..backends.plugnmeet import PlugNmeetBackend
from ..backends.twirp import CallObserver, RetryPolicy
from .decide import CredentialsError, RoomObject
from .kube import KubeClient, KubeError

DEFAULT_SERVER = "default"
SECRET_KEYS = ("url", "apiKey", "apiSecret")
PLUGNMEET = "PlugNmeetRoom"
# Kinds served by a LiveKit server: a RoomPolicy governs the rooms of the server its Rooms use.
LIVEKIT_KINDS = ("Room", "RoomPolicy")
# Per kind: the environment prefix of the operator-wide server, and its Helm values key.
_SERVER_NAMES = {"Room": ("LIVEKIT", "livekit", "LiveKit"), PLUGNMEET: ("PLUGNMEET", "plugnmeet", "plugNmeet")}


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


def server_key(namespace: str, spec: object, kind: str = "Room") -> str:
    """The index key: objects sharing it are observed together, one ListRooms (Room) or one
    getActiveRoomsInfo (PlugNmeetRoom) per sweep."""
    ref = spec.get("serverRef") if isinstance(spec, Mapping) else None
    key = (f"secret:{namespace}/{ref['secretName']}" if isinstance(ref, Mapping) and ref.get("secretName")
           else f"unresolvable:{ref['name']}" if isinstance(ref, Mapping) and ref.get("name")  # refused, never default
           else DEFAULT_SERVER)
    return key if kind in LIVEKIT_KINDS else f"{kind.lower()}:{key}"


def credentials_from_env(env: Mapping[str, str] | None = None, kind: str = "Room") -> Credentials | None:
    """LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET (or _FILE); PLUGNMEET_* for PlugNmeetRoom."""
    env = os.environ if env is None else env
    prefix = _SERVER_NAMES[kind][0]
    url = env.get(f"{prefix}_URL", "")
    if not url:
        return None
    secret = env.get(f"{prefix}_API_SECRET", "")
    secret_file = env.get(f"{prefix}_API_SECRET_FILE", "")
    if not secret and secret_file:
        with open(secret_file, encoding="utf-8") as handle:
            secret = handle.read().strip()
    return Credentials(url, env.get(f"{prefix}_API_KEY", ""), secret)


class ServerPool:
    """Resolves credentials (Secrets cached for `secret_ttl` seconds) and shares one backend per server."""

    def __init__(
        self,
        default: Credentials | None,
        kube: Callable[[], KubeClient | None],
        *,
        plugnmeet_default: Credentials | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        on_call: CallObserver | None = None,
        secret_ttl: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.defaults = {"Room": default, PLUGNMEET: plugnmeet_default}
        # How often one call is tried before a reconcile fails (then kopf's backoff and the sweep take
        # over); None: the backends' own defaults, as the CLI's.
        self.retry = retry
        self.kube = kube
        self.transport = transport
        self.timeout = timeout
        self.on_call = on_call
        self.secret_ttl = secret_ttl
        self._secrets: dict[str, tuple[float, Credentials]] = {}
        self._backends: dict[str, LiveKitBackend] = {}
        self._plugnmeet: dict[str, PlugNmeetBackend] = {}

    @property
    def default(self) -> Credentials | None:
        return self.defaults["Room"]

    async def credentials(self, obj: RoomObject) -> Credentials:
        key = server_key(obj.namespace, obj.spec, obj.kind)
        ref = obj.spec_map.get("serverRef")
        if isinstance(ref, Mapping) and ref.get("name") and not ref.get("secretName"):
            # Never silently the default server: a name is the CLI's servers file, not the operator's.
            raise CredentialsError(f"spec.serverRef.name {ref['name']!r} names a server of the CLI's servers file; "
                                   "the operator needs spec.serverRef.secretName")
        if not (isinstance(ref, Mapping) and ref.get("secretName")):
            default = self.defaults.get("Room" if obj.kind in LIVEKIT_KINDS else obj.kind)
            if default is None or not default.api_key or not default.api_secret:
                prefix, helm, label = _SERVER_NAMES.get(obj.kind, _SERVER_NAMES["Room"])
                raise CredentialsError(f"no operator-wide {label} server: set {prefix}_URL, {prefix}_API_KEY and "
                                       f"{prefix}_API_SECRET (Helm values {helm}.*), or spec.serverRef.secretName")
            return default
        cached = self._secrets.get(key)
        if cached and time.monotonic() - cached[0] < self.secret_ttl:
            return cached[1]
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

    def known_credentials(self) -> list[Credentials]:
        """The serverRef credentials read so far (the webhook endpoint verifies their keys' signatures)."""
        return [creds for _, creds in self._secrets.values()]

    def backend(self, creds: Credentials) -> LiveKitBackend:
        found = self._backends.get(creds.fingerprint)
        if found is None:
            found = LiveKitBackend(creds.url, creds.api_key, creds.api_secret, transport=self.transport,
                                   timeout=self.timeout, on_call=self.on_call, retry=self.retry)
            self._backends[creds.fingerprint] = found
        return found

    def plugnmeet_backend(self, creds: Credentials) -> PlugNmeetBackend:
        found = self._plugnmeet.get(creds.fingerprint)
        if found is None:
            # plugNmeet's create may wait ~15 s on the room lock after endRoom: never below 30 s.
            found = PlugNmeetBackend(creds.url, creds.api_key, creds.api_secret, transport=self.transport,
                                     timeout=max(self.timeout, 30.0))
            if self.retry is not None:
                found.attempts = self.retry.attempts
            self._plugnmeet[creds.fingerprint] = found
        return found

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        for pnm in self._plugnmeet.values():
            await pnm.aclose()
        self._backends.clear()
        self._plugnmeet.clear()
