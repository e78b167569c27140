"""HMAC-SHA256 webhook signatures."""

from __future__ import annotations

import hashlib
import hmac

from agent_gateway import signatures


def test_sign_matches_a_plain_hmac():
    expected = hmac.new(b"s3cret", b'{"a":1}', hashlib.sha256).hexdigest()
    assert signatures.sign(b"s3cret", b'{"a":1}') == f"sha256={expected}"


def test_verify_accepts_only_the_right_secret_and_body():
    header = signatures.sign(b"s3cret", b"body")
    assert signatures.verify(b"s3cret", b"body", header)
    assert not signatures.verify(b"other", b"body", header)
    assert not signatures.verify(b"s3cret", b"body!", header)


def test_verify_refuses_missing_or_malformed_headers():
    digest = signatures.sign(b"s3cret", b"body").removeprefix("sha256=")
    for header in (None, "", digest, f"sha1={digest}", "sha256=", "sha256=zz"):
        assert not signatures.verify(b"s3cret", b"body", header)


def test_an_empty_secret_never_verifies():
    assert not signatures.verify(b"", b"body", signatures.sign(b"", b"body"))
