"""The editor schema (issue 13 item 5): the committed roomctl.schema.json is what `roomctl schema`
prints, it is a valid JSON Schema, every example document validates against it, and it refuses
what `roomctl validate` refuses for its shape."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from reconciler.cli.main import main
from reconciler.cli.schema import schema_text
from reconciler.manifests import load_inputs
from reconciler.yamlsafe import load_documents

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "roomctl.schema.json"
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))
BAD = ROOT / "tests" / "manifests" / "bad"


@functools.cache
def validator() -> Draft202012Validator:
    schema = json.loads(COMMITTED.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_committed_schema_is_the_generated_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert COMMITTED.read_text() == schema_text(), "regenerate: roomctl schema > roomctl.schema.json"
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == COMMITTED.read_text()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_validates_against_the_schema(path: Path) -> None:
    load_inputs([str(path)])  # roomctl accepts it ...
    documents = load_documents(path.read_text())
    assert documents
    for doc in documents:  # ... and so does an editor
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(doc.data)]
        assert not errors, errors


def test_schema_covers_every_kind_and_the_modeline_resolves() -> None:
    kinds = {doc.data.get("kind", "RoomConfiguration") for p in EXAMPLES for doc in load_documents(p.read_text())}
    assert kinds == {"Room", "PlugNmeetRoom", "RoomPolicy", "RoomConfiguration"}
    for path in EXAMPLES:
        first = path.read_text().splitlines()[0]
        if first.startswith("# yaml-language-server: $schema="):
            assert (path.parent / first.split("=", 1)[1]).resolve() == COMMITTED


def test_foreign_documents_pass_the_schema_as_roomctl_skips_them() -> None:
    assert not list(validator().iter_errors({"apiVersion": "v1", "kind": "Secret", "stringData": {"a": "b"}}))


@pytest.mark.parametrize("name", [
    "01-unknown-key.yaml", "08-unknown-kind.yaml", "09-unknown-version.yaml", "03-string-timeout.yaml",
    "02-negative-timeout.yaml", "23-both-spellings.yaml", "25-bare-unknown.yaml", "24-bare-missing-name.yaml",
    "27-missing-metadata.yaml", "52-missing-apiversion.yaml", "41-pnm-no-title.yaml", "44-pnm-unknown-feature.yaml",
    "17-bad-policy.yaml", "14-unknown-permission.yaml",
])
def test_schema_refuses_what_validate_refuses_for_its_shape(name: str) -> None:
    docs = load_documents((BAD / name).read_text())
    assert any(list(validator().iter_errors(doc.data)) for doc in docs)
