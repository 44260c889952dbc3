"""PlugNmeetRoom in the operator, decided without kopf or a cluster: the object goes through the CLI's
model and `plan_pnm_room` (the same plan `roomctl apply` uses), then the shared conclude/deletion
decisions. Also the operator's safety rules of issue 9 item 9 (backoff, malformed bodies)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.backends.errors import BackendError, RateLimited, Unavailable
from reconciler.execute import ActionResult
from reconciler.model.plugnmeet import create_request
from reconciler.observed import ObservedPnmRoom
from reconciler.operator.decide import (
    Failure,
    InvalidSpec,
    Outcome,
    RoomObject,
    backoff,
    conclude,
    decide_deletion,
    desired_room,
    failed,
    failure_for,
)
from reconciler.operator.plugnmeet import PLUGNMEET_OPS, desired_pnm_room
from reconciler.operator.reconciler import KIND_OPS
from reconciler.operator.servers import Credentials, ServerPool, server_key
from reconciler.plan import ActionKind, DriftReason, RoomPlan
from reconciler.plan.plugnmeet import plan_pnm_room

NOW = "2026-11-21T10:00:00Z"
KIND = "PlugNmeetRoom"


def obj(spec: Any, status: dict[str, Any] | None = None, generation: int = 1,
        name: str = "physics") -> RoomObject:
    return RoomObject("school", name, spec, status or {}, generation, "uid-1", KIND)


def spec(welcome: str = "hello", recreate: str = "Never", features: dict[str, Any] | None = None,
         **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"roomTitle": "Physics", "welcomeMessage": welcome}
    if features is not None:
        metadata["roomFeatures"] = features
    return {"emptyTimeout": 1800, "metadata": metadata, "policy": {"recreate": recreate}, **extra}


def served(o: RoomObject, *, sid: str = "sess-1", joined: int = 0, **overrides: Any) -> ObservedPnmRoom:
    """The server's view of a room created from `o`'s spec (as the sandbox and plugNmeet echo it)."""
    desired = desired_pnm_room(o)
    metadata = create_request(desired.name, desired.spec)["metadata"]
    metadata = {**metadata, "room_features": {"allow_webcams": True, **metadata.get("room_features", {})},
                "started_at": "17", **overrides}
    return ObservedPnmRoom(desired.name, sid, joined, metadata)


def run(o: RoomObject, observed: ObservedPnmRoom | None, new_sid: str = "sess-new",
        results: tuple[ActionResult, ...] | None = None) -> tuple[RoomPlan, Outcome]:
    ops = KIND_OPS[KIND]
    desired = ops.desired(o)
    room_plan = ops.plan(desired, observed)
    done = results if results is not None else tuple(ActionResult(a, True, sid=new_sid) for a in room_plan.actions)
    return room_plan, conclude(o, desired, room_plan, observed, done, NOW)


def cond(outcome: Outcome, type_: str) -> dict[str, Any]:
    return next(c for c in outcome.status["conditions"] if c["type"] == type_)


def reasons(outcome: Outcome) -> list[str]:
    return [e.reason for e in outcome.events]


def test_the_operator_decides_through_the_clis_plan() -> None:
    """No second path: the kind's ops are the CLI's model and plan_pnm_room, for any input."""
    o = obj(spec(welcome="bonjour", recreate="IfEmpty"))
    before = obj(spec(recreate="IfEmpty"))
    desired = PLUGNMEET_OPS.desired(o)
    assert desired.manifest == desired_pnm_room(o).manifest
    for observed in (None, served(before), served(o), served(before, joined=3)):
        assert PLUGNMEET_OPS.plan(desired, observed) == plan_pnm_room(desired, observed)
    assert PLUGNMEET_OPS.observation == "getActiveRoomsInfo"


def test_create_sets_ready_synced_and_the_session_id() -> None:
    room_plan, outcome = run(obj(spec(), generation=4), None)
    assert [a.kind for a in room_plan.actions] == [ActionKind.CREATE_ROOM]
    assert room_plan.actions[0].request["room_id"] == "physics"
    assert room_plan.actions[0].request["empty_timeout"] == 1800
    assert cond(outcome, "Ready")["status"] == "True" and cond(outcome, "Ready")["observedGeneration"] == 4
    assert cond(outcome, "Synced")["reason"] == "InSync"
    assert outcome.status["roomName"] == "physics" and outcome.status["roomSid"] == "sess-new"
    assert reasons(outcome) == ["RoomCreated"] and outcome.failure is None


def test_spec_room_id_names_the_room() -> None:
    room_plan, outcome = run(obj(spec(roomId="Physics_101"), name="physics.101"), None)
    assert room_plan.actions[0].request["room_id"] == "Physics_101"
    assert outcome.status["roomName"] == "Physics_101"


def test_in_sync_room_needs_nothing_and_reports_participants() -> None:
    o = obj(spec())
    room_plan, outcome = run(o, served(o, joined=7))
    assert room_plan.actions == () and outcome.events == ()
    assert outcome.status["numParticipants"] == 7 and outcome.status["roomSid"] == "sess-1"
    assert cond(outcome, "Synced")["status"] == "True"


def test_changed_spec_recreates_under_if_empty_and_always() -> None:
    before = obj(spec(recreate="IfEmpty"))
    for recreate, joined in (("IfEmpty", 0), ("Always", 5)):
        room_plan, outcome = run(obj(spec(welcome="bonjour", recreate=recreate)), served(before, joined=joined))
        assert [a.kind for a in room_plan.actions] == [ActionKind.RECREATE_ROOM], recreate
        assert room_plan.actions[0].old_sid == "sess-1"
        assert reasons(outcome) == ["RoomRecreated"] and outcome.status["roomSid"] == "sess-new"
        assert outcome.status["numParticipants"] == 0


@pytest.mark.parametrize(("recreate", "joined", "reason", "synced"), [
    ("Never", 0, DriftReason.RECREATE_NEVER, "RequiresRecreate"),
    ("IfEmpty", 2, DriftReason.RECREATE_OCCUPIED, "RequiresRecreate"),
])
def test_changed_spec_that_may_not_recreate_is_drift(recreate: str, joined: int, reason: str, synced: str) -> None:
    before = obj(spec(recreate=recreate))
    room_plan, outcome = run(obj(spec(welcome="bonjour", recreate=recreate)), served(before, joined=joined))
    assert room_plan.actions == ()
    assert [(d["field"], d["reason"]) for d in outcome.status["drift"]] == [("metadata.welcomeMessage", reason)]
    assert cond(outcome, "Ready")["status"] == "True" and cond(outcome, "Synced")["reason"] == synced
    assert reasons(outcome) == ["RequiresRecreate"]


def test_changed_empty_timeout_is_seen_through_the_spec_hash() -> None:
    before = obj(spec(recreate="IfEmpty"))
    after = obj({**spec(recreate="IfEmpty"), "emptyTimeout": 3600})
    room_plan, outcome = run(after, served(before))
    assert [a.kind for a in room_plan.actions] == [ActionKind.RECREATE_ROOM]
    assert [c.field for c in room_plan.actions[0].changes] == ["emptyTimeout", "spec-hash"]
    # The object's event says what was asked, not only that a hash moved.
    assert any("emptyTimeout (not returned by plugNmeet) -> 3600" in e.message for e in outcome.events), \
        outcome.events
    # Under policy.recreate Never it is drift in the status, with the declared value.
    kept, never = run(obj({**spec(recreate="Never"), "emptyTimeout": 3600}), served(obj(spec(recreate="Never"))))
    assert kept.actions == ()
    assert next((d["field"], d["observed"], d["desired"]) for d in never.status["drift"]) == \
        ("emptyTimeout", "(not returned by plugNmeet)", "3600")


def test_server_refused_value_is_drift_and_never_a_loop() -> None:
    """plugNmeet v2.3+ ignores false for a default-true field: after the one re-create that asked for it,
    the server still serves true. That is server_refused drift; every later sweep plans nothing."""
    o = obj(spec(recreate="Always", features={"allowWebcams": False}))
    refused = served(o, room_features={"allow_webcams": True})  # created from this spec (same hash)
    status: dict[str, Any] = {}
    for sweep in range(3):
        room_plan, outcome = run(obj(o.spec, status=status), refused)
        assert room_plan.actions == (), sweep
        assert [(d["field"], d["reason"]) for d in outcome.status["drift"]] == [
            ("metadata.roomFeatures.allowWebcams", DriftReason.SERVER_REFUSED)]
        assert cond(outcome, "Synced")["reason"] == "Drift"
        assert reasons(outcome) == (["DriftDetected"] if sweep == 0 else [])  # the event fires once
        status = outcome.status


def test_observe_only_and_on_demand() -> None:
    watched, outcome = run(obj({**spec(), "policy": {"observeOnly": True}}), None)
    assert watched.actions == () and cond(outcome, "Ready")["reason"] == "RoomAbsent"
    assert cond(outcome, "Synced")["reason"] == "ObserveOnly"
    on_demand, outcome = run(obj({**spec(), "policy": {"lifecycle": "OnDemand"}}), None)
    assert on_demand.actions == () and cond(outcome, "Ready")["reason"] == "OnDemand"


def test_failed_create_is_ready_false_with_a_temporary_retry() -> None:
    o = obj(spec())
    room_plan = plan_pnm_room(desired_pnm_room(o), None)
    results = (ActionResult(room_plan.actions[0], False, error="plugNmeet create: HTTP 503",
                            cause=Unavailable("HTTP 503")),)
    _, outcome = run(o, None, results=results)
    assert cond(outcome, "Ready")["reason"] == "ServerUnavailable" and outcome.retry == "temporary"
    assert reasons(outcome) == ["SyncFailed"]


def test_deletion_ends_the_room_or_orphans_it() -> None:
    o = obj(spec())
    delete = decide_deletion(desired_pnm_room(o), served(o))
    assert delete.action is not None and delete.action.kind == ActionKind.DELETE_ROOM
    assert delete.action.room == "physics" and delete.event.reason == "RoomDeleted"
    orphan = obj({**spec(), "policy": {"deletion": "Orphan"}})
    kept = decide_deletion(desired_pnm_room(orphan), served(orphan))
    assert kept.action is None and kept.event.reason == "RoomOrphaned"
    gone = decide_deletion(desired_pnm_room(o), None)
    assert gone.action is None and "already gone" in gone.event.message


@pytest.mark.parametrize(("bad", "field"), [
    ({"metadata": {}}, "spec.metadata.roomTitle"),
    ({"metadata": {"roomTitle": "P"}, "roomId": "user_1"}, "spec.roomId"),
    ({"metadata": {"roomTitle": "P"}, "emptyTimeout": "60"}, "spec.emptyTimeout"),
    ({"metadata": {"roomTitle": "P", "roomFeatures": {"allowTeleport": True}}}, "allowTeleport"),
    ("a string, not a mapping", "spec"),
    (["a", "list"], "spec"),
])
def test_invalid_spec_names_the_field(bad: Any, field: str) -> None:
    with pytest.raises(InvalidSpec, match=field.replace(".", r"\.")):
        desired_pnm_room(obj(bad))


def test_name_with_a_dot_needs_a_room_id() -> None:
    with pytest.raises(InvalidSpec, match=r"metadata\.name"):
        desired_pnm_room(obj(spec(), name="physics.101"))


# ---- servers: one backend and one observation per server, credentials per kind -----------------


def test_server_keys_separate_kinds_and_secrets() -> None:
    ref = {"serverRef": {"secretName": "pnm-eu"}}
    assert server_key("school", {}, KIND) != server_key("school", {}, "Room")
    assert server_key("school", ref, KIND) == "plugnmeetroom:secret:school/pnm-eu"
    assert server_key("school", ref, KIND) != server_key("other", ref, KIND)
    assert server_key("school", "not a mapping", KIND) == server_key("school", {}, KIND)


class FakeKube:
    """Only get_secret: the operator's one Secret read, answered from a dict (404 when absent)."""

    def __init__(self, secrets: dict[tuple[str, str], dict[str, str]]) -> None:
        self.secrets = secrets
        self.reads: list[tuple[str, str]] = []

    async def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        from reconciler.operator.kube import KubeError

        self.reads.append((namespace, name))
        if (namespace, name) not in self.secrets:
            raise KubeError("not found", 404)
        return self.secrets[(namespace, name)]


