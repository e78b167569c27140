"""`python -m agent_runtime`: the same as `agentclusters runtime`."""

from agent_runtime import main

raise SystemExit(main.main())
