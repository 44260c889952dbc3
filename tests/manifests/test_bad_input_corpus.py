"""Every file of the bad-input corpus fails `roomctl diff` with its exact file:line, exit 1, and no
request reaching the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.support.server import SandboxServer

BAD = Path(__file__).parent / "bad"

# file -> (line, a piece of the message)
EXPECTED: dict[str, tuple[int, str]] = {
    "01-unknown-key.yaml": (5, "spec.emptyTimout: unknown field (did you mean 'emptyTimeout'?)"),
    "02-negative-timeout.yaml": (5, "spec.departureTimeout: Input should be greater than or equal to 1"),
    "03-string-timeout.yaml": (5, "spec.emptyTimeout: Input should be a valid integer"),
    "04-float-timeout.yaml": (5, "spec.emptyTimeout: Input should be a valid integer"),
    "05-zero-empty-timeout.yaml": (5, "spec.emptyTimeout"),
    "06-playout-order.yaml": (4, "minPlayoutDelay (500) is greater than maxPlayoutDelay (100)"),
    "07-duplicate-key.yaml": (6, "duplicate key 'metadata'"),
    "08-unknown-kind.yaml": (2, "unknown kind 'Rooom' (did you mean 'Room'?)"),
    "09-unknown-version.yaml": (1, "unknown apiVersion 'roomctl.dev/v2'"),
    "10-python-tag.yaml": (5, "unsupported YAML tag"),
    "11-bad-yaml.yaml": (5, "invalid YAML: flow sequence opened here is not closed"),
    "12-long-name.yaml": (5, "room name is 257 bytes"),
    "13-bad-permission-type.yaml": (7, "spec.participants[0].permission.canPublish"),
    "14-unknown-permission.yaml": (7, "did you mean 'canPublish'?"),
    "15-bad-source.yaml": (6, "spec.participants[0].permission.canPublishSources[0]"),
    "16-bad-kind.yaml": (6, "spec.participants[0].kinds[0]"),
    "17-bad-policy.yaml": (5, "spec.policy.recreate"),
    "18-bad-lifecycle.yaml": (6, "spec.policy.lifecycle"),
    "19-bad-ignore.yaml": (6, "spec.policy.ignore[0]"),
    "20-agent-no-name.yaml": (6, "spec.agents[0].agentName: required field is missing"),
    "21-agent-deployment.yaml": (7, "spec.agents[0].deployment"),
    "22-remove-with-permission.yaml": (6, "remove: true cannot also set"),
    "23-both-spellings.yaml": (4, "'emptyTimeout' and 'empty_timeout' are the same field"),
    "24-bare-missing-name.yaml": (1, "name: required field is missing"),
    "25-bare-unknown.yaml": (2, "max_participant: unknown field (did you mean 'maxParticipants'?)"),
    "26-not-a-mapping.yaml": (1, "a manifest must be a mapping"),
    "27-missing-metadata.yaml": (1, "metadata: required field is missing"),
    "28-huge-timeout.yaml": (5, "less than or equal to 4294967295"),
    "29-tags-not-strings.yaml": (6, "spec.tags.team"),
    "30-bad-policy-observe.yaml": (6, "spec.policy.observeOnly"),
    "31-attributes-not-map.yaml": (6, "spec.participants[0].attributes"),
    "32-unknown-top-level.yaml": (4, "specs: unknown field (did you mean 'spec'?)"),
    "33-metadata-labels-typo.yaml": (3, "metadata.lables: unknown field (did you mean 'labels'?)"),
    "34-not-utf8.yaml": (3, "file is not UTF-8"),
    "35-alias-bomb.yaml": (7, "the file expands to more than 16 MiB of data"),
    "36-metadata-too-big.yaml": (5, "metadata is 524289 bytes"),
    "dup": (5, "room 'same' is already declared at "),
    "38-metadata-number.yaml": (5, "spec.metadata: Input should be a valid string"),
    "39-duplicate-agent-names.yaml": (5, "spec.agents: agent names must be unique; repeated: bot"),
    "40-pnm-room-id.yaml": (5, "spec.roomId: room id 'bad id!' must match ^[a-zA-Z0-9-_]+$"),
    "41-pnm-no-title.yaml": (5, "spec.metadata.roomTitle: required field is missing"),
    "42-pnm-bad-uri.yaml": (7, "spec.metadata.logoutUrl: 'not a url' is not a URI"),
    "43-pnm-reserved-name.yaml": (1, "metadata.name (the room id, as spec.roomId is not set): room id 'user_lobby' is reserved"),
    "44-pnm-unknown-feature.yaml": (7, "spec.metadata.roomFeatures.allowWebcam: unknown field (did you mean 'allowWebcams'?)"),
    # Hostile input (issue 9 item 4): each one line with file:line:column, never a traceback.
    "45-utf16.yaml": (1, "file is UTF-16 (byte-order mark); save it as UTF-8"),
    "46-binary.yaml": (1, "file is not UTF-8 (invalid byte 0xa5)"),
    "47-nan.yaml": (5, "'.nan' is not a finite number"),
    "48-inf.yaml": (5, "'-.inf' is not a finite number"),
    "49-sexagesimal.yaml": (5, "ambiguous number '1:30': YAML 1.1 reads it as 90"),
    "50-control-in-key.yaml": (5, 'spec["maxParticipants\\nerror: forged.yaml:1:1: x"]: unknown field'),
    "51-long-metadata-name.yaml": (4, "metadata.name: name (the room name unless the spec sets one) is 300 bytes"),
    "52-missing-apiversion.yaml": (1, "apiVersion: required field is missing"),
    "53-egress-unknown-key.yaml": (8, "spec.egress.room.fileOutput: unknown field (did you mean 'fileOutputs'?)"),
    "54-egress-oneof.yaml": (8, "'preset' and 'advanced' are alternatives"),
    "55-deep-nesting.yaml": (5, "nesting depth"),
    "56-merge-key.yaml": (6, "merge keys (<<) are not supported"),
    "57-alias-bytes-bomb.yaml": (5, "the file expands to more than 16 MiB of data"),
    "58-control-in-name.yaml": (5, "spec.name: room name must not contain control characters"),
    "59-unclosed-flow.yaml": (6, "flow sequence opened here is not closed"),
    "60-octal.yaml": (5, "ambiguous number '0100'"),
    "61-egress-bad-enum.yaml": (8, "spec.egress.room.fileOutputs[0].fileType: must be one of DEFAULT_FILETYPE, MP4"),
    "62-utf32.yaml": (1, "file is UTF-32"),
    "63-scalar-document.yaml": (2, "a manifest must be a mapping, not a string"),
    # YAML 1.1 booleans: a YAML 1.2 tool (kubectl, Helm, Flux) reads them as strings.
    "64-yaml11-bool-yes.yaml": (5, "5:16: ambiguous boolean 'yes': YAML 1.1 reads it as true, YAML 1.2"),
    "65-yaml11-bool-no.yaml": (6, "6:13: ambiguous boolean 'No': YAML 1.1 reads it as false"),
    "66-yaml11-bool-key.yaml": (6, "6:5: ambiguous boolean 'On'"),
    "67-tab-indent.yaml": (5, "5:1: invalid YAML: a tab is used for indentation; tabs are not allowed for "
                              "indentation in YAML"),
    "68-bare-hint.yaml": (2, "emptyTimout: unknown field (did you mean 'emptyTimeout'?) (no apiVersion/kind: "
                             "read as a bare LiveKit RoomConfiguration)"),
    "69-line-order.yaml": (6, "spec.tags.a: Input should be a valid string"),
}


def test_corpus_is_complete() -> None:
    assert {p.name for p in BAD.iterdir()} == set(EXPECTED)
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_names_file_and_line_and_sends_nothing(
    name: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIVEKIT_URL", sandbox.url)
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")
    path = BAD / name
    line, message = EXPECTED[name]
    code = main(["diff", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    shown = str(path / "b.yaml") if path.is_dir() else str(path)
    error_lines = [x for x in err.splitlines() if x.startswith("error: ")]
    assert any(x.startswith(f"error: {shown}:{line}:") and message in x for x in error_lines), err
    # One line per error: a key or name holding a newline cannot forge another `error:` line.
    assert err.splitlines()[-1] == f"{len(error_lines)} error(s); nothing was sent to the server.", err
    assert "Traceback" not in err
    assert sandbox.counts() == {}, "no request may reach the server"
