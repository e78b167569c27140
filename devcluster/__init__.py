"""A real Kubernetes control plane, PostgreSQL and Redis on one machine, without Docker.

Used by the test suite, `make dev-up` and `make demo`; never imported by the product.
"""
