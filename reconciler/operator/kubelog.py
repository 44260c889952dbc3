"""kopf's lines about an API server it cannot reach, made readable. kopf retries each request
(`Request attempt #2/9 failed; will retry: GET https://... -> ClientConnectorError(ConnectionKey(
host=..., proxy_headers_hash=None, ...), ConnectionRefusedError(111, ...))`), about 300 characters
a line, forever: a controller should keep retrying, but the first failure deserves one clear
roomctl line and the retries short ones. A filter on the log handlers; nothing in kopf changes."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("roomctl.operator")

# kopf/_cogs/clients/api.py: f"Request attempt {idx} failed; <what happens>: {method} {url}[ -> {e!r}]"
_RETRY = re.compile(r"(?s)(?P<head>Request attempt \S+ failed; [^:]*: (?P<method>[A-Z]+) (?P<url>\S+))"
                    r"(?: -> (?P<error>\w+)(?P<detail>.*))?")
_INNER = re.compile(r"\b(\w+(?:Error|Exception))\(")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def _short(text: str) -> str:
    """The exception's class, and the innermost cause's class (ConnectionRefusedError...), no repr."""
    match = _RETRY.fullmatch(text)
    if match is None:
        return text
    head = _USERINFO.sub("", match["head"])
    if not match["error"]:
        return head
    causes = [name for name in _INNER.findall(match["detail"] or "") if name != match["error"]]
    return f"{head} -> {match['error']}" + (f" ({causes[-1]})" if causes else "")


class KopfRetryLines(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.told = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kopf") or not isinstance(record.msg, str) \
                or not record.msg.startswith("Request attempt"):
            return True
        text = record.getMessage()
        match = _RETRY.fullmatch(text)
        if match is None:
            return True
        short = _short(text)
        if not self.told and match["error"]:
            self.told = True
            cause = short.rpartition(" -> ")[2]
            log.warning("cannot reach the Kubernetes API server at %s: %s; retrying until it answers or "
                        "roomctl is stopped (check the kubeconfig's server and the cluster)",
                        _USERINFO.sub("", match["url"]).split("/api")[0], cause)
        record.msg, record.args = short, ()
        return True


@contextmanager
def readable_kopf_retries(logger: logging.Logger | None = None) -> Iterator[KopfRetryLines]:
    """While the operator runs: kopf's retry lines shortened on every handler of `logger` (the root)."""
    handlers = list((logger or logging.getLogger()).handlers)
    found = KopfRetryLines()
    for handler in handlers:
        handler.addFilter(found)
    try:
        yield found
    finally:
        for handler in handlers:
            handler.removeFilter(found)
