"""Replays every vector recorded from a real livekit-server 1.11.0 against a fresh sandbox.

The sandbox follows the current server (livekit-api.md); where 1.11.0 differs, or a value comes
from a client the sandbox cannot know, the vector is listed below by id with the reason. Every
other mismatch fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import SandboxServer
from tests.support.tokens import mint


def _conformance_dir() -> Path:
    """shared/conformance beside the checkout (where CI and developers have it)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "conformance"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("shared/conformance not found beside the checkout: the recordings are required")


CONFORMANCE = _conformance_dir()
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
ID_RE = re.compile(rf"^(RM|AD|PA)_[{ALPHABET}]{{12}}$")
TRACK_RE = re.compile(rf"^TR_([AV][CMSs])?[{ALPHABET}]{{12}}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Keys whose value is time-dependent, with the placeholder and the digits the value must have.
TIME_KEYS = {
    "creation_time": ("<INT64_UNIX_S>", 10),
    "joined_at": ("<INT64_UNIX_S>", 10),
    "creation_time_ms": ("<INT64_UNIX_MS>", 13),
    "joined_at_ms": ("<INT64_UNIX_MS>", 13),
    "created_at": ("<INT64_UNIX_NS>", 19),
    "unix_micro": ("<INT64_UNIX_US>", 16),
}

# Fields the current protocol has and 1.11.0 (protocol v1.45.3) did not: extra in the sandbox.
# Keyed by a field that identifies the message (ParticipantInfo, AgentDispatch).
NEWER_PROTOCOL_FIELDS = {"is_publisher": {"capabilities"}, "restart_policy": {"deployment", "attributes"}}

KNOWN_DIFFERENCES = {
    "auth-wrong-secret": "1.11.0 used go-jose ('invalid token: <jwt>, error: go-jose/...'); current servers "
    "answer 'invalid authorization token: token signature is invalid: ...' (livekit-api.md §1.6, §2.6)",
    "auth-expired": "1.11.0 used go-jose; current servers answer "
    "'invalid authorization token: token has invalid claims: token is expired'",
    "auth-unknown-key": "1.11.0 says 'invalid API key: nokey'; current servers say 'invalid API key' (auth.go:90-93)",
    "p-list-rooms-early": "the real store refreshes counts every 5 s; the sandbox counts at once (by design)",
}


def normalize(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        newer = set().union(*(fields for marker, fields in NEWER_PROTOCOL_FIELDS.items() if marker in value))
        return {k: normalize(v, k) for k, v in value.items() if k not in newer}
    if isinstance(value, list):
        return [normalize(v, key) for v in value]
    if isinstance(value, str):
        if key in TIME_KEYS and value.isdigit() and value != "0":
            placeholder, digits = TIME_KEYS[key]
            assert len(value) == digits, f"{key}={value} has the wrong unit"
            return placeholder
        if key == "turn_password" and value:
            return "<SECRET>"
        if key == "cid" and UUID_RE.match(value):
            return "<UUID>"
        match = ID_RE.match(value)
        if match:
            return f"<{match.group(1)}_ID>"
        match = TRACK_RE.match(value)
        if match:
            return f"<TR_{match.group(1)}_ID>" if match.group(1) else "<TR_ID>"
    return value


UNORDERED = {"rooms", "agent_dispatches", "participants"}


def canonical(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = canonical(v)
            if k in UNORDERED and isinstance(v, list):
                v = sorted(v, key=lambda item: json.dumps(item, sort_keys=True))
            out[k] = v
        return out
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (CONFORMANCE / name).read_text().splitlines() if line.strip()]


def authorization(vector: dict[str, Any]) -> str | None:
    auth = vector["request"]["auth"]
    vid = vector["id"]
    if auth is None:
        return None
    if "video" in auth:
        return "Bearer " + mint({"video": auth["video"]})
    good = mint({"video": {"roomList": True}})
    raw = {
        "auth-not-bearer": good,
        "auth-lowercase-bearer": "bearer " + good,
        "auth-garbage": "Bearer not-a-jwt",
        "auth-wrong-secret": "Bearer " + mint({"video": {"roomList": True}}, secret="not-the-secret"),
        "auth-unknown-key": "Bearer " + mint({"video": {"roomList": True}}, key="nokey"),
        "auth-expired": "Bearer " + mint({"video": {"roomList": True}}, exp_offset=-200),
        "auth-expired-within-leeway": "Bearer " + mint({"video": {"roomList": True}}, exp_offset=-30),
    }
    return raw[vid]


def send(server: SandboxServer, vector: dict[str, Any], track_sid: str | None) -> httpx.Response:
    request = vector["request"]
    headers = {}
    if request["content_type"] is not None:
        headers["Content-Type"] = request["content_type"]
    else:
        headers["Content-Type"] = "application/x-www-form-urlencoded"  # what the recorder's library sent
    auth = authorization(vector)
    if auth is not None:
        headers["Authorization"] = auth
    body = request["body"]
    if body is None:
        content = b""
    elif isinstance(body, str):
        content = body.encode()
    else:
        text = json.dumps(body)
        if track_sid:
            text = text.replace("<TR_AM_ID>", track_sid)
        content = text.encode()
    return httpx.request(request["method"], server.url + request["path"], headers=headers, content=content, timeout=30)


def simulate_before(server: SandboxServer, vid: str, context: dict[str, Any]) -> None:
    """The actions between vectors that only real participants can perform (README table)."""

    def join(claims: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{server.url}/sandbox/join", json={"token": mint(claims)}, timeout=10)

    if vid == "p-list-participants":
        assert join({"sub": "alice", "name": "Alice", "metadata": "a-meta", "attributes": {"role": "host", "x": "1"},
                     "video": {"roomJoin": True, "room": "v-p-main", "canPublish": True, "canSubscribe": True,
                               "canPublishData": True}}).status_code == 200
        assert join({"sub": "bob", "video": {"roomJoin": True, "room": "v-p-main", "canSubscribe": True,
                                             "canPublish": False}}).status_code == 200
        track = server.test_api("POST", "publish", {"room": "v-p-main", "identity": "alice", "type": "AUDIO",
                                                    "source": "MICROPHONE", "name": "sine-440",
                                                    "mime_type": "audio/red", "mid": "7"})
        context["track_sid"] = track["track"]["sid"]
    elif vid == "p-list-after-remove":
        pass  # RemoveParticipant itself disconnected bob
    elif vid == "p-tokcfg-new-list-rooms":
        assert join({"sub": "carol", "roomConfig": {"agents": [{"agent_name": "tok-agent"}], "empty_timeout": 1234,
                                                    "max_participants": 7, "metadata": "from-token",
                                                    "name": "v-p-tokcfg"},
                     "video": {"canPublish": False, "canSubscribe": True, "room": "v-p-tokcfg",
                               "roomJoin": True}}).status_code == 200
    elif vid == "p-tokcfg-existing-list-rooms":
        assert join({"sub": "dave", "roomConfig": {"agents": [{"agent_name": "tok-agent"}], "empty_timeout": 1234,
                                                   "max_participants": 7, "metadata": "from-token",
                                                   "name": "v-p-tokcfg-existing"},
                     "video": {"canPublish": False, "canSubscribe": True, "room": "v-p-tokcfg-existing",
                               "roomJoin": True}}).status_code == 200
    elif vid == "p-max1-list-participants":
        erin = {"sub": "erin", "video": {"roomJoin": True, "room": "v-p-max1", "canPublish": False}}
        assert join(erin).status_code == 200
        frank = join({"sub": "frank", "video": {"roomJoin": True, "room": "v-p-max1", "canPublish": False}})
        assert frank.status_code == 403 and "max participants" in frank.json()["error"]


@pytest.mark.parametrize("recording", ["livekit-1.11.0.jsonl", "livekit-1.11.0-participants.jsonl"])
def test_replay_matches_real_server(sandbox: SandboxServer, recording: str) -> None:
    vectors = load(recording)
    assert len(vectors) == {"livekit-1.11.0.jsonl": 49, "livekit-1.11.0-participants.jsonl": 37}[recording]
    context: dict[str, Any] = {}
    mismatches = []
    known_seen = set()
    for vector in vectors:
        vid = vector["id"]
        simulate_before(sandbox, vid, context)
        response = send(sandbox, vector, context.get("track_sid"))
        expected = vector["response"]
        if expected["kind"] == "json":
            actual_body: Any = response.json()
        else:
            actual_body = response.text
        actual_type = response.headers.get("content-type", "").split(";")[0]
        same = (
            response.status_code == expected["status"]
            and actual_type == (expected["content_type"] or "").split(";")[0]
            and canonical(normalize(actual_body)) == canonical(expected["body"])
        )
        if vid in KNOWN_DIFFERENCES:
            known_seen.add(vid)
            assert response.status_code == expected["status"], vid  # even a known difference keeps the status
            continue
        if not same:
            mismatches.append(
                f"{vid}: got {response.status_code} {actual_type} {json.dumps(normalize(actual_body))[:600]}\n"
                f"   want {expected['status']} {expected['content_type']} {json.dumps(expected['body'])[:600]}"
            )
    assert not mismatches, "\n".join(mismatches)
    assert known_seen == {k for k in KNOWN_DIFFERENCES if any(v["id"] == k for v in vectors)}
