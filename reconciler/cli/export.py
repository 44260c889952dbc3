"""`roomctl export [ROOM...]`: observed rooms as Room manifests, for adopting existing rooms."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ..backends.errors import BackendError
from ..model import API_VERSION
from ..observed import ObservedDispatch, ObservedRoom
from ..plan import Selection
from ..yamlsafe import dump
from .common import UsageError, add_server_options, open_backend


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("export", help="print observed rooms as Room manifests", parents=[common])
    parser.add_argument("rooms", nargs="*", metavar="ROOM", help="room names (default: every room)")
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    parser.add_argument("--target", action="append", default=[], metavar="ROOM",
                        help="only rooms whose name matches this glob (repeatable: any may match)")
    add_server_options(parser)
    parser.set_defaults(run=run)


def room_manifest(room: ObservedRoom, dispatches: list[ObservedDispatch]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": room.name,
        "emptyTimeout": room.empty_timeout,
        "departureTimeout": room.departure_timeout,
        "maxParticipants": room.max_participants,
        "metadata": room.metadata,
    }
    agents = [d for d in dispatches if d.agent_name]  # the implicit "" dispatch is the server's, not ours
    if agents:
        spec["agents"] = []
        for d in agents:
            agent: dict[str, Any] = {"agentName": d.agent_name}
            if d.metadata:
                agent["metadata"] = d.metadata
            if d.deployment:
                agent["deployment"] = d.deployment
            if d.attributes:
                agent["attributes"] = dict(d.attributes)
            spec["agents"].append(agent)
    return {"apiVersion": API_VERSION, "kind": "Room", "metadata": {"name": room.name}, "spec": spec}


async def _export(args: argparse.Namespace) -> int:
    async with open_backend(args) as backend:
        rooms = await backend.list_rooms(args.rooms or None)
        chosen = Selection(tuple(args.target))
        rooms = [r for r in rooms if chosen.covers(r.name, None)]
        dispatches = await asyncio.gather(*(backend.list_dispatches(r.name) for r in rooms))
    missing = sorted(set(args.rooms) - {r.name for r in rooms})
    for name in missing:
        print(f"warning: room {name!r} does not exist on the server", file=sys.stderr)
    documents = [room_manifest(r, list(d)) for r, d in zip(rooms, dispatches, strict=True)]
    if args.output == "json":
        print(json.dumps(documents, indent=2))
    else:
        sys.stdout.write("---\n".join(dump(doc) for doc in documents))
    return 1 if missing else 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_export(args))
    except (UsageError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
