"""Reading /metrics as Prometheus does (its own parser), so tests compare values, not spelling."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition by (name, labels); raises on text Prometheus rejects."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample, or None when the exposition does not have it."""
    return samples(text).get((name, frozenset(labels.items())))
