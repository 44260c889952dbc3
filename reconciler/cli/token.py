"""`roomctl token ROOM IDENTITY -f PATH`: a join token carrying the first matching rule's
permission (the Room's rules, then matching RoomPolicies', as the plan decides) and the room's
RoomConfiguration, so a join that creates the room creates it as declared."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import typing
from dataclasses import replace
from typing import Any

from ..auth import TokenSource
from ..backends.errors import BackendError
from ..manifests import ManifestError, load_inputs
from ..model import ParticipantRule
from ..model.room import ParticipantKindName
from ..plan.policy import plan_join
from .common import (
    UsageError,
    add_server_options,
    open_backends,
    print_error,
    referenced_servers,
    report_manifest_error,
    resolve_servers,
    server_settings,
)

# ParticipantPermission field -> VideoGrant claim (livekit-api.md §2.1).
GRANT_NAMES = {
    "can_subscribe": "canSubscribe",
    "can_publish": "canPublish",
    "can_publish_data": "canPublishData",
    "hidden": "hidden",
    "recorder": "recorder",
    "can_update_metadata": "canUpdateOwnMetadata",
    "agent": "agent",
    "can_subscribe_metrics": "canSubscribeMetrics",
    "can_manage_agent_session": "canManageAgentSession",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("token", help="mint a join token from a room's rules and config", parents=[common])
    parser.add_argument("room")
    parser.add_argument("identity")
    parser.add_argument("-f", "--filename", dest="paths", action="append", required=True, metavar="PATH",
                        help="manifest file or folder declaring the room (repeatable; - reads stdin)")
    parser.add_argument("--ttl", help="lifetime: 90s, 30m, 6h (default 1h, at most 24h); LiveKit rooms only: "
                                          "plugNmeet decides its own tokens' validity")
    parser.add_argument("--allow-long-ttl", action="store_true",
                        help="allow a --ttl over 24h (up to 365d): a leaked long-lived token stays valid")
    parser.add_argument("--kind", default="STANDARD", type=participant_kind, choices=KINDS, metavar="KIND",
                        help=f"participant kind the rules match: {', '.join(KINDS)} (default STANDARD)")
    parser.add_argument("--name", help="plugNmeet: the user's display name (default: the identity)")
    parser.add_argument("--admin", action="store_true", help="plugNmeet: join as a moderator")
    add_server_options(parser)
    parser.set_defaults(run=run)


KINDS: tuple[str, ...] = typing.get_args(ParticipantKindName)
MAX_TTL = 24 * 3600
MAX_LONG_TTL = 365 * 86400
MAX_IDENTITY_BYTES = 256  # the server's limit.max_participant_identity_length


def participant_kind(text: str) -> str:
    """One of LiveKit's participant kinds (livekit_models.proto ParticipantInfo.Kind), any case."""
    kind = text.strip().upper()
    if kind not in KINDS:
        raise argparse.ArgumentTypeError(f"unknown participant kind {text!r} (known: {', '.join(KINDS)})")
    return kind


def parse_ttl(text: str, allow_long: bool = False) -> int:
    match = re.fullmatch(r"(\d{1,9})([smhd]?)", text.strip())
    if not match or int(match.group(1)) <= 0:
        raise UsageError(f"--ttl {text!r}: use a number with s, m, h or d (e.g. 1h)")
    ttl = int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    limit = MAX_LONG_TTL if allow_long else MAX_TTL
    if ttl > limit:
        hint = "" if allow_long else "; pass --allow-long-ttl for up to 365d"
        raise UsageError(f"--ttl {text!r} is longer than {'365d' if allow_long else '24h'}{hint}")
    return ttl


