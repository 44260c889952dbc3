"""The LiveKit server's token check (livekit-api.md §1.6, §2): HS256, key map, exp, 60 s leeway."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import jwt

# `livekit-server --dev` uses the 6-byte secret "secret"; the sandbox must accept it quietly.
warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)

LEEWAY_SECONDS = 60


class MiddlewareAuthError(Exception):
    """A failure of the HTTP auth middleware: the server answers 401 with a text/plain body."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class Claims:
    identity: str
    raw: dict[str, Any]

    @property
    def video(self) -> dict[str, Any]:
        video = self.raw.get("video")
        return video if isinstance(video, dict) else {}


def extract_token(authorization: str | None, access_token: str | None) -> str | None:
    """The bearer token, None when there is none at all (the request then has no grants)."""
    if authorization:
        if not authorization.startswith("Bearer "):
            raise MiddlewareAuthError("invalid authorization header. Must start with Bearer ")
        return authorization[len("Bearer ") :]
    return access_token or None


def _jwt_error_text(exc: jwt.PyJWTError) -> str:
    # golang-jwt v5 wording, as the current server reports it; clients must not match on it.
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token has invalid claims: token is expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token has invalid claims: token is not valid yet"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token has invalid claims: token is missing required claim: {exc.claim} claim is required"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "token signature is invalid: signature is invalid"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "token is unverifiable: signing method is invalid"
    return "token is malformed"


_VERIFIED: dict[tuple[str, str], Claims] = {}


def verify(token: str, keys: dict[str, str], now: float) -> Claims:
    """Check a token as the server does. A token seen before under the same key is not parsed
    again, only its times are re-checked: clients reuse tokens, and HS256 parsing dominates."""
    issuer_guess = _VERIFIED_ISSUER.get(token)
    if issuer_guess is not None and issuer_guess in keys:
        cached = _VERIFIED.get((token, keys[issuer_guess]))
        if cached is not None:
            _check_times(cached.raw, now)
            return cached
    claims = _verify_fully(token, keys, now)
    if len(_VERIFIED) > 4096:
        _VERIFIED.clear()
        _VERIFIED_ISSUER.clear()
    issuer = str(claims.raw["iss"])
    _VERIFIED[(token, keys[issuer])] = claims
    _VERIFIED_ISSUER[token] = issuer
    return claims


_VERIFIED_ISSUER: dict[str, str] = {}


def _check_times(claims: dict[str, Any], now: float) -> None:
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or now > exp + LEEWAY_SECONDS:
        raise MiddlewareAuthError("invalid authorization token: token has invalid claims: token is expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and now < nbf - LEEWAY_SECONDS:
        raise MiddlewareAuthError("invalid authorization token: token has invalid claims: token is not valid yet")


def _verify_fully(token: str, keys: dict[str, str], now: float) -> Claims:
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise MiddlewareAuthError("invalid authorization token") from exc
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or issuer not in keys:
        raise MiddlewareAuthError("invalid API key")
    if header.get("alg") != "HS256":
        raise MiddlewareAuthError(
            "invalid authorization token: token is unverifiable: signing method is invalid"
        )
    try:
        claims = _decode_at(token, keys[issuer], now)
    except jwt.PyJWTError as exc:
        raise MiddlewareAuthError(f"invalid authorization token: {_jwt_error_text(exc)}") from exc
    identity = claims.get("sub") or claims.get("jti") or ""
    return Claims(identity=str(identity), raw=claims)


def _decode_at(token: str, secret: str, now: float) -> dict[str, Any]:
    """Verify at `now`: the caller passes real time. The sandbox's fake clock moves room timeouts
    only; token validity stays on real time, as a client's tokens do (issue 13 item 7)."""
    claims: dict[str, Any] = jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        options={"require": ["exp"], "verify_exp": False, "verify_nbf": False},
    )
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or now > exp + LEEWAY_SECONDS:
        raise jwt.ExpiredSignatureError("expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and now < nbf - LEEWAY_SECONDS:
        raise jwt.ImmatureSignatureError("not yet valid")
    return claims
