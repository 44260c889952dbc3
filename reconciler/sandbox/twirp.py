"""Twirp routing, encodings, grants and check order of the LiveKit server (livekit-api.md §1-§3)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from livekit.protocol import agent_dispatch as dispatch_pb
from livekit.protocol import room as room_pb

from . import protojson
from .common import PERMISSION_DENIED, TwirpError
from .jwtauth import Claims
from .livekit import MAX_ATTRIBUTES_BYTES, MAX_METADATA_BYTES, MAX_NAME_BYTES, LiveKitState, RoutedMiss

Handler = Callable[[LiveKitState, Any], Message]
PreCheck = Callable[[Any], None]


@dataclass(frozen=True)
class Method:
    request: type[Message]
    handler: Handler
    grant: str  # "create" | "list" | "admin" | "admin+dest"
    pre_auth: PreCheck | None = None


def _update_participant_limits(req: room_pb.UpdateParticipantRequest) -> None:
    # Checked before auth on the real server (roomservice.go:260-275).
    if len(req.name.encode()) > MAX_NAME_BYTES:
        raise TwirpError.invalid_argument("name length exceeds limits", str(MAX_NAME_BYTES))
    if len(req.metadata.encode()) > MAX_METADATA_BYTES:
        raise TwirpError.invalid_argument("metadata size exceeds limits", str(MAX_METADATA_BYTES))
    size = sum(len(k.encode()) + len(v.encode()) for k, v in req.attributes.items())
    if size > MAX_ATTRIBUTES_BYTES:
        raise TwirpError.invalid_argument("attributes size exceeds limits", str(MAX_ATTRIBUTES_BYTES))


def _room_metadata_limit(req: room_pb.UpdateRoomMetadataRequest) -> None:
    if len(req.metadata.encode()) > MAX_METADATA_BYTES:
        raise TwirpError.invalid_argument("metadata size exceeds limits", str(MAX_METADATA_BYTES))


def _send_data(state: LiveKitState, req: room_pb.SendDataRequest) -> Message:
    if req.nonce and len(req.nonce) != 16:
        raise TwirpError.invalid_argument(
            "nonce should be 16-bytes or not present,", f"got: {len(req.nonce)} bytes"
        )
    state.require_room(req.room)
    return room_pb.SendDataResponse()


def _forward_or_move(state: LiveKitState, req: Any) -> Message:
    if req.room == req.destination_room:
        raise TwirpError.invalid_argument("destination room cannot be the same as source room", "")
    state.require_participant(req.room, req.identity)
    # OSS answers a connected participant with errors.New("not implemented") (§3.2).
    raise TwirpError.psrpc("unknown", "not implemented")


def _perform_rpc(state: LiveKitState, req: room_pb.PerformRpcRequest) -> Message:
    if not req.destination_identity:
        raise TwirpError.psrpc("invalid_argument", "destination identity is required")
    state.require_participant(req.room, req.destination_identity)
    # No simulated participant answers RPCs: the real client-side error for that case.
    raise TwirpError("unavailable", "twirp error unknown: no response from participant")


def _delete_room(state: LiveKitState, req: room_pb.DeleteRoomRequest) -> Message:
    state.delete_room(req.room)
    return room_pb.DeleteRoomResponse()


def _remove_participant(state: LiveKitState, req: room_pb.RoomParticipantIdentity) -> Message:
    state.remove_participant(req.room, req.identity)
    return room_pb.RemoveParticipantResponse()


def _update_subscriptions(state: LiveKitState, req: room_pb.UpdateSubscriptionsRequest) -> Message:
    state.require_participant(req.room, req.identity)
    return room_pb.UpdateSubscriptionsResponse()


ROOM_SERVICE: dict[str, Method] = {
    "CreateRoom": Method(room_pb.CreateRoomRequest, lambda s, r: s.create_room(r), "create"),
    "ListRooms": Method(
        room_pb.ListRoomsRequest, lambda s, r: room_pb.ListRoomsResponse(rooms=s.list_rooms(list(r.names))), "list"
    ),
    "DeleteRoom": Method(room_pb.DeleteRoomRequest, _delete_room, "create"),
    "ListParticipants": Method(
        room_pb.ListParticipantsRequest,
        lambda s, r: room_pb.ListParticipantsResponse(participants=s.list_participants(r.room)),
        "admin",
    ),
    "GetParticipant": Method(
        room_pb.RoomParticipantIdentity, lambda s, r: s.get_participant(r.room, r.identity), "admin"
    ),
    "RemoveParticipant": Method(room_pb.RoomParticipantIdentity, _remove_participant, "admin"),
    "MutePublishedTrack": Method(
        room_pb.MuteRoomTrackRequest, lambda s, r: room_pb.MuteRoomTrackResponse(track=s.mute_track(r)), "admin"
    ),
    "UpdateParticipant": Method(
        room_pb.UpdateParticipantRequest, lambda s, r: s.update_participant(r), "admin", _update_participant_limits
    ),
    "UpdateSubscriptions": Method(room_pb.UpdateSubscriptionsRequest, _update_subscriptions, "admin"),
    "SendData": Method(room_pb.SendDataRequest, _send_data, "admin"),
    "UpdateRoomMetadata": Method(
        room_pb.UpdateRoomMetadataRequest,
        lambda s, r: s.update_room_metadata(r.room, r.metadata),
        "admin",
        _room_metadata_limit,
    ),
    "ForwardParticipant": Method(room_pb.ForwardParticipantRequest, _forward_or_move, "admin+dest"),
    "MoveParticipant": Method(room_pb.MoveParticipantRequest, _forward_or_move, "admin+dest"),
    "PerformRpc": Method(room_pb.PerformRpcRequest, _perform_rpc, "admin"),
}

AGENT_DISPATCH_SERVICE: dict[str, Method] = {
    "CreateDispatch": Method(dispatch_pb.CreateAgentDispatchRequest, lambda s, r: s.create_dispatch(r), "admin"),
    "ListDispatch": Method(
        dispatch_pb.ListAgentDispatchRequest,
        lambda s, r: dispatch_pb.ListAgentDispatchResponse(agent_dispatches=s.list_dispatch(r.room, r.dispatch_id)),
        "admin",
    ),
    "DeleteDispatch": Method(
        dispatch_pb.DeleteAgentDispatchRequest, lambda s, r: s.delete_dispatch(r.room, r.dispatch_id), "admin"
    ),
}

SERVICES = {"livekit.RoomService": ROOM_SERVICE, "livekit.AgentDispatchService": AGENT_DISPATCH_SERVICE}

# Methods that go over psrpc to the room/participant topic: a miss costs the routed delay.
ROUTED = frozenset(
    {"MutePublishedTrack", "UpdateSubscriptions", "SendData", "ForwardParticipant", "MoveParticipant",
     "PerformRpc", "CreateDispatch", "ListDispatch", "DeleteDispatch"}
)


def check_grant(method: Method, claims: Claims | None, req: Any) -> None:
    video = claims.video if claims else {}
    if method.grant == "create":
        ok = bool(video.get("roomCreate"))
    elif method.grant == "list":
        ok = bool(video.get("roomList"))
    else:
        ok = bool(video.get("roomAdmin")) and video.get("room", "") == req.room
        if ok and method.grant == "admin+dest":
            ok = video.get("destinationRoom", "") == req.destination_room
    if not ok:
        raise TwirpError(*PERMISSION_DENIED)


def bad_route(verb: str, path: str, msg: str) -> TwirpError:
    return TwirpError("bad_route", msg, {"twirp_invalid_route": f"{verb} {path}"})


@dataclass
class TwirpCall:
    service: str
    name: str
    method: Method
    binary: bool


def route(verb: str, path: str, content_type: str | None) -> TwirpCall:
    """Resolve a request to a method, in the generated ServeHTTP's order of checks."""
    prefix = "/twirp/"
    service_name, _, method_name = path[len(prefix) :].partition("/") if path.startswith(prefix) else ("", "", "")
    service = SERVICES.get(service_name)
    if verb != "POST":
        raise bad_route(verb, path, f'unsupported method "{verb}" (only POST is allowed)')
    if service is None or method_name not in service:
        raise bad_route(verb, path, f'no handler for path "{path}"')
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime not in ("application/json", "application/protobuf"):
        raise bad_route(verb, path, f'unexpected Content-Type: "{content_type or ""}"')
    return TwirpCall(service_name, method_name, service[method_name], mime == "application/protobuf")


