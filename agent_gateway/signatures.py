"""HMAC-SHA256 webhook signatures: `X-Agent-Signature: sha256=<hex of HMAC(secret, body)>`.

The same scheme GitHub uses (`X-Hub-Signature-256`), so existing senders need only the header
name changed. Compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Agent-Signature"
PREFIX = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith(PREFIX) or not secret:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())
