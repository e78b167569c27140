#!/usr/bin/env bash
# `make kind-up`: Agent Clusters on a real kind cluster, for machines with Docker.
#
#   1. a kind cluster (KIND_CLUSTER_NAME, default agent-clusters; reused if it exists);
#   2. the image built from this checkout's Dockerfile as agent-clusters:dev and loaded into
#      the kind node (the chart's values say pullPolicy: Never, so nothing is pulled);
#   3. throwaway PostgreSQL and Redis in the agent-clusters namespace (scripts/kind/services.yaml);
#   4. the chart installed (or upgraded) with scripts/kind/values.yaml only, then `helm test`
#      (the smoke-check Pod: gateway and webhook answering);
#   5. the demo's first steps: examples/01-minimal.yaml applied and waited for, an MCP caller
#      (a ServiceAccount bound to Kubernetes' own `edit` role in default: the chart's aggregated
#      agentclusters-edit role is what lets it act), the gateway port-forwarded to localhost,
#      and .kind/env with KUBECONFIG, GATEWAY_URL and GATEWAY_TOKEN.
#
# `make kind-down` (scripts/kind-down.sh) stops the port-forward and deletes the cluster.
# Not run by the test suite (the development machines have no Docker): tests/unit/test_kind_up.py
# checks its syntax, shellcheck and the values it installs with against values.schema.json.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${KIND_CLUSTER_NAME:-agent-clusters}"
CONTEXT="kind-$CLUSTER"
IMAGE="agent-clusters:dev" # image.repository:image.tag in scripts/kind/values.yaml
NAMESPACE="agent-clusters" # the namespace of scripts/kind/services.yaml and the URLs in the values
RELEASE="agent-clusters"   # fullname agent-clusters: Service agent-clusters-gateway
VALUES="scripts/kind/values.yaml"
GATEWAY_PORT="${GATEWAY_PORT:-8090}"
STATE=".kind"

log() { printf '[kind-up %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is not on PATH; install it: $2"; }

need docker "https://docs.docker.com/engine/install/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation (or: go install sigs.k8s.io/kind@latest)"
need kubectl "https://kubernetes.io/docs/tasks/tools/ (or \`make binaries\`, then add the directory it prints to PATH)"
need helm "https://helm.sh/docs/intro/install/ (v3)"
need curl "your distribution's curl package"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer \`docker info\`: start it, or add yourself to the docker group"

k() { kubectl --context "$CONTEXT" "$@"; }

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
else
  log "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 180s
fi
mkdir -p "$STATE"
kind get kubeconfig --name "$CLUSTER" >"$STATE/kubeconfig"
chmod 600 "$STATE/kubeconfig"

log "building $IMAGE from the Dockerfile and loading it into the kind node"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "PostgreSQL and Redis in namespace $NAMESPACE"
k create namespace "$NAMESPACE" --dry-run=client -o yaml | k apply -f -
k apply -f scripts/kind/services.yaml
k -n "$NAMESPACE" rollout status deployment/postgres --timeout=300s
k -n "$NAMESPACE" rollout status deployment/redis --timeout=300s

log "installing the chart (release $RELEASE) with $VALUES"
helm --kube-context "$CONTEXT" upgrade --install "$RELEASE" charts/agent-clusters \
  --namespace "$NAMESPACE" --values "$VALUES" --wait --timeout 5m
# A rebuilt image keeps its tag: restart so the pods run the one just loaded.
k -n "$NAMESPACE" rollout restart deployment/"$RELEASE" deployment/"$RELEASE"-gateway
k -n "$NAMESPACE" rollout status deployment/"$RELEASE" --timeout=300s
k -n "$NAMESPACE" rollout status deployment/"$RELEASE"-gateway --timeout=300s
helm --kube-context "$CONTEXT" test "$RELEASE" --namespace "$NAMESPACE" --logs --timeout 3m

log "the demo's AgentCluster: examples/01-minimal.yaml in namespace default"
k -n default apply -f examples/01-minimal.yaml
k -n default wait agentcluster/hello --for=condition=Ready --timeout=300s
k -n default get agentclusters

log "an MCP caller: ServiceAccount default/mcp-caller, bound to the built-in edit role"
k -n default create serviceaccount mcp-caller --dry-run=client -o yaml | k apply -f -
k -n default create rolebinding mcp-caller-edit --clusterrole=edit --serviceaccount=default:mcp-caller \
  --dry-run=client -o yaml | k apply -f -
token="$(k -n default create token mcp-caller --duration=24h --audience agentclusters-gateway)"

log "port-forwarding the gateway to 127.0.0.1:$GATEWAY_PORT"
if [[ -f "$STATE/port-forward.pid" ]]; then
  kill "$(cat "$STATE/port-forward.pid")" 2>/dev/null || true
  rm -f "$STATE/port-forward.pid"
fi
nohup kubectl --context "$CONTEXT" -n "$NAMESPACE" port-forward "service/$RELEASE-gateway" \
  "$GATEWAY_PORT:8090" >"$STATE/port-forward.log" 2>&1 &
echo "$!" >"$STATE/port-forward.pid"
for _ in $(seq 1 30); do
  curl -fsS "http://127.0.0.1:$GATEWAY_PORT/healthz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "http://127.0.0.1:$GATEWAY_PORT/healthz" >/dev/null ||
  die "the gateway does not answer on 127.0.0.1:$GATEWAY_PORT (see $STATE/port-forward.log)"

{
  printf 'export KUBECONFIG=%q\n' "$PWD/$STATE/kubeconfig"
  printf 'export GATEWAY_URL=%q\n' "http://127.0.0.1:$GATEWAY_PORT/mcp"
  printf 'export GATEWAY_TOKEN=%q\n' "$token"
} >"$STATE/env"

log "ready"
cat <<EOF

kind cluster $CLUSTER is up with Agent Clusters ($IMAGE). Use it with:

  source $STATE/env
  kubectl get agc -A
  kubectl scale agc/hello --replicas=5
  kubectl describe agc hello

MCP: point any MCP client at \$GATEWAY_URL with "Authorization: Bearer \$GATEWAY_TOKEN"
(default/mcp-caller, allowed through the built-in edit role). \`make kind-down\` removes it all.
EOF