async def test_server_ref_secret_resolution_for_plugnmeet_rooms() -> None:
    from reconciler.operator.decide import CredentialsError

    kube = FakeKube({("school", "pnm-eu"): {"url": "https://pnm.eu", "apiKey": "k", "apiSecret": "s3cr3t-value"},
                     ("school", "pnm-half"): {"url": "https://pnm.eu", "apiKey": "k"}})
    pool = ServerPool(None, lambda: kube,  # type: ignore[arg-type, return-value]
                      plugnmeet_default=Credentials("https://pnm.default", "dk", "ds"))
    try:
        assert (await pool.credentials(obj(spec()))).url == "https://pnm.default"
        creds = await pool.credentials(obj({**spec(), "serverRef": {"secretName": "pnm-eu"}}))
        assert (creds.url, creds.api_key, creds.api_secret) == ("https://pnm.eu", "k", "s3cr3t-value")
        assert "s3cr3t" not in repr(creds)  # the secret is never in a repr
        backend = pool.plugnmeet_backend(creds)
        assert pool.plugnmeet_backend(creds) is backend  # one backend per server
        with pytest.raises(CredentialsError, match="pnm-half lacks key\\(s\\) apiSecret"):
            await pool.credentials(obj({**spec(), "serverRef": {"secretName": "pnm-half"}}))
        with pytest.raises(CredentialsError, match="school/nope: it does not exist"):
            await pool.credentials(obj({**spec(), "serverRef": {"secretName": "nope"}}))
        # A Room's default is LiveKit's, a PlugNmeetRoom's is plugNmeet's: missing, each names its own.
        room = RoomObject("school", "lk", {}, kind="Room")
        with pytest.raises(CredentialsError, match="LIVEKIT_URL"):
            await pool.credentials(room)
        no_pnm = ServerPool(Credentials("https://lk", "k", "s"), lambda: None)
        with pytest.raises(CredentialsError, match=r"PLUGNMEET_URL.*plugnmeet\.\*"):
            await no_pnm.credentials(obj(spec()))
    finally:
        await pool.aclose()


