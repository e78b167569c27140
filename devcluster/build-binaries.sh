#!/usr/bin/env bash
# Build the devcluster's control-plane binaries from their Go modules and cache them,
# keyed by version, outside the repository.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  <- k8s.io/kubernetes
#   etcd                                                              <- go.etcd.io/etcd/server/v3
#   helm                                                              <- helm.sh/helm/v3
#
# k8s.io/kubernetes replaces its k8s.io/* staging modules with local folders, which a
# dependent module cannot see; so each tool is built from a tiny wrapper module that
# requires it at the pinned version and replaces each staging module with its published
# v0.x twin.  Prints the binary directory on stdout when done; progress goes to stderr.
#
# If KUBEBUILDER_ASSETS names a directory with kube-apiserver and etcd, nothing is built
# for those (envtest users); kube-controller-manager, kube-scheduler, kubectl, helm are
# still taken from the cache or built.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"

CACHE="${AGENT_CLUSTERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agent-clusters}"
BIN="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
WORK="$CACHE/build"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

log() { printf '[devcluster build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

have_all() {
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm; do
    [[ -x "$BIN/$b" ]] || return 1
  done
}

if have_all; then echo "$BIN"; exit 0; fi
command -v go >/dev/null || { log "the Go toolchain is required (go not on PATH)"; exit 1; }
mkdir -p "$BIN" "$WORK"
log "building control-plane binaries into $BIN"
# Measured: 10 minutes on a 2-core machine, Go module downloads included (the cache's own
# timestamps: bin/ created 14:01:11, helm written 14:11:11). The README quotes the same figure.
log "a cold build takes about 10 minutes on 2 cores (longer on a slow network); later runs reuse the cache"

# Heartbeat so a long silent 'go build' visibly makes progress.
heartbeat() {
  local what=$1 start=$SECONDS
  while sleep 30; do log "  ... still building $what ($((SECONDS - start))s, $(du -sh "${GOCACHE:-$(go env GOCACHE)}" 2>/dev/null | cut -f1) in Go build cache)"; done
}
with_heartbeat() {
  local what=$1; shift
  heartbeat "$what" & local hb=$!
  local rc=0
  "$@" || rc=$?
  kill "$hb" 2>/dev/null; wait "$hb" 2>/dev/null || true
  return $rc
}

# --- Kubernetes -------------------------------------------------------------------------
build_kubernetes() {
  local dir="$WORK/kubernetes-$K8S_VERSION" minor gomod staging
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local staging_version="v0.${K8S_VERSION#v1.}"
  mkdir -p "$dir"
  log "fetching k8s.io/kubernetes@$K8S_VERSION module metadata"
  gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging=$(grep -E '^\s+k8s.io/\S+ => \./staging' "$gomod" | awk '{print $1}')
  {
    echo "module agentclusters.local/build/kubernetes"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $staging_version"; done
    echo ")"
  } > "$dir/go.mod"
  cat > "$dir/tools.go" <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  log "resolving Kubernetes dependencies (go mod tidy)"
  (cd "$dir" && go mod tidy)
  local pkg=k8s.io/component-base/version
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  log "compiling kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (the long part)"
  (cd "$dir" && with_heartbeat kubernetes go build -trimpath -ldflags "$ldflags" -o "$BIN/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
}

# --- etcd and helm: plain modules, wrapped so their own replace directives do not matter --
build_simple() {
  local name=$1 module=$2 version=$3 pkg=$4 ldflags=$5
  local dir="$WORK/$name-$version"
  mkdir -p "$dir"
  printf 'module agentclusters.local/build/%s\n\ngo 1.24.0\n' "$name" > "$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" > "$dir/tools.go"
  log "resolving $module@$version"
  (cd "$dir" && go get "$module@$version" && go mod tidy)
  log "compiling $name"
  (cd "$dir" && with_heartbeat "$name" go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN/$name" "$pkg")
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
  log "using kube-apiserver and etcd from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  ln -sf "$KUBEBUILDER_ASSETS/kube-apiserver" "$BIN/kube-apiserver"
  ln -sf "$KUBEBUILDER_ASSETS/etcd" "$BIN/etcd"
  [[ -x "$KUBEBUILDER_ASSETS/kubectl" ]] && ln -sf "$KUBEBUILDER_ASSETS/kubectl" "$BIN/kubectl"
fi

start=$SECONDS
if [[ ! -x "$BIN/etcd" ]]; then
  build_simple etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 \
    "-X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
fi
if [[ ! -x "$BIN/kube-controller-manager" || ! -x "$BIN/kube-apiserver" || ! -x "$BIN/kubectl" || ! -x "$BIN/kube-scheduler" ]]; then
  build_kubernetes
fi
if [[ ! -x "$BIN/helm" ]]; then
  build_simple helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
fi
have_all || { log "build finished but binaries are missing in $BIN"; exit 1; }
log "done in $((SECONDS - start))s"
echo "$BIN"