def decode_request(call: TwirpCall, body: bytes) -> Message:
    if call.binary:
        message = call.method.request()
        try:
            message.ParseFromString(body)
        except ProtobufDecodeError as exc:
            raise TwirpError("malformed", "the protobuf request could not be decoded") from exc
        return message
    try:
        return protojson.decode(json.loads(body), call.method.request)
    except (ValueError, protojson.DecodeError) as exc:
        raise TwirpError("malformed", "the json request could not be decoded") from exc


def encode_response(call: TwirpCall, message: Message) -> tuple[bytes, str]:
    if call.binary:
        return message.SerializeToString(), "application/protobuf"
    return json.dumps(protojson.encode(message), separators=(",", ":")).encode(), "application/json"


async def invoke(
    state: LiveKitState, call: TwirpCall, claims: Claims | None, req: Message, timeout_ms: int | None
) -> Message:
    """Run one call. A routed miss waits like psrpc does, capped by X-Twirp-Timeout-Ms."""
    if call.method.pre_auth is not None:
        call.method.pre_auth(req)
    check_grant(call.method, claims, req)
    state.expire()
    try:
        return call.method.handler(state, req)
    except RoutedMiss:
        delay = state.options.routed_delay
        if timeout_ms is not None and timeout_ms / 1000 < delay:
            await asyncio.sleep(timeout_ms / 1000)
            raise TwirpError("canceled", "twirp error unknown: context canceled") from None
        if delay:
            await asyncio.sleep(delay)
        raise TwirpError.psrpc("unavailable", "no response from servers") from None

