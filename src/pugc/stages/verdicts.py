"""Verdict parsing and scales: how a judge's answer becomes a number.

Every LLM judgement in PUGC (quality 1-5, relevance yes/no, reward 1-5) is a `VerdictScale`: the surface
strings the judge may answer with, the value each stands for, and a parser for free-text answers. A parser
returns None for anything it cannot read with confidence; the caller decides what None means.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

# The judge's verdict: the `[RESULT]` marker (any case) at the very end of its own output, with the score forms
# prometheus-eval's parser reads after it: "[RESULT] 4", "[RESULT]: 4", "[RESULT] (4)", "[RESULT] [4]",
# "[RESULT] 4/5", "[RESULT] 4 out of 5", "[Result] Score: 4", "[RESULT] score of 4" (a closing "." allowed).
# Prometheus's other free-text forms ("Score: 4", "a score of 4", "[SCORE] 4") do not count without the marker:
# see tests/unit/test_verdicts.py for each decision and why.
_RESULT_AT_END = re.compile(
    r"\[RESULT\]\s*:?\s*(?:(?:score|result)\s*(?:of|:)?\s*)?[(\[]?\s*(\d+)\s*(?:/\s*5|out\s+of\s+5)?\s*[)\]]?"
    r"\s*\.?\s*$",
    re.IGNORECASE,
)
_LEADING_LABEL = re.compile(r"^\s*(?:rating|score|quality|answer|verdict)\s*[:=-]?\s*", re.IGNORECASE)
_FIRST_INTEGER = re.compile(r"^\D{0,3}?(\d+)(?:\s*(?:/|out of)\s*5)?(?!\d)")
_FIRST_WORD = re.compile(r"^\W*([A-Za-z]+)")


def parse_result_marker(text: str, low: int = 1, high: int = 5) -> int | None:
    """Prometheus format: feedback text then "[RESULT] n" at the end. Out of range or elsewhere -> None."""
    match = _RESULT_AT_END.search(text or "")
    if not match:
        return None
    value = int(match.group(1))
    return value if low <= value <= high else None


def parse_rating(text: str, low: int = 1, high: int = 5) -> int | None:
    """A bare rating reply: "4", "Rating: 4", "4/5", "4 out of 5". Anything else -> None."""
    stripped = _LEADING_LABEL.sub("", (text or "").strip())
    match = _FIRST_INTEGER.match(stripped)
    if not match:
        return None
    value = int(match.group(1))
    return value if low <= value <= high else None


def parse_yes_no(text: str) -> int | None:
    """'Yes.' -> 1, 'no, because ...' -> 0; anything else -> None."""
    match = _FIRST_WORD.match(text or "")
    if not match:
        return None
    return {"yes": 1, "no": 0}.get(match.group(1).lower())


@dataclass(frozen=True)
class VerdictScale:
    """The verdict strings a judge can answer with (`options`, surface -> value) and how to parse free text."""

    name: str
    options: dict[str, float]
    parse: Callable[[str], float | None]

    def expectation(self, probs: dict[str, float]) -> tuple[float | None, float]:
        """Probability-weighted verdict over the options, and the probability mass they held."""
        mass = sum(probs.get(s, 0.0) for s in self.options)
        if mass <= 0.0:
            return None, 0.0
        value = sum(probs.get(s, 0.0) * v for s, v in self.options.items()) / mass
        return value, mass


RATING_1_TO_5 = VerdictScale("rating_1_5", {str(i): float(i) for i in range(1, 6)}, parse_rating)
YES_NO = VerdictScale("yes_no", {"yes": 1.0, "Yes": 1.0, "no": 0.0, "No": 0.0}, parse_yes_no)
RESULT_1_TO_5 = VerdictScale("prometheus_1_5", {str(i): float(i) for i in range(1, 6)}, parse_result_marker)


# ------------------------------------------------------------------------------ pairwise: which is better
# Prometheus 2 relative grading ends in "[RESULT] A" or "[RESULT] B" (the marker in any case, as above; the
# letter as written). The value is 1.0 for A and 0.0 for B, so the expectation over the two is P(A is better).
_CHOICE_AT_END = re.compile(r"(?i:\[RESULT\])\s*:?\s*[(\[]?\s*\"?(A|B)\"?\s*[)\]]?\s*\.?\s*$")


def parse_result_choice(text: str) -> float | None:
    """'Feedback: ... [RESULT] A' -> 1.0, '... [RESULT] B' -> 0.0; no marker at the end -> None."""
    match = _CHOICE_AT_END.search(text or "")
    return None if not match else {"A": 1.0, "B": 0.0}[match.group(1)]


RESULT_A_OR_B = VerdictScale("prometheus_a_b", {"A": 1.0, "B": 0.0}, parse_result_choice)
