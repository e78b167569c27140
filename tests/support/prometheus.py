"""Reading a real `/metrics` answer the way Prometheus would, and the project's naming rules.

The rules (docs/operations.md, "Metrics"): names start `agentclusters_`; counters end
`_total`; a histogram's name ends in its unit (`_seconds`); no label is named like the labels a
scrape attaches to its target (service discovery, Thanos external labels), which would clash
with and rename ours (`exported_namespace`) or be dropped.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "agentclusters_"
TARGET_LABELS = frozenset({"namespace", "pod", "cluster", "replica", "job", "instance", "container",
                           "service", "endpoint", "node"})
UNITS = ("_seconds", "_bytes")


def families(text: str) -> dict[str, object]:
    """Metric families by name (a counter's name without `_total`, as the parser gives it)."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample_names(text: str) -> set[str]:
    """Every series name that has at least one sample (`x_total`, `x_bucket`, `x_count`, ...)."""
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(sample.labels), sample.value) for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    return sum(v for have, v in samples(text, name) if all(have.get(k) == want for k, want in labels.items()))


def convention_problems(text: str) -> list[str]:
    """Every way the exposition breaks the naming rules; empty when it keeps them. The
    prometheus_client process/platform collectors are not ours and are skipped."""
    problems = []
    for family in text_string_to_metric_families(text):
        if family.name.startswith(("process_", "python_")):
            continue
        if not family.name.startswith(PREFIX):
            problems.append(f"{family.name}: does not start with {PREFIX}")
        if family.type == "histogram" and not family.name.endswith(UNITS):
            problems.append(f"{family.name}: a histogram without a unit suffix {UNITS}")
        for sample in family.samples:
            if family.type == "counter" and sample.name.endswith("_created"):
                continue
            if family.type == "counter" and not sample.name.endswith("_total"):
                problems.append(f"{sample.name}: a counter not ending _total")
            clashing = TARGET_LABELS & set(sample.labels)
            if clashing:
                problems.append(f"{sample.name}: labels {sorted(clashing)} clash with the scrape's target labels")
    return sorted(set(problems))
