#!/usr/bin/env bash
# One-time (and idempotent) set-up of everything the project runs on:
#   - PostgreSQL, PgBouncer and Redis server binaries from Debian's packages (if missing),
#   - .venv with the package and its dev extras (reinstalled only when pyproject.toml changes).
# The control-plane binaries are built separately by devcluster/build-binaries.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

have_pg() { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; }
have_redis() { command -v redis-server >/dev/null; }
have_pgbouncer() { command -v pgbouncer >/dev/null || [[ -x /usr/sbin/pgbouncer ]]; }

if ! have_pg || ! have_redis || ! have_pgbouncer; then
  pkgs=()
  have_pg || pkgs+=(postgresql)
  have_redis || pkgs+=(redis-server)
  have_pgbouncer || pkgs+=(pgbouncer)
  log "installing ${pkgs[*]} from Debian's packages"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # policy-rc.d 101 keeps the packages from starting their own system-wide servers;
  # the project runs its own instances on its own ports.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  $SUDO rm -f /usr/sbin/policy-rc.d
fi

PY="${PYTHON:-python3}"
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -f "$stamp" ]]; then
  log "creating .venv and installing agent-clusters[dev]"
  [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
