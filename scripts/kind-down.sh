#!/usr/bin/env bash
# `make kind-down`: stop what `make kind-up` (scripts/kind-up.sh) started: the gateway's
# port-forward and the kind cluster (with everything in it), and remove .kind/.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${KIND_CLUSTER_NAME:-agent-clusters}"
STATE=".kind"

if [[ -f "$STATE/port-forward.pid" ]]; then
  kill "$(cat "$STATE/port-forward.pid")" 2>/dev/null || true
fi
if command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind delete cluster --name "$CLUSTER"
fi
rm -rf "$STATE"
