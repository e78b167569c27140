"""One shape for the log lines of every component, so one log pipeline parses them all.

JSON lines carry the keys kopf's own JSON format writes for the operator (`message`,
`timestamp`, `severity` in kopf's words: debug, info, warn, error, fatal), plus `logger`, the
component's identity (a replica's namespace, cluster and replica name) and whatever a call put
in `extra=` (the gateway's audit fields, a run's id). Text lines are for people at a terminal
(the devcluster): the same fields, `key=value` after the message.

The runtime and the gateway use this module; the operator uses kopf's own formatter
(`kopf.configure`), whose keys these are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Literal, TextIO, get_args

Format = Literal["json", "text"]
FORMATS: tuple[str, ...] = get_args(Format)
FORMAT_ENV = "AGENTCLUSTERS_LOG_FORMAT"
"""The format when no --log-format is given (the devcluster sets `text` for people)."""
DEFAULT_FORMAT: Format = "json"

# Attributes every LogRecord has; anything else on a record came from `extra=`, but for
# uvicorn's `color_message` (its own message again, with terminal colour codes).
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}


def severity(levelno: int) -> str:
    """kopf's JSON severity for a level (kopf._core.actions.loggers.ObjectJsonFormatter)."""
    if levelno <= logging.DEBUG:
        return "debug"
    if levelno <= logging.INFO:
        return "info"
    if levelno <= logging.WARNING:
        return "warn"
    if levelno <= logging.ERROR:
        return "error"
    return "fatal"


def extras(record: logging.LogRecord) -> dict[str, object]:
    """What the call that logged `record` passed in `extra=`."""
    return {key: value for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_") and value is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line. `identity` goes on every line; `scrub`, when given, is the
    last step over the whole line (the runtime removes its secret values with it)."""

    def __init__(self, identity: Mapping[str, str] | None = None,
                 scrub: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._identity = dict(identity or {})
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "severity": severity(record.levelno),
            "logger": record.name,
            "message": record.getMessage(),
            **self._identity,
        }
        for key, value in extras(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        text = json.dumps(line, default=str)
        return self._scrub(text) if self._scrub else text


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger>: <message> key=value ...`, for reading at a terminal."""

    def __init__(self, identity: Mapping[str, str] | None = None,
                 scrub: Callable[[str], str] | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._identity = dict(identity or {})
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        fields = {**self._identity, **extras(record)}
        text = super().format(record)
        if fields:
            head, newline, rest = text.partition("\n")  # a traceback stays below the fields
            text = head + "".join(f" {key}={value}" for key, value in fields.items()) + newline + rest
        return self._scrub(text) if self._scrub else text


def formatter(log_format: Format, identity: Mapping[str, str] | None = None,
              scrub: Callable[[str], str] | None = None) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(identity, scrub)
    if log_format == "text":
        return TextFormatter(identity, scrub)
    raise ValueError(f"unknown log format {log_format!r}: use one of {', '.join(FORMATS)}")


def configure(log_format: Format, *, identity: Mapping[str, str] | None = None, level: int = logging.INFO,
              scrub: Callable[[str], str] | None = None, stream: TextIO | None = None) -> None:
    """Every logger's lines, through the root logger, in `log_format` on `stream` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format, identity, scrub))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Python's warnings too (logger py.warnings), or they would be bare lines on stderr.
    logging.captureWarnings(True)


def add_argument(parser: argparse.ArgumentParser) -> None:
    """`--log-format json|text`, defaulting to $AGENTCLUSTERS_LOG_FORMAT, else json."""
    default = os.environ.get(FORMAT_ENV) or DEFAULT_FORMAT
    if default not in FORMATS:
        parser.error(f"${FORMAT_ENV}={default!r} is not a log format: use one of {', '.join(FORMATS)}")
    parser.add_argument("--log-format", choices=FORMATS, default=default,
                        help=f"log lines as JSON (for a log pipeline) or text (for people); "
                             f"default ${FORMAT_ENV}, else {DEFAULT_FORMAT}")
