"""The gateway: the product's front door.

It serves the MCP tools people and AI clients use to make, scale and configure agents (each a
Kubernetes patch with a conflict check), routes chat to a live replica (or the pinned one) and
spreads signed webhooks across replicas. Callers authenticate with Kubernetes bearer tokens
and are authorized per tool by SubjectAccessReview, so Kubernetes RBAC is the permission
model. It imports `agent_api`, never the operator or the runtime.
"""
