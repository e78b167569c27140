"""Prometheus text exposition of the runtime's counters, without a client library."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Metrics:
    runs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (trigger, status)
    claims: int = 0
    fencing_rejections: int = 0
    self_fenced: int = 0  # runs cancelled because their lease could not be renewed in time
    missed: int = 0  # fires recorded as missed by this replica's planning passes
    in_flight: int = 0
    ready: bool = False

    def render(self, labels: dict[str, str]) -> str:
        base = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines = [
            "# HELP agent_runs_total Finished runs by trigger and status.",
            "# TYPE agent_runs_total counter",
        ]
        for (trigger, status), count in sorted(self.runs.items()):
            lines.append(
                f'agent_runs_total{{{base},trigger="{trigger}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP agent_fire_claims_total Fires this replica claimed.",
            "# TYPE agent_fire_claims_total counter",
            f"agent_fire_claims_total{{{base}}} {self.claims}",
            "# HELP agent_fencing_rejections_total Renewals or completions rejected as stale.",
            "# TYPE agent_fencing_rejections_total counter",
            f"agent_fencing_rejections_total{{{base}}} {self.fencing_rejections}",
            "# HELP agent_self_fenced_total Runs cancelled because their lease could not be "
            "renewed in time.",
            "# TYPE agent_self_fenced_total counter",
            f"agent_self_fenced_total{{{base}}} {self.self_fenced}",
            "# HELP agent_fires_missed_total Fires recorded as missed (not started within "
            "their grace).",
            "# TYPE agent_fires_missed_total counter",
            f"agent_fires_missed_total{{{base}}} {self.missed}",
            "# HELP agent_runs_in_flight Runs executing now.",
            "# TYPE agent_runs_in_flight gauge",
            f"agent_runs_in_flight{{{base}}} {self.in_flight}",
            "# HELP agent_ready Whether the replica is ready to serve.",
            "# TYPE agent_ready gauge",
            f"agent_ready{{{base}}} {int(self.ready)}",
        ]
        return "\n".join(lines) + "\n"
