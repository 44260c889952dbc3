"""`roomctl export [ROOM...]`: observed rooms as Room and PlugNmeetRoom manifests, for adopting
existing rooms. Adopting changes nothing: each manifest declares what the server serves and a
policy that keeps the room's behaviour (`lifecycle: OnDemand`: roomctl never creates it, as nothing
did before; a room made by a join stays a room made by joins), so `diff` right after is clean."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from ..engine import select_inputs
from ..manifests import load_inputs
from ..model import API_VERSION, DesiredRoom
from ..model.plugnmeet import SPEC_HASH_KEY, PlugNmeetRoomManifest, PnmMetadata, check_room_id
from ..observed import ObservedDispatch, ObservedPnmRoom, ObservedRoom
from ..plan import Selection
from ..yamlsafe import dump
from .common import UsageError, add_server_options, open_backends, run_command, server_settings
from .planning import add_selection_options, selection

# What an adopted room keeps: it is never created by roomctl (OnDemand), never re-created (Never).
ADOPTED_POLICY = {"lifecycle": "OnDemand", "recreate": "Never"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("export", help="print observed rooms as Room / PlugNmeetRoom manifests",
                            parents=[common])
    parser.add_argument("rooms", nargs="*", metavar="ROOM", help="room names (default: every room)")
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    add_selection_options(parser)
    parser.add_argument("-f", "--filename", dest="paths", action="append", default=[], metavar="PATH",
                        help="only the rooms these manifests declare (with -l: selected by their labels), "
                             "exported with their labels: a refresh from the server")
    add_server_options(parser)
    parser.set_defaults(run=run)


def room_manifest(room: ObservedRoom, dispatches: Sequence[ObservedDispatch]) -> dict[str, Any]:
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
    spec["policy"] = dict(ADOPTED_POLICY)
    return {"apiVersion": API_VERSION, "kind": "Room", "metadata": {"name": room.name}, "spec": spec}


# What the server serves, and so what a refresh (`export -f`) takes from it; everything else in the
# manifest (policy, egress, tags, playout delays, syncStreams, participant rules, serverRef, suspend)
# is not returned by LiveKit and is kept as declared.
SERVED = ("emptyTimeout", "departureTimeout", "maxParticipants", "metadata", "agents")


def refreshed(exported: dict[str, Any], desired: DesiredRoom) -> dict[str, Any]:
    """`export -f`: the declared Room with the served fields taken from the server. The declared
    policy stays (an adopted room's OnDemand/Never is only for rooms no manifest declares yet)."""
    spec: dict[str, Any] = desired.manifest.spec.model_dump(by_alias=True, exclude_unset=True, mode="json")
    served = exported["spec"]
    for key in SERVED:
        if key == "metadata" and (served.get(key) or "") == (desired.spec.metadata or ""):
            continue  # unchanged: keep it as written (a mapping stays a mapping, an absent one absent)
        if key in served:
            spec[key] = served[key]
        else:
            spec.pop(key, None)
    exported["spec"] = spec
    return exported


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return found[0] if found else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _is_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    return any(_is_int(arg) for arg in typing.get_args(annotation))


def _declared(model: type[BaseModel], served: dict[str, Any]) -> dict[str, Any]:
    """The served values of the fields the model knows (the server adds bookkeeping of its own);
    empty values are left undeclared, so they are not enforced."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        value = served.get(name, served.get(info.alias or name))
        sub = _model_of(info.annotation)
        if sub is not None and isinstance(value, dict):
            value = _declared(sub, value)
        if value is None or value == "" or value == {}:
            continue
        if isinstance(value, str) and value.isdigit() and _is_int(info.annotation):
            value = int(value)  # protojson writes 64-bit integers as strings ("room_duration": "0")
        out[name] = value
    return out


def pnm_manifest(room: ObservedPnmRoom) -> dict[str, Any]:
    """A PlugNmeetRoom declaring what the server serves; raises ValueError if it cannot be one."""
    metadata = _declared(PnmMetadata, room.metadata)
    extra = {k: v for k, v in (metadata.get("extra_data") or {}).items() if k != SPEC_HASH_KEY}
    metadata.pop("extra_data", None)
    if extra:
        metadata["extra_data"] = extra
    check_room_id(room.room_id)  # what the server serves could still be no valid manifest
    meta: dict[str, Any] = {"name": room.room_id}
    spec: dict[str, Any] = {"metadata": metadata, "policy": dict(ADOPTED_POLICY)}
    document = {"apiVersion": API_VERSION, "kind": "PlugNmeetRoom", "metadata": meta, "spec": spec}
    try:
        manifest = PlugNmeetRoomManifest.model_validate(document)
    except ValidationError as err:
        raise ValueError(str(err.errors()[0]["msg"])) from None
    dumped: dict[str, Any] = manifest.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return dumped


def _wants_plugnmeet(args: argparse.Namespace) -> bool:
    """plugNmeet is exported where it is configured, or with the embedded sandbox (which serves both)."""
    return bool(os.environ.get("PLUGNMEET_URL")) or server_settings(args).url is None


async def _export(args: argparse.Namespace) -> int:
    chosen = selection(args)
    if chosen.labels and not args.paths:
        raise UsageError("-l/--selector matches metadata.labels, which live in manifests, not on the server: "
                         "give the manifests with -f PATH (or select by name with --target)")
    wanted = set(args.rooms)
    declared: dict[str, dict[str, Any]] = {}  # room -> the manifest's metadata (labels, namespace) to keep
    specs: dict[str, DesiredRoom] = {}  # room -> its manifest: a refresh keeps what the server cannot return
    if args.paths:
        inputs = select_inputs(load_inputs(args.paths), chosen)
        specs = {r.name: r for r in inputs.livekit}
        metas = [(r.name, r.manifest.metadata) for r in inputs.livekit]
        metas += [(r.name, r.manifest.metadata) for r in inputs.plugnmeet]
        for name, meta in metas:
            declared[name] = meta.model_dump(exclude_defaults=True, exclude={"name"}, by_alias=True)
        wanted = (wanted & set(declared)) if wanted else set(declared)
        if not wanted:
            print("roomctl: warning: no declared room is selected; nothing to export", file=sys.stderr)
            return 0
    chosen = Selection(chosen.targets)  # names only from here on: server rooms have no labels

    def picked(name: str) -> bool:
        return (not wanted or name in wanted) and chosen.covers(name, None)

    async with open_backends(args, plugnmeet=_wants_plugnmeet(args)) as backends:
        active: list[ObservedPnmRoom] = []
        if backends.plugnmeet is not None:
            active = [r for r in await backends.plugnmeet.active_rooms() if picked(r.room_id)]
        pnm_ids = {r.room_id for r in active}
        rooms = await backends.livekit.list_rooms(sorted(wanted) if wanted else None)
        # A plugNmeet room lives in LiveKit under its room id: it is adopted once, as a PlugNmeetRoom.
        rooms = [r for r in rooms if picked(r.name) and r.name not in pnm_ids]
        dispatches = await asyncio.gather(*(backends.livekit.list_dispatches(r.name) for r in rooms))
    documents = [refreshed(room_manifest(r, list(d)), specs[r.name]) if r.name in specs else room_manifest(r, list(d))
                 for r, d in zip(rooms, dispatches, strict=True)]
    for room in active:
        if SPEC_HASH_KEY in (room.metadata.get("extra_data") or {}):
            print(f"roomctl: warning: plugNmeet room {room.room_id!r} was created by roomctl from another manifest; "
                  "adopt it with that manifest (its spec hash cannot be reproduced here)", file=sys.stderr)
            continue
        try:
            documents.append(pnm_manifest(room))
        except ValueError as exc:
            print(f"roomctl: warning: plugNmeet room {room.room_id!r} cannot be exported: {exc}", file=sys.stderr)
    for document in documents:
        document["metadata"].update(declared.get(document["metadata"]["name"], {}))
    missing = sorted(set(args.rooms) - {r.name for r in rooms} - pnm_ids)
    for name in missing:
        print(f"roomctl: warning: room {name!r} does not exist on the server", file=sys.stderr)
    if args.output == "json":
        print(json.dumps(documents, indent=2))
    else:
        sys.stdout.write("---\n".join(dump(doc) for doc in documents))
    return 1 if missing else 0


def run(args: argparse.Namespace) -> int:
    return run_command(_export(args))
