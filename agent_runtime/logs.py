"""JSON log lines, each carrying namespace, cluster and replica, so every line says who did it.

The shape is every component's (agent_api.logformat). Every line is scrubbed of the replica's
secret values (agent_runtime.ai.redaction) as the last step, whatever logger, library or
exception produced it.
"""

from __future__ import annotations

import logging

from agent_api import logformat
from agent_runtime.ai import redaction


def formatter(namespace: str, cluster: str, replica: str) -> logging.Formatter:
    return logformat.JsonFormatter({"namespace": namespace, "cluster": cluster, "replica": replica},
                                   scrub=redaction.scrub)


def configure(namespace: str, cluster: str, replica: str, level: int = logging.INFO) -> None:
    logformat.configure("json", identity={"namespace": namespace, "cluster": cluster, "replica": replica},
                        level=level, scrub=redaction.scrub)
