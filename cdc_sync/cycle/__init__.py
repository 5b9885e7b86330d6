"""One sync cycle: plan, send, commit state, handle deletes, resync."""