def test_plugnmeet_credentials_from_the_environment() -> None:
    from reconciler.operator.servers import credentials_from_env

    env = {"PLUGNMEET_URL": "https://pnm", "PLUGNMEET_API_KEY": "k", "PLUGNMEET_API_SECRET": "s",
           "LIVEKIT_URL": "https://lk", "LIVEKIT_API_KEY": "lk", "LIVEKIT_API_SECRET": "ls"}
    assert credentials_from_env(env, KIND) == Credentials("https://pnm", "k", "s")
    assert credentials_from_env(env) == Credentials("https://lk", "lk", "ls")
    assert credentials_from_env({}, KIND) is None


# ---- issue 9 item 9: outages back off, malformed objects are a status ----------------------------


def test_backoff_doubles_to_a_cap_and_honours_retry_after() -> None:
    outage = failure_for(Unavailable("503"))
    assert outage.reason == "ServerUnavailable" and outage.retry == "temporary"
    delays = [backoff(outage, attempt, first=15, cap=600) for attempt in range(8)]
    assert delays == [15, 30, 60, 120, 240, 480, 600, 600]
    assert backoff(outage, 10_000) == 600  # no overflow for a long outage
    throttled = failure_for(RateLimited("429", retry_after=90))
    assert backoff(throttled, 0, first=15) == 90 and backoff(throttled, 3, first=15) == 120
    assert backoff(Failure("X", "", "temporary"), -1, first=2) == 2


