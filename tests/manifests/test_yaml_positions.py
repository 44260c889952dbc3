"""Positions are worked out only when asked for (yamlsafe.YamlDocument): a parse without them must
give the same documents and the same errors as a parse that keeps them, on every input."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from reconciler import yamlsafe
from reconciler.yamlsafe import YamlError, load_documents
from tests.safety.test_hostile_input import INPUTS, hostile_files

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted([*(ROOT / "examples").rglob("*.yaml"), *(ROOT / "tests" / "manifests" / "bad").glob("*.yaml")])


def outcome(text: str, track: bool) -> object:
    try:
        return [(data, root) for data, root, _ in yamlsafe._parse(text, track)]
    except YamlError as exc:
        return ("error", exc.line, exc.column, exc.message)


def same_both_ways(raw: bytes) -> None:
    try:
        text = raw.decode("utf-8")  # what load_inputs hands the parser; other bytes never reach it
    except UnicodeDecodeError:
        return
    assert outcome(text, track=False) == outcome(text, track=True)


def test_corpus_and_hostile_files_parse_alike_with_and_without_positions() -> None:
    for path in CORPUS:
        same_both_ways(path.read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        for name in hostile_files(Path(tmp)):
            raw = (Path(tmp) / name).read_bytes()
            if len(raw) <= 11 * 1024 * 1024 and raw.strip(b"\0"):
                same_both_ways(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=INPUTS)
def test_fuzz_parse_alike_with_and_without_positions(data: bytes) -> None:
    same_both_ways(data)


def test_positions_are_lazy_and_right(monkeypatch: pytest.MonkeyPatch) -> None:
    text = ("# two rooms\n---\napiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {name: a}\n"
            "spec:\n  maxParticipants: 5\n  participants:\n    - identity: 'guest-*'\n      canPublish: false\n"
            "---\n---\nkind: Room\nmetadata:\n  name: b\n")
    first, second = load_documents(text)
    parses: list[bool] = []
    real_parse = yamlsafe._parse

    def counted(text: str, track: bool) -> list[tuple[object, tuple[int, int], dict[yamlsafe.Path, tuple[int, int]]]]:
        parses.append(track)
        return real_parse(text, track)

    monkeypatch.setattr(yamlsafe, "_parse", counted)
    assert first._positions is None and second._positions is None  # nothing asked yet
    assert first.line == 3 and first.root == (3, 1) and second.line == 13
    assert first.position(()) == (3, 1) and first._positions is None  # the root needs no second parse
    assert first.position(("spec", "maxParticipants")) == (7, 3)
    assert first.position(("spec", "participants", 0, "canPublish")) == (10, 7)
    assert first.position(("spec", "nosuchfield")) == (6, 1)  # the nearest parent
    assert second.position(("metadata", "name")) == (15, 3)
    assert parses == [True]  # one second parse, with positions, located every document of the file
    assert first.positions == yamlsafe._parse(text, track=True)[0][2]
