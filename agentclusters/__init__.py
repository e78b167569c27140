"""The `agentclusters` command: one entry point for every role of the product.

Each subcommand imports its role lazily, so `agentclusters runtime` in an agent pod never
loads the operator's Kubernetes client, and the packages stay independent of each other.
"""
