"""The contract every part of Agent Clusters shares.

`agent_api` is the leaf package: the pydantic models of the AgentCluster resource
(`models`), the API group, label, annotation, condition and event names (`constants`),
the CRD generated from the models (`crd`), replica names (`names`), tier quotas
(`tiers`) and the database schema (`db`). It imports no service package, so the
operator, the runtime and the gateway can all depend on it without depending on each
other.
"""
