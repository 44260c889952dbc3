"""The CLI's servers file (`roomctl.servers.yaml`): named LiveKit servers that a Room's
`spec.serverRef.name` points at. Secrets never live in the file: it names the environment
variables that hold each server's key and secret.

```yaml
servers:
  eu:
    url: https://eu.livekit.example.com
    apiKeyEnv: LIVEKIT_EU_API_KEY
    apiSecretEnv: LIVEKIT_EU_API_SECRET
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError

from .model.base import Strict
from .yamlsafe import YamlError, load_documents

DEFAULT_FILE = "roomctl.servers.yaml"
ENV_NAME = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class ServerEntry(Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    api_key_env: ENV_NAME
    api_secret_env: ENV_NAME


class ServersFileModel(Strict):
    servers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")], ServerEntry]


class ServersFileError(Exception):
    """The servers file is unreadable, invalid, or a server's credentials are missing."""


@dataclass(frozen=True)
class NamedServer:
    name: str
    url: str
    api_key: str
    api_secret: str

    def __repr__(self) -> str:
        return f"NamedServer(name={self.name!r}, url={self.url!r})"


@dataclass(frozen=True)
class ServersFile:
    path: str
    entries: Mapping[str, ServerEntry]

    def resolve(self, name: str, env: Mapping[str, str] | None = None) -> NamedServer:
        env = os.environ if env is None else env
        entry = self.entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self.entries)) or "none"
            raise ServersFileError(f"no server {name!r} in {self.path} (known: {known})")
        key, secret = env.get(entry.api_key_env, ""), env.get(entry.api_secret_env, "")
        missing = [n for n, v in ((entry.api_key_env, key), (entry.api_secret_env, secret)) if not v]
        if missing:
            raise ServersFileError(f"server {name!r} ({self.path}): set {' and '.join(missing)}")
        return NamedServer(name, entry.url, key, secret)


def load_servers_file(path: str | None) -> ServersFile | None:
    """The file given (--servers / ROOMCTL_SERVERS), else ./roomctl.servers.yaml if present, else None."""
    explicit = path or os.environ.get("ROOMCTL_SERVERS") or None
    chosen = Path(explicit or DEFAULT_FILE)
    if not chosen.is_file():
        if explicit:
            raise ServersFileError(f"servers file {explicit}: no such file")
        return None
    try:
        documents = load_documents(chosen.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ServersFileError(f"cannot read servers file {chosen}: {exc}") from None
    except YamlError as exc:
        raise ServersFileError(f"{chosen}:{exc.line}:{exc.column}: {exc.message}") from None
    if len(documents) != 1:
        raise ServersFileError(f"{chosen}: expected one YAML document with a `servers:` mapping")
    doc = documents[0]
    try:
        model = ServersFileModel.model_validate(doc.data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(p for p in first["loc"] if isinstance(p, str | int))
        line, column = doc.position(loc)
        field = ".".join(str(p) for p in loc)
        raise ServersFileError(f"{chosen}:{line}:{column}: {field}: {first['msg']}") from None
    return ServersFile(str(chosen), model.servers)
