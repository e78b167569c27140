"""Secret values never leave the process: not in logs, not in errors, not in stored rows.

The secrets a replica holds arrive through its environment (`agent_api.secret_env`); each is
registered here once and replaced by `[redacted:<variable>]` in any text that is logged,
returned to a caller or written to PostgreSQL. Scrubbing the *value* (not trusting code paths to
avoid it) also catches a provider or library quoting a key or a URL back in an error message.

The registry is process-wide on purpose: the secrets are the process's environment, and the
log formatter, the run recorder and the HTTP server all need the same set.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

from agent_api import secret_env

# Shorter values would match ordinary text and make logs unreadable; a real key, URL or token
# is far longer.
MIN_SECRET_LENGTH = 6

_lock = threading.Lock()
_secrets: dict[str, str] = {}  # value -> replacement


def register(value: str | None, label: str) -> None:
    """Scrub `value` (and the forms it takes once quoted or encoded) from now on."""
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    replacement = f"[redacted:{label}]"
    forms = {value, json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""),
             urllib.parse.quote(value)}
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme in ("http", "https"):
        # Webhook URLs carry their credential in the path; errors often quote only part of it.
        tail = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        if len(tail) >= 12:
            forms.add(tail)
    with _lock:
        for form in forms:
            if len(form) >= MIN_SECRET_LENGTH:
                _secrets[form] = replacement


def register_environment(env: Mapping[str, str]) -> None:
    """Register every Secret value the operator hands to the pod (see agent_api.secret_env)."""
    for variable, value in env.items():
        if secret_env.is_secret(variable):
            register(value, variable)


def scrub(text: str) -> str:
    if not text:
        return text
    with _lock:
        # Longest first, so a URL is replaced whole before its path would be.
        items = sorted(_secrets.items(), key=lambda item: -len(item[0]))
    for value, replacement in items:
        if value in text:
            text = text.replace(value, replacement)
    return text


def scrub_json(value: Any) -> Any:
    """A copy of a JSON-like value with every string scrubbed (keys included)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_json(v) for v in value]
    return value