@pytest.mark.parametrize("exc", [Unavailable("503"), BackendError("no answer from http://lk: ConnectError")])
def test_an_outage_is_ready_false_with_the_reason_and_no_action(exc: BackendError) -> None:
    o = obj(spec())
    outcome = failed(o, failure_for(exc), NOW, "physics")
    assert cond(outcome, "Ready") | {"lastTransitionTime": NOW} == {
        "type": "Ready", "status": "False", "observedGeneration": 1, "lastTransitionTime": NOW,
        "reason": "ServerUnavailable", "message": str(exc)}
    assert outcome.retry == "temporary"
    # What the status said before the outage (sid, participants, drift) is kept, only the conditions change.
    previous = run(o, served(o))[1].status
    kept = failed(obj(o.spec, status=previous), failure_for(exc), NOW, "physics").status
    assert kept["roomSid"] == "sess-1" and kept["conditions"][0]["reason"] == "ServerUnavailable"


@pytest.mark.parametrize("body", [
    {},
    {"kind": "Room", "metadata": None, "spec": None, "status": None},
    {"kind": "Room", "metadata": {"name": "x", "namespace": "n", "generation": "7"}, "spec": "garbage",
     "status": "also garbage"},
    {"kind": "PlugNmeetRoom", "metadata": {"name": "x", "generation": -3}, "spec": [1, 2], "status": [1]},
    {"kind": "PlugNmeetRoom", "metadata": ["not", "a", "mapping"], "spec": {"metadata": 5}},
])
def test_a_malformed_body_becomes_an_invalid_spec_status_never_an_exception(body: dict[str, Any]) -> None:
    o = RoomObject.from_body(body)
    assert o.generation >= 0 and isinstance(o.status, dict)
    with pytest.raises(InvalidSpec):
        KIND_OPS.get(o.kind, KIND_OPS["Room"]).desired(o)
    outcome = failed(o, failure_for(InvalidSpec("spec: bad")), NOW)
    assert cond(outcome, "Ready")["reason"] == "InvalidSpec" and outcome.retry == "permanent"


