"""Webhook signatures, scheme v1: one definition for senders, the runtime, tests and docs.

A delivery to `POST /hooks/<namespace>/<agent><path>` on the gateway carries three headers:

    X-Agent-Timestamp: <unix seconds when it was signed, decimal>
    X-Agent-Delivery:  <an id unique per delivery: 1-128 of A-Z a-z 0-9 . _ ~ ->
    X-Agent-Signature: v1=<hex HMAC-SHA256(secret, "v1:<timestamp>:<delivery>:<path>:" + body)>

`<path>` is the canonical webhook path `/hooks/<namespace>/<agent><webhook path>` (what
`hook_path` returns: no query string, no prefix a proxy in front of the gateway may add), and
`body` the raw request body, byte for byte. Like Stripe's and Slack's schemes, the timestamp
limits a captured delivery's life to the tolerance window (default 300 s either side of the
receiver's clock), and within that window its delivery id is accepted once (recorded in Redis
for twice the window). The path is signed, so a delivery for one webhook is no good at another
that shares its secret. None of the fields may contain ':' (timestamps are digits, delivery ids
and paths exclude it), so the string to sign is unambiguous.

The older body-only scheme (`X-Agent-Signature: sha256=<hex HMAC of the body>`) is refused
with a message saying so: it let anyone who saw one delivery replay it forever.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

VERSION = "v1"
SIGNATURE_HEADER = "X-Agent-Signature"
TIMESTAMP_HEADER = "X-Agent-Timestamp"
DELIVERY_HEADER = "X-Agent-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300
RETIRED_PREFIX = "sha256="
DELIVERY_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v1=([0-9a-fA-F]{64})$")
HOW_TO_SIGN = (f"sign every delivery with {TIMESTAMP_HEADER} (unix seconds), {DELIVERY_HEADER} (a unique id) and "
               f'{SIGNATURE_HEADER}: v1=<hex HMAC-SHA256(secret, "v1:<timestamp>:<delivery>:<path>:" + body)>, '
               "where <path> is /hooks/<namespace>/<agent><webhook path>")


class Refused(Exception):
    """A delivery that must not run: unsigned, badly signed, stale or malformed. The message
    says which, and how to sign correctly."""


@dataclass(frozen=True)
class Signed:
    """The signature headers of one delivery, well formed (not yet verified)."""

    timestamp: int
    delivery: str
    signature: str


def hook_path(namespace: str, agent: str, path: str) -> str:
    """The canonical path a delivery is signed for, e.g. /hooks/team-a/scraper/github."""
    return f"/hooks/{namespace}/{agent}{path}"


def string_to_sign(timestamp: int, delivery: str, path: str) -> str:
    """What is signed before the body: `v1:<timestamp>:<delivery>:<path>:`."""
    return f"{VERSION}:{timestamp}:{delivery}:{path}:"


def signature(secret: bytes, timestamp: int, delivery: str, path: str, body: bytes) -> str:
    """The `X-Agent-Signature` value: `v1=<hex HMAC-SHA256>`."""
    digest = hmac.new(secret, string_to_sign(timestamp, delivery, path).encode() + body, hashlib.sha256)
    return f"{VERSION}={digest.hexdigest()}"


def headers(secret: bytes, path: str, body: bytes, *, delivery: str | None = None,
            timestamp: int | None = None) -> dict[str, str]:
    """Everything a sender adds to a delivery (a fresh id and the current time by default)."""
    delivery = delivery or str(uuid.uuid4())
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(timestamp), DELIVERY_HEADER: delivery,
            SIGNATURE_HEADER: signature(secret, timestamp, delivery, path, body)}


def signed_headers(found: Mapping[str, str]) -> Signed:
    """The delivery's signature headers, checked for shape only (no secret needed): the
    gateway turns malformed deliveries away with this before they reach a replica."""
    value = (found.get(SIGNATURE_HEADER) or "").strip()
    if value.startswith(RETIRED_PREFIX):
        raise Refused(f"{SIGNATURE_HEADER}: sha256=… is the retired body-only scheme, which anyone could "
                      f"replay; {HOW_TO_SIGN}")
    missing = [name for name in (TIMESTAMP_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER) if not found.get(name)]
    if missing:
        raise Refused(f"missing {', '.join(missing)}: {HOW_TO_SIGN}")
    timestamp = found[TIMESTAMP_HEADER].strip()
    if not _TIMESTAMP.match(timestamp):
        raise Refused(f"{TIMESTAMP_HEADER} must be unix seconds (decimal digits), not {timestamp[:40]!r}")
    delivery = found[DELIVERY_HEADER].strip()
    if not DELIVERY_ID.match(delivery):
        raise Refused(f"{DELIVERY_HEADER} must be 1-128 characters of A-Z a-z 0-9 . _ ~ - (a UUID will do), "
                      f"not {delivery[:40]!r}")
    match = _SIGNATURE.match(value)
    if match is None:
        raise Refused(f"{SIGNATURE_HEADER} must be v1=<64 hex digits>, not {value[:80]!r}; {HOW_TO_SIGN}")
    return Signed(int(timestamp), delivery, match.group(1).lower())


def verify(secret: bytes, signed: Signed, path: str, body: bytes, *, now: float | None = None,
           tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS) -> None:
    """Refused unless the timestamp is within the window and the signature matches (compared
    in constant time)."""
    now = time.time() if now is None else now
    if abs(now - signed.timestamp) > tolerance_seconds:
        raise Refused(
            f"{TIMESTAMP_HEADER} {signed.timestamp} is {abs(int(now) - signed.timestamp)} s away from the "
            f"server time {int(now)} (unix seconds); deliveries are accepted within {tolerance_seconds} s: "
            "sign each delivery when you send it, and check the sender's clock")
    expected = signature(secret, signed.timestamp, signed.delivery, path, body).removeprefix(f"{VERSION}=")
    if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
        raise Refused(
            f"{SIGNATURE_HEADER} does not match. The string to sign is "
            f"{string_to_sign(signed.timestamp, signed.delivery, path)!r} followed by the raw body "
            f"({len(body)} bytes), HMAC-SHA256 with the webhook's secret, sent as v1=<hex>")
