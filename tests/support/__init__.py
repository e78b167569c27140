"""Local stand-ins for outside services the AI engine talks to, over real HTTP."""
