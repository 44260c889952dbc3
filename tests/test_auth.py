"""API and join tokens: the HS256 signer in auth.py gives exactly PyJWT's tokens, which PyJWT (and so
the server) verifies; a run's import of it does not load PyJWT."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import jwt
import pytest

from reconciler.auth import TokenSource, _sign, short_keys_allowed

CLAIMS: list[dict[str, Any]] = [
    {"iss": "devkey", "sub": "", "nbf": 1700000000, "exp": 1700000600, "video": {"roomCreate": True}},
    {"iss": "APIkey", "sub": "alice", "nbf": 1, "exp": 2, "video": {"roomAdmin": True, "room": "r\u00e9union \u2603 \"q\""},
     "name": "Al\u00efce", "metadata": '{"a":1}', "attributes": {"role": "staff"}, "sha256": "x/y+z="},
    {"iss": "k", "sub": "", "nbf": 0, "exp": 10**10, "video": {"canPublishSources": ["camera", "microphone"],
                                                              "canPublish": False, "hidden": None}},
]


@pytest.mark.parametrize("claims", CLAIMS)
@pytest.mark.parametrize("secret", ["secret", "a-much-longer-secret-of-32-bytes-or-more!", "s\u00e9cr\u00e8t"])
def test_tokens_are_pyjwts_byte_for_byte(claims: dict[str, Any], secret: str) -> None:
    with short_keys_allowed():
        expected = jwt.encode(claims, secret, algorithm="HS256")
        decoded = jwt.decode(expected, secret, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    assert _sign(claims, secret) == expected
    assert decoded == claims


def test_api_tokens_verify_with_the_secret_only() -> None:
    token = TokenSource("devkey", "a-much-longer-secret-of-32-bytes-or-more!").for_call("UpdateParticipant", "r1")
    claims = jwt.decode(token, "a-much-longer-secret-of-32-bytes-or-more!", algorithms=["HS256"])
    assert claims["iss"] == "devkey" and claims["video"] == {"roomAdmin": True, "room": "r1"}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-of-32-bytes-or-more-too!!", algorithms=["HS256"])


def test_importing_the_token_source_does_not_load_pyjwt() -> None:
    probe = "import sys, reconciler.auth; reconciler.auth.TokenSource('k', 's').for_call('ListRooms'); " \
            "print('jwt' in sys.modules, 'cryptography' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
