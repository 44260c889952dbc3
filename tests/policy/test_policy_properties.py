"""Properties of RoomPolicy over generated policies, Rooms, live rooms and participants, against the
in-process sandbox: apply then plan is empty, and no request ever names a room that neither a Room
nor a policy matches."""

from __future__ import annotations

import asyncio
from fnmatch import fnmatchcase
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.backends.livekit import LiveKitBackend
from reconciler.execute import execute
from reconciler.model import DesiredPolicy, RoomPolicyManifest
from reconciler.plan import plan
from reconciler.sandbox import EMBEDDED_URL, EmbeddedTransport, Sandbox
from tests.plan.test_plan_properties import agent, manifests, rule

NAMES = ["support-1", "support-2", "support-vip-1", "call-ab-1", "sales-1", "lobby"]
GLOBS = ["support-*", "call-??-*", "s*", "lobby", "support-?"]
IDENTITIES = ["host-1", "guest-1", "guest-2", "banned-1", "bot-1"]

policy_spec = st.fixed_dictionaries(
    {"rooms": st.lists(st.sampled_from(GLOBS), min_size=1, max_size=2, unique=True),
     "participants": st.lists(rule, min_size=1, max_size=3)},
    optional={
        "exclude": st.lists(st.sampled_from(["support-vip-*", "sales-*"]), max_size=1),
        "priority": st.integers(-2, 2),
        "agents": st.lists(agent, max_size=2, unique_by=lambda a: a["agentName"]),
        "roomMetadata": st.sampled_from(["", "p1", "p2"]),
        "policy": st.fixed_dictionaries({}, optional={
            "observeOnly": st.booleans(),
            "ignore": st.lists(st.sampled_from(["metadata", "agents", "participants"]), unique=True, max_size=1),
        }),
    },
)
room_spec = st.fixed_dictionaries({}, optional={
    "metadata": st.sampled_from(["", "a"]),
    "participants": st.lists(rule, max_size=2),
    "agents": st.lists(agent, max_size=1),
    "policy": st.fixed_dictionaries({"lifecycle": st.just("OnDemand")},
                                    optional={"agents": st.sampled_from(["Additive", "Exact"])}),
})
live_room = st.fixed_dictionaries({
    "metadata": st.sampled_from(["", "p1", "old"]),
    "agents": st.lists(st.sampled_from(["bot", "helper", "other"]), max_size=2),
    "people": st.lists(st.tuples(st.sampled_from(IDENTITIES), st.booleans(), st.sampled_from([{}, {"role": "a"}])),
                       unique_by=lambda p: p[0], min_size=1, max_size=4),
})


def policies_from(specs: dict[str, dict[str, Any]]) -> list[DesiredPolicy]:
    out = []
    for name, spec in specs.items():
        data = {"apiVersion": "roomctl.dev/v1alpha1", "kind": "RoomPolicy", "metadata": {"name": name},
                "spec": spec}
        out.append(DesiredPolicy(RoomPolicyManifest.model_validate(data), "gen.yaml", 1))
    return out


def governed(name: str, rooms: dict[str, Any], policies: list[DesiredPolicy]) -> bool:
    return name in rooms or any(p.matches(name) for p in policies)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_specs=st.dictionaries(st.sampled_from(["a", "b", "c"]), policy_spec, min_size=1, max_size=3),
       room_specs=st.dictionaries(st.sampled_from(NAMES), room_spec, max_size=2),
       live=st.dictionaries(st.sampled_from(NAMES), live_room, max_size=5))
def test_apply_then_plan_is_empty_and_touches_only_governed_rooms(
        policy_specs: dict[str, dict[str, Any]], room_specs: dict[str, dict[str, Any]],
        live: dict[str, dict[str, Any]]) -> None:
    policies = policies_from(policy_specs)
    rooms = manifests(room_specs)

    async def scenario() -> None:
        sandbox = Sandbox()
        backend = LiveKitBackend(EMBEDDED_URL, "devkey", "secret", transport=EmbeddedTransport(sandbox))
        try:
            for name, room in live.items():
                # Rooms made by joins, as an app would; agents by the app's own dispatches.
                for identity, may_publish, attributes in room["people"]:
                    kind = "agent" if identity.startswith("bot-") else "standard"
                    sandbox.livekit.join({"sub": identity, "kind": kind, "attributes": attributes,
                                          "video": {"roomJoin": True, "room": name, "canPublish": may_publish}},
                                         identity)
                if room["metadata"]:
                    await backend.update_room_metadata(name, room["metadata"])
                for agent_name in room["agents"]:
                    await backend.create_dispatch({"room": name, "agent_name": agent_name})
            sandbox.room_requests.clear()

            first = plan(rooms, await backend.observe(rooms, policies=policies), policies=policies)
            results = await execute(first, backend)
            assert results.ok, [r.error for r in results.failed]
            second = plan(rooms, await backend.observe(rooms, policies=policies), policies=policies)
            assert not second.has_changes, [(a.kind, a.room, a.source, a.changes) for a in second.actions]

            touched = set(sandbox.room_requests)
            assert all(governed(n, room_specs, policies) for n in touched), touched
            assert not any(fnmatchcase(n, "sales-*") and n not in room_specs and
                           not any(p.matches(n) for p in policies) for n in touched)
        finally:
            await backend.aclose()

    asyncio.run(scenario())
