"""Hostile input (issue 9 item 4) beyond the committed corpus: inputs too big to commit, a memory
bound measured on a real process, and a hypothesis fuzz. Always: no traceback, one line per error
naming file:line:column (control characters escaped), exit 1."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.manifests import ManifestError, load_inputs

ROOT = Path(__file__).resolve().parents[2]
HEAD = "apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {name: r}\nspec:\n"
MAX_RSS_MB = 300

# Runs roomctl in-process and reports its own peak RSS (KiB) on stdout's last line: VmHWM, the peak of
# this process's memory since its exec. Not ru_maxrss: Linux carries that over from the parent when
# subprocess starts the child with vfork, so it read as the test runner's own peak (364 MB once, in a
# full run whose earlier tests had grown pytest), not roomctl's.
MEASURE = """
import resource, sys
from reconciler.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
try:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak)
sys.exit(code)
"""


def hostile_files(folder: Path) -> dict[str, str]:
    """name -> a piece of the one error it must give."""
    expected: dict[str, str] = {}

    def add(name: str, data: bytes, message: str) -> None:
        (folder / name).write_bytes(data)
        expected[name] = message

    with (folder / "50mb.yaml").open("wb") as handle:  # sparse: 50 MB as far as stat is concerned
        handle.truncate(50 * 1024 * 1024)
    expected["50mb.yaml"] = "file is 52428800 bytes; the limit is 10 MiB"
    add("deep-block.yaml", (HEAD + "  egress:\n    " + "- " * 10_000 + "x\n").encode(), "nested more than 64 levels deep")
    add("deep-flow.yaml", (HEAD + "  tags: " + "{a: " * 10_000 + "b" + "}" * 10_000 + "\n").encode(),
        "nested more than 64 levels deep")
    big = "x" * (1024 * 1024)
    add("alias-tags.yaml", (HEAD + f"  metadata: &m '{big}'\n  tags: {{" +
                            ", ".join(f"k{i}: *m" for i in range(40)) + "}\n").encode(),
        "the file expands to more than 16 MiB of data")
    add("huge-tags.yaml", (HEAD + "  tags:\n    a: &t '" + "t" * 1_000_000 + "'\n" +
                           "".join(f"    k{i}: *t\n" for i in range(10))).encode(),
        "spec.tags: the room's CreateRoom request would be about 11000")
    add("huge-egress.yaml", (HEAD + "  egress:\n    room: {layout: '" + "e" * 10_500_000 + "'}\n").encode(),
        "the limit is 10 MiB")
    add("many-values.yaml", (HEAD + "  egress: &e [" + ",".join(["''"] * 2000) + "]\n  x: [" +
                             ",".join(["*e"] * 5000) + "]\n").encode(), "the file expands to more than 16 MiB")
    add("nul.yaml", HEAD.encode() + b"  name: a\x00b\n", "control characters are not allowed")
    add("bidi-key.yaml", (HEAD + '  "name\\u2028error: forged": 1\n').encode(), "\\u2028error: forged")
    return expected


def test_hostile_files_one_line_each_and_bounded_memory() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        expected = hostile_files(folder)
        result = subprocess.run([sys.executable, "-c", MEASURE, "validate", str(folder)], capture_output=True,
                                text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1] == f"{len(expected)} error(s); nothing was sent to the server.", result.stderr[-2000:]
    for name, message in expected.items():
        mine = [x for x in lines if x.startswith(f"error: {folder / name}")]
        assert len(mine) == 1 and message in mine[0], (name, mine)
    peak_mb = int(result.stdout.splitlines()[-1]) / 1024
    assert peak_mb < MAX_RSS_MB, f"peak RSS {peak_mb:.0f} MB"


# ---- fuzz ------------------------------------------------------------------------------------------

KEYS = ["apiVersion", "kind", "metadata", "name", "spec", "emptyTimeout", "empty_timeout", "maxParticipants",
        "egress", "room", "fileOutputs", "tags", "agents", "agentName", "participants", "identity", "permission",
        "canPublish", "policy", "recreate", "roomId", "roomTitle", "rooms", "<<", "? ", "a\nb", "\x1b[31m",
        '"spec\\nerror: forged"', "'\u2029'", '"\\r\\x1b"']
SCALARS = ["roomctl.dev/v1alpha1", "Room", "PlugNmeetRoom", "RoomPolicy", "v1", "1:30", "0777", ".nan", "-.inf",
           "1e3", "~", "null", "yes", "''", '""', "'\\n'", '"\\x00"', '"a\\nerror: x"', "!!python/object:os.system x",
           "!!binary aGk=", "&a x", "*a", "*b", "[", "]", "{", "}", "- x", "2001-01-01", "0x1F", "-1", "4294967296",
           "|\n  block", ">-\n  folded", "\t", "\u2028", "\ufeff", "\\"]
FRAGMENTS = st.one_of(
    st.sampled_from(["---\n", "...\n", "\n", "  ", "    ", "- ", ": ", ", ", "# c\n", "%YAML 1.1\n", "&a ", "*a "]),
    st.sampled_from(KEYS).map(lambda k: k + ": "),
    st.sampled_from(SCALARS).map(lambda s: s + "\n"),
    st.text(max_size=8),
)
EXAMPLES = sorted(p.read_bytes() for p in (ROOT / "examples").rglob("*.yaml"))


@st.composite
def mutated_example(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.one_of(st.binary(max_size=4), FRAGMENTS.map(lambda s: s.encode("utf-8", "surrogatepass"))))
        if op == "insert":
            data[at:at] = chunk
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 20))]
        else:
            data[at:at + len(chunk)] = chunk
    return bytes(data)


NAMES = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(NAMES, inner, max_size=4)),
    max_leaves=20,
)


@st.composite
def structured(draw: st.DrawFn) -> bytes:
    """A parseable document shaped like a manifest, with hostile keys and values (dumped by PyYAML,
    which escapes control characters in double quotes)."""
    doc: dict[str, object] = draw(st.dictionaries(NAMES, VALUES, max_size=3))
    if draw(st.booleans()):
        doc.update({"apiVersion": "roomctl.dev/v1alpha1", "kind": draw(st.sampled_from(["Room", "PlugNmeetRoom",
                                                                                      "RoomPolicy"])),
                    "metadata": {"name": draw(st.text(min_size=1, max_size=10))},
                    "spec": draw(st.dictionaries(NAMES, VALUES, max_size=5))})
    text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()))
    return (draw(st.sampled_from(["", "---\n"])) + text).encode("utf-8", "surrogatepass")


INPUTS = st.one_of(
    st.binary(max_size=300),
    structured(),
    st.lists(FRAGMENTS, max_size=40).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass")),
    mutated_example(),
)
ISSUE = re.compile(r"^(?P<file>.+?\.yaml)(:(?P<line>\d+):(?P<column>\d+))?: \S")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=INPUTS)
def test_fuzz_never_a_traceback_and_every_error_one_located_line(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_bytes(data)
        try:
            load_inputs([str(path)])
        except ManifestError as exc:
            assert exc.issues
            lines = len(data.decode("utf-8", "replace").splitlines()) + 2  # YAML breaks lines at \r, \u2028 too
            for issue in exc.issues:
                text = str(issue)
                assert "\n" not in text and "\r" not in text and "\u2028" not in text, text
                match = ISSUE.match(text)
                assert match and match["file"] == str(path), text
                assert match["line"] is not None, f"a problem inside a file has a position: {text}"
                assert 1 <= int(match["line"]) <= lines and int(match["column"]) >= 1, text
