"""JSON log lines, each carrying namespace, cluster and replica, so every line says who did it.

Every line is scrubbed of the replica's secret values (agent_runtime.ai.redaction) as the
last step, whatever logger, library or exception produced it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from agent_runtime.ai import redaction

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, identity: dict[str, str]) -> None:
        super().__init__()
        self._identity = identity

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self._identity,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line and value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redaction.scrub(json.dumps(line, default=str))


def configure(namespace: str, cluster: str, replica: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter({"namespace": namespace, "cluster": cluster, "replica": replica})
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
