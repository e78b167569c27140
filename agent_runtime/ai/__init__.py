"""The AI engine: providers, the agent loop, its tools, chat memory, channels, redaction."""