def check_identity(identity: str) -> str:
    if not identity.strip():
        raise UsageError("the identity must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in identity):
        raise UsageError("the identity must not contain control characters")
    if len(identity.encode()) > MAX_IDENTITY_BYTES:
        raise UsageError(f"the identity is {len(identity.encode())} bytes; the server's limit is {MAX_IDENTITY_BYTES}")
    return identity


def video_grant(room: str, rule: ParticipantRule | None) -> dict[str, Any]:
    video: dict[str, Any] = {"roomJoin": True, "room": room}
    if rule is not None and rule.permission is not None:
        for key, value in rule.permission.declared().items():
            if key == "can_publish_sources":
                video["canPublishSources"] = [s.lower() for s in value]
            else:
                video[GRANT_NAMES[key]] = value
    return video


def run(args: argparse.Namespace) -> int:
    try:
        ttl = parse_ttl(args.ttl or "1h", args.allow_long_ttl)
        check_identity(args.identity)
        inputs = load_inputs(args.paths)
        rooms = inputs.livekit
        settings = server_settings(args)
    except ManifestError as exc:
        return report_manifest_error(exc)
    except UsageError as exc:
        print_error(exc)
        return 1
    pnm_room = next((r for r in inputs.plugnmeet if r.name == args.room), None)
    if pnm_room is not None:
        if args.ttl is not None or args.allow_long_ttl:
            print_error(f"--ttl: {pnm_room.source}: {args.room!r} is a PlugNmeetRoom, whose join tokens plugNmeet "
                        "signs with a validity of its own (getJoinToken takes none); drop --ttl")
            return 1
        return _plugnmeet_token(args, pnm_room.name)
    desired = next((r for r in rooms if r.name == args.room), None)
    kind = args.kind.upper()
    join = plan_join(desired, inputs.policies, args.room, args.identity, kind)
    if join is None:
        print_error(f"room {args.room!r} is not declared in {', '.join(args.paths)} and no RoomPolicy "
                    "there matches it")
        return 1
    rule = join.rule.rule if join.rule is not None else None
    if join.rule is not None and join.rule.rule.remove:
        print_error(f"identity {args.identity!r} matches a rule with remove: true ({join.rule.source})")
        return 1
    extra: dict[str, Any] = {"roomConfig": join.room_config}
    if kind != "STANDARD":
        extra["kind"] = kind.lower()
    if rule is not None:
        if rule.name:
            extra["name"] = rule.name
        if rule.metadata:
            extra["metadata"] = rule.metadata
        attributes = {k: v for k, v in (rule.attributes or {}).items() if v}
        if attributes:
            extra["attributes"] = attributes
    key, secret = settings.api_key, settings.api_secret
    if desired is not None and desired.spec.server_ref is not None:
        # The room lives on another server: sign with that server's key, never the default one's.
        try:
            named = resolve_servers(args, referenced_servers(replace(inputs, livekit=[desired], plugnmeet=[])))
        except UsageError as exc:
            print_error(exc)
            return 1
        key, secret = named[0].api_key, named[0].api_secret
    elif settings.url is None and not args.quiet:
        print("roomctl: no LIVEKIT_URL set; token signed with the embedded sandbox's dev key", file=sys.stderr)
    token = TokenSource(key, secret).join_token(
        args.identity, video_grant(args.room, rule), ttl, extra
    )
    print(token)
    return 0


def _plugnmeet_token(args: argparse.Namespace, room_id: str) -> int:
    """plugNmeet signs its own tokens: ask the server (getJoinToken). Not side-effect free."""
    if not re.fullmatch(r"[a-zA-Z0-9-_]+", args.identity):
        print_error(f"plugNmeet user ids must match ^[a-zA-Z0-9-_]+$: {args.identity!r}")
        return 1
    if not args.quiet:
        print(f"roomctl: warning: plugNmeet disconnects a user already online as {args.identity!r} "
              "when this token is issued", file=sys.stderr)
    user = {"name": args.name or args.identity, "user_id": args.identity, "is_admin": args.admin}

    async def fetch() -> str:
        async with open_backends(args, plugnmeet=True) as backends:
            assert backends.plugnmeet is not None
            return await backends.plugnmeet.join_token(room_id, user)

    try:
        token = asyncio.run(fetch())
    except (UsageError, BackendError) as exc:
        print_error(exc)
        return 1
    print(token)
    return 0
