"""In-process and Redis implementations of the shared-state ports (events, limits, keys, tokens, locks)."""