def test_a_room_object_is_still_decided_by_the_room_plan() -> None:
    room = RoomObject("events", "town-hall", {"emptyTimeout": 600})
    assert KIND_OPS["Room"].desired(room).manifest == desired_room(room).manifest


def test_a_repeated_failure_is_one_event_a_new_one_is_another() -> None:
    outage = failure_for(Unavailable("503"))
    first = failed(obj(spec()), outage, NOW)
    again = failed(obj(spec(), status=first.status), outage, "2026-11-21T10:01:00Z")
    assert reasons(first) == ["SyncFailed"] and reasons(again) == []
    assert cond(again, "Ready")["lastTransitionTime"] == NOW  # still the same failure since NOW
    other = failed(obj(spec(), status=first.status), failure_for(InvalidSpec("spec.x: bad")), NOW)
    assert reasons(other) == ["SyncFailed"]
    newer = failed(obj(spec(), status=first.status, generation=2), outage, NOW)
    assert reasons(newer) == ["SyncFailed"]  # the user changed the object: say it again


@pytest.mark.parametrize("status", [
    {"conditions": "garbage", "drift": "garbage"},
    {"conditions": [1, "x", None, {"type": "Ready"}], "drift": {"a": 1}},
    {"conditions": 7, "drift": 7, "lastSyncTime": 5},
])
def test_a_malformed_status_is_replaced_not_a_crash(status: dict[str, Any]) -> None:
    o = obj(spec(), status=status)
    outcome = failed(o, failure_for(Unavailable("503")), NOW)
    assert cond(outcome, "Ready")["reason"] == "ServerUnavailable" and outcome.status["drift"] == []
    _, concluded = run(o, served(o))
    assert cond(concluded, "Ready")["status"] == "True" and concluded.status["drift"] == []


def test_handlers_hand_kopf_the_backoff_and_never_retry_a_permanent_failure() -> None:
    import kopf

    from reconciler.operator.handlers import OperatorConfig, _raise_for

    config = OperatorConfig(retry_first=15, retry_cap=600)
    outage = failed(obj(spec()), failure_for(Unavailable("503")), NOW)
    delays = []
    for attempt in (0, 1, 2, 9):
        with pytest.raises(kopf.TemporaryError) as raised:
            _raise_for(outage, attempt, config)
        delays.append(raised.value.delay)
    assert delays == [15, 30, 60, 600]
    with pytest.raises(kopf.PermanentError):
        _raise_for(failed(obj(spec()), failure_for(InvalidSpec("spec: bad")), NOW), 0, config)
    _raise_for(run(obj(spec()), None)[1], 0, config)  # success: nothing raised


