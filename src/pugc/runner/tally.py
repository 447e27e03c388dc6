"""Accounting and figures: every input is passed on or dropped, counts add up over chunks and shards, and
stage figures combine as their stage declares (`MetricRules`: summed, averaged weighted by records in, or
recomputed from the merged records). A figure without a rule is an error, never guessed from its name."""
from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable

from pugc.metrics import MEAN, RECOMPUTED, MetricRules
from pugc.records import StageResult

def check_accounting(result: StageResult, group_key: str | None = None) -> None:
    """Every input record is passed on or dropped with a reason; anything else is a bug worth stopping for.
    `group_key` (1:K stages): outputs are counted by the distinct inputs that produced them."""
    if group_key:
        accounted = len({getattr(r, group_key) for r in result.kept}) + len(result.dropped)
    else:
        accounted = len(result.kept) + len(result.dropped)
    if accounted != result.n_in:
        raise RuntimeError(f"{result.stage}: {result.n_in} records in, but {accounted} passed or dropped")


def combine_metrics(parts: list[tuple[int, dict]], rules: MetricRules) -> dict[str, float]:
    """Stage figures of several parts by their declared rules; RECOMPUTED figures are left to `recompute`."""
    total_in = sum(n for n, _ in parts)
    combined: dict[str, float] = {}
    for n_in, metrics in parts:
        share = n_in / total_in if total_in else 0.0
        for name, value in metrics.items():
            rule = rules.rules.get(name)
            if rule is None:
                raise ValueError(f"figure {name!r} has no merge rule: declare it (sum, mean or recomputed) in its "
                                 "stage's MetricRules")
            if rule != RECOMPUTED:
                combined[name] = combined.get(name, 0.0) + float(value) * (share if rule == MEAN else 1.0)
    return combined


class Tally:
    """Counts and figures of a stage's chunks (or shards), without holding their records."""

    def __init__(self, rules: MetricRules) -> None:
        self.rules = rules
        self.n_in = self.n_out = 0
        self.dropped: Counter = Counter()
        self.parts: list[tuple[int, dict]] = []

    def add(self, n_in: int, n_out: int, dropped: dict, metrics: dict) -> None:
        self.n_in += int(n_in)
        self.n_out += int(n_out)
        self.dropped.update({reason: int(count) for reason, count in dropped.items()})
        self.parts.append((int(n_in), metrics))

    def add_result(self, result: StageResult) -> None:
        self.add(result.n_in, len(result.kept), result.counts["dropped"], result.metrics)

    @property
    def counts(self) -> dict:
        return {"in": self.n_in, "out": self.n_out, "dropped": dict(sorted(self.dropped.items()))}

    @property
    def metrics(self) -> dict:
        return combine_metrics(self.parts, self.rules)

    def final_metrics(self, records: Callable[[], Iterable]) -> dict:
        """The combined figures, plus the RECOMPUTED ones from the complete output (`records()` streams it)."""
        combined = self.metrics
        if self.rules.recompute is not None:
            combined.update(self.rules.recompute(records()))
        return combined


def format_dropped(dropped: dict) -> str:
    return ", ".join(f"{reason}={count}" for reason, count in dropped.items()) or "none"
