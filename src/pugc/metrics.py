"""How a stage's figures combine over chunks and shards, declared by the stage where it computes them.

A leaf module: stage logic (pugc.stages) declares its rules with it, the runner (pugc.runner.tally) applies them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

SUM, MEAN, RECOMPUTED = "sum", "mean", "recomputed"  # MEAN: weighted by the records each part took in


@dataclass(frozen=True)
class MetricRules:
    """How a stage's figures combine over chunks and shards. `rules`: figure name -> SUM, MEAN or RECOMPUTED;
    `recompute` computes the RECOMPUTED ones from the stage's whole output (records streamed), once the
    output is complete: a figure such as a length-controlled win rate is a fit over every record, not an
    average of the parts' fits."""

    rules: Mapping[str, str] = field(default_factory=dict)
    recompute: Callable[[Iterable], dict[str, float]] | None = None

    def __post_init__(self) -> None:
        unknown = {rule for rule in self.rules.values()} - {SUM, MEAN, RECOMPUTED}
        if unknown:
            raise ValueError(f"unknown metric rule(s) {sorted(unknown)}: use sum, mean or recomputed")
        if RECOMPUTED in self.rules.values() and self.recompute is None:
            raise ValueError("a recomputed metric needs the function that recomputes it")
