"""The official `livekit-api` SDK (protobuf over a real socket) drives every RoomService and
AgentDispatchService method against the sandbox and sees what livekit-api.md documents."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from livekit import api
from livekit.protocol import agent_dispatch as dispatch_pb
from livekit.protocol import models as models_pb
from livekit.protocol import room as room_pb

from tests.support.server import SandboxServer
from tests.support.tokens import mint


@pytest.fixture
async def lk(sandbox: SandboxServer) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(sandbox.url, "devkey", "secret", failover=False)
    yield client
    await client.aclose()


def join(sandbox: SandboxServer, room: str, identity: str, claims: dict[str, object] | None = None,
         **video: object) -> dict[str, object]:
    grant = {"roomJoin": True, "room": room, **video}
    token = mint({"sub": identity, "video": grant, **(claims or {})})
    response = httpx.post(f"{sandbox.url}/sandbox/join", json={"token": token})
    assert response.status_code == 200, response.text
    participant: dict[str, object] = response.json()["participant"]
    return participant


async def test_create_room_is_get_or_create_with_defaults(lk: api.LiveKitAPI) -> None:
    first = await lk.room.create_room(api.CreateRoomRequest(name="r1", max_participants=5, metadata="m1"))
    assert first.sid.startswith("RM_") and len(first.sid) == 15
    assert (first.empty_timeout, first.departure_timeout, first.max_participants) == (300, 20, 5)
    again = await lk.room.create_room(api.CreateRoomRequest(name="r1", max_participants=9, metadata="m2"))
    assert (again.sid, again.max_participants, again.metadata) == (first.sid, 5, "m1")


async def test_list_rooms_drops_unknown_names(lk: api.LiveKitAPI) -> None:
    await lk.room.create_room(api.CreateRoomRequest(name="a"))
    await lk.room.create_room(api.CreateRoomRequest(name="b"))
    listed = await lk.room.list_rooms(api.ListRoomsRequest(names=["a", "nope"]))
    assert [r.name for r in listed.rooms] == ["a"]
    assert sorted(r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms) == ["a", "b"]


async def test_delete_room_then_404(lk: api.LiveKitAPI) -> None:
    await lk.room.create_room(api.CreateRoomRequest(name="gone"))
    await lk.room.delete_room(api.DeleteRoomRequest(room="gone"))
    with pytest.raises(api.TwirpError) as err:
        await lk.room.delete_room(api.DeleteRoomRequest(room="gone"))
    assert (err.value.status, err.value.code) == (404, "not_found")


async def test_update_room_metadata_and_clear(lk: api.LiveKitAPI) -> None:
    await lk.room.create_room(api.CreateRoomRequest(name="m", metadata="x"))
    assert (await lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room="m", metadata="y"))).metadata == "y"
    assert (await lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room="m", metadata=""))).metadata == ""
    with pytest.raises(api.TwirpError) as err:
        await lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room="missing", metadata="y"))
    assert err.value.code == "not_found"


async def test_participant_methods(lk: api.LiveKitAPI, sandbox: SandboxServer) -> None:
    await lk.room.create_room(api.CreateRoomRequest(name="p"))
    join(sandbox, "p", "alice", canPublish=True)
    join(sandbox, "p", "bob", canPublish=False)
    listed = await lk.room.list_participants(api.ListParticipantsRequest(room="p"))
    assert sorted(p.identity for p in listed.participants) == ["alice", "bob"]
    assert (await lk.room.list_participants(api.ListParticipantsRequest(room="nope"))).participants == []
    bob = await lk.room.get_participant(api.RoomParticipantIdentity(room="p", identity="bob"))
    assert bob.permission.can_subscribe and not bob.permission.can_publish

    updated = await lk.room.update_participant(
        api.UpdateParticipantRequest(room="p", identity="bob", permission=api.ParticipantPermission(can_publish=True),
                                     attributes={"role": "guest"}, metadata="meta")
    )
    # The permission is replaced whole: can_subscribe, left out, became false.
    assert updated.permission.can_publish and not updated.permission.can_subscribe
    assert dict(updated.attributes) == {"role": "guest"} and updated.metadata == "meta"
    cleared = await lk.room.update_participant(
        api.UpdateParticipantRequest(room="p", identity="bob", attributes={"role": ""}, metadata="")
    )
    assert dict(cleared.attributes) == {} and cleared.metadata == "meta"  # "" never clears metadata

    track = httpx.post(f"{sandbox.url}/sandbox/publish",
                       json={"room": "p", "identity": "alice", "type": "AUDIO", "source": "MICROPHONE"}).json()
    sid = track["track"]["sid"]
    assert sid.startswith("TR_AM") and len(sid) == len("TR_AM") + 12
    muted = await lk.room.mute_published_track(api.MuteRoomTrackRequest(room="p", identity="alice", track_sid=sid,
                                                                        muted=True))
    assert muted.track.muted
    with pytest.raises(api.TwirpError) as err:
        await lk.room.mute_published_track(api.MuteRoomTrackRequest(room="p", identity="alice", track_sid=sid,
                                                                    muted=False))
    assert (err.value.status, err.value.code) == (412, "failed_precondition")
    await lk.room.update_subscriptions(api.UpdateSubscriptionsRequest(room="p", identity="bob", track_sids=[sid],
                                                                      subscribe=False))
    await lk.room.send_data(api.SendDataRequest(room="p", data=b"hi", kind=models_pb.DataPacket.Kind.RELIABLE))
    for call in (lk.room.forward_participant, lk.room.move_participant):
        with pytest.raises(api.TwirpError) as err:
            await call(room_pb.ForwardParticipantRequest(room="p", identity="alice", destination_room="q")  # type: ignore[arg-type]
                       if call == lk.room.forward_participant
                       else room_pb.MoveParticipantRequest(room="p", identity="alice", destination_room="q"))
        assert (err.value.status, err.value.code) == (500, "unknown")
        assert err.value.message == "twirp error unknown: not implemented"
    # The SDK has no PerformRpc; the same call over JSON.
    rpc = httpx.post(f"{sandbox.url}/twirp/livekit.RoomService/PerformRpc",
                     headers={"Authorization": "Bearer " + mint({"video": {"roomAdmin": True, "room": "p"}})},
                     json={"room": "p", "destination_identity": "", "method": "m"})
    assert (rpc.status_code, rpc.json()["code"]) == (400, "invalid_argument")
    await lk.room.remove_participant(api.RoomParticipantIdentity(room="p", identity="bob"))
    with pytest.raises(api.TwirpError) as err:
        await lk.room.remove_participant(api.RoomParticipantIdentity(room="p", identity="bob"))
    assert err.value.code == "not_found"


async def test_routed_calls_on_missing_room_are_503(lk: api.LiveKitAPI) -> None:
    with pytest.raises(api.TwirpError) as err:
        await lk.room.send_data(api.SendDataRequest(room="nope", data=b"x"))
    assert (err.value.status, err.value.code) == (503, "unavailable")
    assert err.value.message == "twirp error unknown: no response from servers"
    with pytest.raises(api.TwirpError) as err:
        await lk.agent_dispatch.list_dispatch("nope")
    assert err.value.status == 503


async def test_dispatches_implicit_duplicates_and_delete(lk: api.LiveKitAPI) -> None:
    await lk.room.create_room(api.CreateRoomRequest(name="d"))
    implicit = await lk.agent_dispatch.list_dispatch("d")
    assert [d.agent_name for d in implicit] == [""]
    one = await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(room="d", agent_name="helper"))
    two = await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(room="d", agent_name="helper"))
    assert one.id != two.id and one.id.startswith("AD_")
    assert len(str(one.state.created_at)) == 19  # nanoseconds
    assert sorted(d.agent_name for d in await lk.agent_dispatch.list_dispatch("d")) == ["", "helper", "helper"]
    assert (await lk.agent_dispatch.get_dispatch(one.id, "d")).id == one.id
    await lk.agent_dispatch.delete_dispatch(one.id, "d")
    with pytest.raises(api.TwirpError) as err:
        await lk.agent_dispatch.delete_dispatch(one.id, "d")
    assert err.value.code == "not_found"
    auto = await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(room="fresh", agent_name="a"))
    assert auto.room == "fresh"
    assert [r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest(names=["fresh"]))).rooms] == ["fresh"]


async def test_create_room_with_agents_replaces_the_implicit_dispatch(lk: api.LiveKitAPI) -> None:
    await lk.room.create_room(api.CreateRoomRequest(
        name="ag", agents=[dispatch_pb.RoomAgentDispatch(agent_name="mod", metadata="x")]))
    listed = await lk.agent_dispatch.list_dispatch("ag")
    assert [(d.agent_name, d.metadata) for d in listed] == [("mod", "x")]


async def test_wrong_secret_is_unauthenticated(sandbox: SandboxServer) -> None:
    client = api.LiveKitAPI(sandbox.url, "devkey", "wrong", failover=False)
    try:
        with pytest.raises(api.TwirpError) as err:
            await client.room.list_rooms(api.ListRoomsRequest())
        assert err.value.status == 401
        assert err.value.code == "unknown"  # the SDK's reading of a text/plain body
    finally:
        await client.aclose()


async def test_rooms_expire_on_the_fake_clock(lk: api.LiveKitAPI, sandbox: SandboxServer) -> None:
    await lk.room.create_room(api.CreateRoomRequest(name="short", empty_timeout=60))
    await lk.room.create_room(api.CreateRoomRequest(name="used", empty_timeout=60, departure_timeout=30))
    join(sandbox, "used", "x")
    join(sandbox, "used", "agent-1", claims={"kind": "agent"})
    sandbox.test_api("POST", "clock", {"advance": 61})
    names = [r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms]
    assert names == ["used"]
    sandbox.test_api("POST", "leave", {"room": "used", "identity": "x"})
    sandbox.test_api("POST", "clock", {"advance": 29})
    assert [r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms] == ["used"]
    sandbox.test_api("POST", "clock", {"advance": 2})  # the agent does not keep the room open
    assert (await lk.room.list_rooms(api.ListRoomsRequest())).rooms == []


async def test_clock_advance_moves_room_timeouts_only_not_token_validity(lk: api.LiveKitAPI,
                                                                          sandbox: SandboxServer) -> None:
    """Issue 13 item 7: after advancing the fake clock past a token's 10-minute life, real-time
    tokens still authenticate (they were 401 before), while the room's emptyTimeout did elapse."""
    await lk.room.create_room(api.CreateRoomRequest(name="aging", empty_timeout=60))
    one_minute = mint({"sub": "", "video": {"roomList": True}}, ttl=60)
    sandbox.test_api("POST", "clock", {"advance": 11 * 60})
    assert (await lk.room.list_rooms(api.ListRoomsRequest())).rooms == []  # the room timed out
    listed = httpx.post(f"{sandbox.url}/twirp/livekit.RoomService/ListRooms", json={},
                        headers={"Authorization": f"Bearer {one_minute}"})
    assert listed.status_code == 200, listed.text
    await lk.room.create_room(api.CreateRoomRequest(name="fresh"))
    join(sandbox, "fresh", "late-joiner")  # a join token minted on real time is accepted too
    expired = mint({"video": {"roomList": True}}, exp_offset=-120)  # expired in real time: still refused
    refused = httpx.post(f"{sandbox.url}/twirp/livekit.RoomService/ListRooms", json={},
                         headers={"Authorization": f"Bearer {expired}"})
    assert refused.status_code == 401
