"""The AgentCluster operator: turns `spec.replicas` into named, independent replica pods."""