def test_suspended_plugnmeet_room_is_reported_and_nothing_is_done() -> None:
    before = obj(spec(recreate="Always"))
    room_plan, outcome = run(obj(spec(welcome="changed", recreate="Always", suspend=True)), served(before, joined=2))
    assert (room_plan.status, room_plan.actions) == ("suspended", ())  # no endRoom + create while suspended
    assert cond(outcome, "Synced")["reason"] == "Suspended" and outcome.events == ()
    kept = decide_deletion(KIND_OPS[KIND].desired(obj(spec(suspend=True))), served(before))
    assert kept.action is None and "spec.suspend" in kept.event.message


def test_drift_series_one_per_object_and_gone_with_it() -> None:
    from prometheus_client import generate_latest

    from reconciler.operator import metrics

    def series() -> list[str]:
        return sorted(line for line in generate_latest(metrics.REGISTRY).decode().splitlines()
                      if line.startswith("roomctl_drift{") and "metrics-test" in line)

    a = RoomObject("metrics-test", "a", {}, kind="Room")
    b = RoomObject("metrics-test", "b", {}, kind=KIND)
    metrics.record_drift(a, {"drift": [{"field": "x"}, {"field": "y"}]})
    metrics.record_drift(b, {"drift": []})
    metrics.record_drift(b, {"drift": [{"field": "z"}]})  # the same object again: still one series
    assert series() == ['roomctl_drift{kind="PlugNmeetRoom",name="b",namespace="metrics-test"} 1.0',
                        'roomctl_drift{kind="Room",name="a",namespace="metrics-test"} 2.0']
    metrics.forget_drift(a)  # the delete handler
    assert series() == ['roomctl_drift{kind="PlugNmeetRoom",name="b",namespace="metrics-test"} 1.0']
    metrics.forget_drift(a)  # twice is harmless
    metrics.retain_drift([])  # a sweep that no longer sees b (deleted while the operator was down)
    assert series() == []


async def test_a_room_and_a_plugnmeet_room_of_the_same_name_are_two_objects() -> None:
    """The Reconciler keeps locks, timestamps and the last status per kind too: a Room and a
    PlugNmeetRoom both named school/physics must not read each other's status."""
    from reconciler.observed import ObservedRoom
    from reconciler.operator.kinds import KindOps
    from reconciler.operator.reconciler import Reconciler

    room = RoomObject("school", "physics", {"maxParticipants": 50}, kind="Room")
    pnm = obj(spec())
    observed: dict[str, Any] = {"Room": ObservedRoom("physics", "RM_1", 300, 20, 10, "", 0), KIND: served(pnm)}

    class Pool:
        async def credentials(self, o: RoomObject) -> Credentials:
            return Credentials("http://unused", "k", "s")

    class Ops(KindOps[Any, Any, Any]):
        """The real kind's model and plan; the server's answer is canned."""

        def __init__(self, real: Any) -> None:
            self.real, self.kind = real, real.kind

        def desired(self, o: RoomObject) -> Any:
            return self.real.desired(o)

        def backend(self, pool: Any, creds: Credentials) -> Any:
            return self.kind

        async def observe(self, backend: Any, desired: Any) -> dict[str, Any]:
            return {"physics": observed[backend]}

        def plan(self, desired: Any, seen: Any) -> RoomPlan:
            return self.real.plan(desired, seen)

    reconciler = Reconciler(Pool(), now=lambda: NOW,  # type: ignore[arg-type]
                            kinds={k: Ops(v) for k, v in KIND_OPS.items()})
    first = await reconciler.reconcile(room)
    assert reasons(first) == ["RequiresRecreate"]  # maxParticipants 10 -> 50 under recreate Never
    assert reasons(await reconciler.reconcile(pnm)) == []  # in sync
    # The kopf index still holds the Room without the status just written: no second event.
    again = await reconciler.reconcile(room)
    assert reasons(again) == [] and again.status["drift"] == first.status["drift"]
    outcomes = dict((o.ident, out) for o, out in await reconciler.sweep([room, pnm]))
    assert reasons(outcomes["Room/school/physics"]) == [] and outcomes[f"{KIND}/school/physics"].status["drift"] == []
    for gone in (room, pnm):
        reconciler.forget(gone)  # leaves no metric series behind for other tests
