"""plugNmeet's signed API and the fault injection, over the loopback socket."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from reconciler.backends.errors import AuthFailed, RateLimited
from reconciler.backends.livekit import LiveKitBackend
from reconciler.backends.twirp import RetryPolicy
from tests.support.server import SandboxServer


def pnm(sandbox: SandboxServer, method: str, body: dict[str, Any], *, secret: str = "secret",
        key: str = "plugnmeet", upper: bool = False) -> httpx.Response:
    raw = json.dumps(body, separators=(",", ":")).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "API-KEY": key,
               "HASH-SIGNATURE": signature.upper() if upper else signature}
    return httpx.post(f"{sandbox.url}/auth/room/{method}", content=raw, headers=headers, timeout=30)


def test_signature_is_lowercase_hex_hmac_over_exact_bytes(sandbox: SandboxServer) -> None:
    assert pnm(sandbox, "getActiveRoomsInfo", {}).status_code == 200
    bad = pnm(sandbox, "getActiveRoomsInfo", {}, secret="wrong")
    assert bad.status_code == 401
    assert bad.json() == {"status": False, "msg": "Failed to verify provided authentication details.",
                          "status_code": "INVALID_TOKEN_OR_SIGNATURE"}
    assert pnm(sandbox, "getActiveRoomsInfo", {}, upper=True).status_code == 401  # uppercase hex fails
    assert pnm(sandbox, "getActiveRoomsInfo", {}, key="nope").json()["status_code"] == "INVALID_API_KEY"
    # The same JSON with other whitespace is other bytes: the signature no longer matches.
    raw = b'{"room_id": "x"}'
    sig = hmac.new(b"secret", b'{"room_id":"x"}', hashlib.sha256).hexdigest()
    resp = httpx.post(f"{sandbox.url}/auth/room/isRoomActive", content=raw,
                      headers={"API-KEY": "plugnmeet", "HASH-SIGNATURE": sig})
    assert resp.status_code == 401


def test_create_is_not_an_upsert_and_defaults_apply(sandbox: SandboxServer) -> None:
    assert pnm(sandbox, "getActiveRoomsInfo", {}).json()["status_code"] == "NOT_FOUND"  # none: status false
    body = {"room_id": "class-1", "empty_timeout": 60,
            "metadata": {"room_title": "Class", "room_features": {"allow_webcams": False, "allow_raise_hand": False}}}
    created = pnm(sandbox, "create", body).json()
    assert created["status"] is True
    metadata = json.loads(created["room_info"]["metadata"])
    # v2.3+: a default-true non-optional boolean cannot be switched off; an optional one can.
    assert metadata["room_features"]["allow_webcams"] is True
    assert metadata["room_features"]["allow_raise_hand"] is False
    assert isinstance(created["room_info"]["creation_time"], str)
    again = pnm(sandbox, "create", {**body, "metadata": {"room_title": "Other", "room_features": {}}}).json()
    assert again["room_info"]["sid"] == created["room_info"]["sid"]
    assert json.loads(again["room_info"]["metadata"])["room_title"] == "Class"
    invalid = pnm(sandbox, "create", {"room_id": "bad id!", "metadata": {"room_title": "x", "room_features": {}}})
    assert invalid.status_code == 200 and invalid.json()["status"] is False


def test_end_room_holds_the_lock_before_create(sandbox: SandboxServer) -> None:
    sandbox.test_api("PUT", "options", {"pnm_end_lock_seconds": 0.5})
    body = {"room_id": "r2", "metadata": {"room_title": "R", "room_features": {}}}
    first = pnm(sandbox, "create", body).json()["room_info"]["sid"]
    assert pnm(sandbox, "endRoom", {"room_id": "r2"}).json()["status"] is True
    assert pnm(sandbox, "isRoomActive", {"room_id": "r2"}).json()["is_active"] is False
    second = pnm(sandbox, "create", body).json()  # waits for the lock, then creates anew
    assert second["status"] is True and second["room_info"]["sid"] != first
    assert pnm(sandbox, "endRoom", {"room_id": "missing"}).json()["status_code"] == "ROOM_NOT_FOUND"


async def _backend(sandbox: SandboxServer, **retry: Any) -> LiveKitBackend:
    return LiveKitBackend(sandbox.url, "devkey", "secret", timeout=2,
                          retry=RetryPolicy(base_delay=0.01, max_delay=0.05, **retry))


def test_client_retries_503_and_429_then_succeeds(sandbox: SandboxServer) -> None:
    sandbox.test_api("PUT", "faults", {"methods": {"RoomService.ListRooms": {"error_rate": 0.5, "throttle_rate": 0.3,
                                                                              "retry_after": 0}}, "seed": 7})

    async def run() -> int:
        backend = await _backend(sandbox, attempts=30)
        try:
            for _ in range(10):
                await backend.list_rooms(None)
            return backend.twirp.calls["ListRooms"]
        finally:
            await backend.aclose()

    calls = asyncio.run(run())
    assert calls > 10  # some attempts failed and were retried
    assert sandbox.counts()["RoomService.ListRooms"] == calls


def test_reset_connections_are_retried_and_rate_limit_surfaces(sandbox: SandboxServer) -> None:
    sandbox.test_api("PUT", "faults", {"methods": {"*": {"reset_rate": 0.5}}, "seed": 3})

    async def resets() -> None:
        backend = await _backend(sandbox, attempts=30)
        try:
            for _ in range(5):
                await backend.list_rooms(["x"])
        finally:
            await backend.aclose()

    asyncio.run(resets())
    sandbox.test_api("PUT", "faults", {"methods": {}, "rate_limit_per_min": 3})

    async def limited() -> None:
        backend = await _backend(sandbox, attempts=1)
        try:
            for _ in range(4):
                await backend.list_rooms(["x"])
        finally:
            await backend.aclose()

    with pytest.raises(RateLimited) as err:
        asyncio.run(limited())
    assert err.value.retry_after is not None and err.value.retry_after >= 1


def test_wrong_secret_is_auth_failed_and_not_retried(sandbox: SandboxServer) -> None:
    async def run() -> None:
        backend = LiveKitBackend(sandbox.url, "devkey", "wrong")
        try:
            await backend.list_rooms(None)
        finally:
            await backend.aclose()

    with pytest.raises(AuthFailed) as err:
        asyncio.run(run())
    assert "eyJ" not in str(err.value)
    assert sandbox.counts()["RoomService.ListRooms"] == 1
