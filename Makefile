# Agent Clusters — every entry point a developer or CI needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help bootstrap binaries lint test demo crds dev-up dev-down bench

help:
	@echo "make test     - set up everything (venv, PostgreSQL, Redis, control-plane binaries) and run the whole suite"
	@echo "make demo     - bring up the devcluster from nothing and show the product working"
	@echo "make dev-up   - start devcluster + PostgreSQL + Redis + operator in the background (.dev/env)"
	@echo "make dev-down - stop them"
	@echo "make crds     - regenerate crds/ from agent_api"
	@echo "make bench    - run the benchmarks"

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

crds: bootstrap
	$(PY) -m agentclusters crds --output crds/
	cp crds/*.yaml charts/agent-clusters/crds/

bench: bootstrap binaries
	$(PY) -m bench.claims
