"""Webhook signature scheme v1: what is signed, and what each refusal says."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from agent_api import webhook_signatures as ws

SECRET = b"s3cret"
PATH = "/hooks/team-a/scraper/github"
BODY = b'{"a":1}'
NOW = 1_700_000_000


def test_the_signature_is_the_documented_hmac():
    expected = hmac.new(SECRET, b"v1:1700000000:d-1:/hooks/team-a/scraper/github:" + BODY, hashlib.sha256)
    assert ws.signature(SECRET, NOW, "d-1", PATH, BODY) == f"v1={expected.hexdigest()}"


def test_headers_carry_a_fresh_delivery_id_and_verify():
    first = ws.headers(SECRET, PATH, BODY, timestamp=NOW)
    second = ws.headers(SECRET, PATH, BODY, timestamp=NOW)
    assert first[ws.DELIVERY_HEADER] != second[ws.DELIVERY_HEADER]
    ws.verify(SECRET, ws.signed_headers(first), PATH, BODY, now=NOW)


@pytest.mark.parametrize("change", ["secret", "path", "body", "delivery", "timestamp"])
def test_changing_any_signed_part_breaks_the_signature(change):
    sent = ws.headers(SECRET, PATH, BODY, delivery="d-1", timestamp=NOW)
    secret, path, body = SECRET, PATH, BODY
    if change == "secret":
        secret = b"other"
    elif change == "path":
        path = "/hooks/team-b/scraper/github"
    elif change == "body":
        body = b'{"a":2}'
    elif change == "delivery":
        sent[ws.DELIVERY_HEADER] = "d-2"
    else:
        sent[ws.TIMESTAMP_HEADER] = str(NOW + 1)
    with pytest.raises(ws.Refused, match=r"does not match\. The string to sign is 'v1:"):
        ws.verify(secret, ws.signed_headers(sent), path, body, now=NOW)


def test_the_refusal_of_a_bad_signature_shows_the_string_to_sign():
    sent = ws.headers(b"other", PATH, BODY, delivery="d-1", timestamp=NOW)
    with pytest.raises(ws.Refused) as refused:
        ws.verify(SECRET, ws.signed_headers(sent), PATH, BODY, now=NOW)
    assert f"'v1:{NOW}:d-1:{PATH}:' followed by the raw body (7 bytes)" in str(refused.value)


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_outside_the_window_is_refused_with_the_server_time(offset):
    sent = ws.headers(SECRET, PATH, BODY, timestamp=NOW + offset)
    with pytest.raises(ws.Refused, match=f"{NOW + offset} is 301 s away from the server time {NOW}"):
        ws.verify(SECRET, ws.signed_headers(sent), PATH, BODY, now=NOW)


def test_a_timestamp_at_the_edge_of_the_window_is_accepted():
    sent = ws.headers(SECRET, PATH, BODY, timestamp=NOW - 300)
    ws.verify(SECRET, ws.signed_headers(sent), PATH, BODY, now=NOW)


def test_the_retired_body_only_scheme_is_named_in_its_refusal():
    old = "sha256=" + hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()
    with pytest.raises(ws.Refused, match="sha256=… is the retired body-only scheme"):
        ws.signed_headers({ws.SIGNATURE_HEADER: old})


@pytest.mark.parametrize(("header", "value", "message"), [
    (ws.TIMESTAMP_HEADER, None, "missing X-Agent-Timestamp"),
    (ws.DELIVERY_HEADER, None, "missing X-Agent-Delivery"),
    (ws.SIGNATURE_HEADER, None, "missing X-Agent-Signature"),
    (ws.TIMESTAMP_HEADER, "2024-01-01T00:00:00Z", "must be unix seconds"),
    (ws.DELIVERY_HEADER, "has:colon", "must be 1-128 characters"),
    (ws.DELIVERY_HEADER, "x" * 129, "must be 1-128 characters"),
    (ws.SIGNATURE_HEADER, "v1=abc", "must be v1=<64 hex digits>"),
    (ws.SIGNATURE_HEADER, "v2=" + "0" * 64, "must be v1=<64 hex digits>"),
])
def test_malformed_headers_are_refused_saying_which(header, value, message):
    sent = ws.headers(SECRET, PATH, BODY, timestamp=NOW)
    if value is None:
        del sent[header]
    else:
        sent[header] = value
    with pytest.raises(ws.Refused, match=message):
        ws.signed_headers(sent)
