"""The fault soak of `make chaos`, one minute long, on the session's devcluster: correctness,
not timing.

Everything else is the soak's own (bench/chaos: PostgreSQL, Redis, the TCP proxy, the
operator, the recorder), because the driver restarts PostgreSQL, Redis and the operator.
The session's operator is stopped for the while (two operators would share one Lease and
one webhook) and started again after. The verdict is counted outside the system, from the
recorder and the fault log (bench/chaos/analysis.py defines each figure): whatever the faults
and however slow the machine, no fire of the window completes twice, runs twice at once or
is left unrun, and no replica name is ever given out twice.
"""

from __future__ import annotations

import json

from bench.chaos import soak
from bench.chaos.stack import Stack
from devcluster.cluster import DevCluster
from tests.e2e.helpers import RunningOperator

MINUTES = 1.0
LEASE_SECONDS = 5  # the API's minimum: the blackhole (1.5 leases + 1 s) fits in the minute


def test_one_minute_of_faults_completes_every_fire_once_and_reuses_no_name(
        devcluster: DevCluster, operator: RunningOperator, tmp_path):
    operator.process.stop()
    stack = Stack(tmp_path / "chaos", devcluster=devcluster)
    try:
        stack.start()
        result = soak.run(stack, soak.SoakConfig(minutes=MINUTES, seed=14, lease_seconds=LEASE_SECONDS))
    finally:
        stack.stop()
        operator.restart()
    f = result["figures"]
    evidence = json.dumps({"figures": f, "faults": result["faults"],
                           "fault_errors": result["fault_errors"]}, indent=1, default=str)[:12000]
    assert f["fires_due"] > 0 and result["faults"], evidence
    assert f["duplicate_completions"] == 0, evidence
    assert f["concurrent_executions"] == 0, evidence
    assert f["missed_fires"] == 0, evidence
    assert f["names"]["reused"] == 0, evidence
