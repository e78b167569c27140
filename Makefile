# Agent Clusters — every entry point a developer or CI needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help bootstrap binaries lint test demo crds dev-up dev-down bench chaos kind-up kind-down

help:
	@echo "make test     - set up everything (venv, PostgreSQL, Redis, control-plane binaries) and run the whole suite"
	@echo "make demo     - bring up the devcluster from nothing and show the product working"
	@echo "make dev-up   - start devcluster + PostgreSQL + Redis + operator in the background (.dev/env)"
	@echo "make dev-down - stop them"
	@echo "make crds     - regenerate crds/ from agent_api"
	@echo "make kind-up  - with Docker, kind, kubectl and helm: a kind cluster, the image built and loaded, the chart installed (.kind/env)"
	@echo "make kind-down - delete that kind cluster"
	@echo "make bench    - run the benchmarks: bench/RESULTS.md, bench/results/ (BENCH_ARGS=\"--quick\" for a smoke run)"
	@echo "make chaos    - the 10-minute fault soak: bench/results/chaos-<date>.json and .png (CHAOS_ARGS=\"--minutes 2 --seed 7\")"

bootstrap:
	@bash scripts/bootstrap.sh

binaries: bootstrap
	@bash devcluster/build-binaries.sh >/dev/null

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: bootstrap binaries lint
	$(PY) -m pytest -p no:cacheprovider tests

demo: bootstrap binaries
	$(PY) -m agentclusters demo

dev-up: bootstrap binaries
	$(PY) -m agentclusters dev up

dev-down: bootstrap
	$(PY) -m agentclusters dev down

# Needs Docker (not available on the development machines, so not run by `make test`).
kind-up:
	@bash scripts/kind-up.sh

kind-down:
	@bash scripts/kind-down.sh

crds: bootstrap
	$(PY) -m agentclusters crds --output crds/
	# The chart's copy, which templates/crd.yaml includes (a test fails when the two differ).
	cp crds/*.yaml charts/agent-clusters/files/crds/

# The bench extra (pgqueuer, matplotlib) on top of bootstrap's .[dev], reinstalled when
# pyproject.toml changes; its own stamp, which bootstrap's reinstall does not remove.
# Arguments pass through: make bench BENCH_ARGS="--quick" or BENCH_ARGS="--only idle".
BENCH_STAMP = $(VENV)/.bench-installed-$(shell sha256sum pyproject.toml | cut -c1-16)

bench: bootstrap
	@[[ -f $(BENCH_STAMP) ]] || { $(VENV)/bin/pip install -q -e '.[dev,bench]' \
		&& rm -f $(VENV)/.bench-installed-* && touch $(BENCH_STAMP); }
	$(PY) -m bench $(BENCH_ARGS)

# The fault soak (docs/chaos.md): a devcluster, PostgreSQL, Redis and the operator of its own.
# Arguments pass through: make chaos CHAOS_ARGS="--minutes 10 --seed 1 --lease 10".
chaos: bootstrap binaries
	@[[ -f $(BENCH_STAMP) ]] || { $(VENV)/bin/pip install -q -e '.[dev,bench]' \
		&& rm -f $(VENV)/.bench-installed-* && touch $(BENCH_STAMP); }
	$(PY) -m bench.chaos $(CHAOS_ARGS)
