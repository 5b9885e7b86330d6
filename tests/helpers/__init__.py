"""Shared test helpers: a demo shop, the sandbox and an engine wired together."""
