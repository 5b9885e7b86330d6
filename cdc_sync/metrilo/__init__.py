"""The Metrilo client: signing, batching, retries, answers (knows nothing of the shop)."""
