"""The agent runtime: the process inside each replica pod (scheduler, functions, state, HTTP)."""
