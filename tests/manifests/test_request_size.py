"""The CreateRoom body limit (10 MiB, livekit-server's max_api_request_body_size): a room over it is
refused at validation, the error naming its biggest field; a room under it, however close, is not."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.model import RoomManifest
from reconciler.model.base import MAX_METADATA_BYTES, MAX_REQUEST_BYTES


def room(**spec: Any) -> RoomManifest:
    return RoomManifest.model_validate({"apiVersion": "roomctl.dev/v1alpha1", "kind": "Room",
                                        "metadata": {"name": "big"}, "spec": spec})


def refusal(**spec: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        room(**spec)
    (error,) = caught.value.errors()
    assert error["type"] == "request_too_large"
    ctx: dict[str, Any] = error["ctx"]
    return ctx


def test_tags_over_the_limit_name_the_tags() -> None:
    ctx = refusal(metadata="m", tags={f"k{i}": "v" * 1_000_000 for i in range(11)})
    assert ctx["path"] == ["tags"]
    assert f"over {MAX_REQUEST_BYTES} bytes (413)" in ctx["detail"]


def test_agents_over_the_limit_name_the_agents() -> None:
    agent_metadata = "a" * (MAX_METADATA_BYTES - 16)
    ctx = refusal(agents=[{"agentName": f"bot-{i}", "metadata": agent_metadata} for i in range(21)])
    assert ctx["path"] == ["agents"]


def test_rooms_under_the_limit_pass_however_their_size_is_made() -> None:
    text = "x" * (MAX_METADATA_BYTES - 1)
    assert room(name="n" * 200, metadata=text).spec.metadata == text
    assert room(metadata="é" * (MAX_METADATA_BYTES // 2 - 1), tags={"a": "b"}).spec.tags == {"a": "b"}
    assert len(room(agents=[{"agentName": f"bot-{i}", "metadata": "a" * 100_000} for i in range(10)]).spec.agents
               or []) == 10
