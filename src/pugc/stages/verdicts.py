"""Verdict parsing and scales: how a judge's answer becomes a number.

Every LLM judgement in PUGC (quality 1-5, relevance yes/no, reward 1-5) is a `VerdictScale`: the surface
strings the judge may answer with, the value each stands for, and a parser for free-text answers. A parser
returns None for anything it cannot read with confidence; the caller decides what None means.

Judge output is untrusted text of any length: every parser here runs in time linear in its input. None applies
a pattern with adjacent optional whitespace to the whole output (that backtracks through every split of a long
run of spaces); each first cuts out the few characters a verdict can occupy (after the last marker, or the
first words of a reply), with whitespace runs collapsed by `str.split`, and matches a pattern on those alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

MARKER = re.compile(r"\[RESULT\]", re.IGNORECASE)  # Prometheus's verdict marker, any case
# After the marker, whitespace collapsed to single spaces: the score forms prometheus-eval's parser reads,
# "4", ": 4", "(4)", "[4]", "4/5", "4 out of 5", "Score: 4", "score of 4" (a closing "." allowed). Free-text
# forms without the marker ("Score: 4", "a score of 4", "[SCORE] 4") do not count: see tests/unit/test_verdicts.py.
_SCORE_AFTER_MARKER = re.compile(
    r":? ?(?:(?:score|result) ?(?:of|:)? ?)?[(\[]? ?([0-9]{1,3}) ?(?:/ ?5|out of 5)? ?[)\]]? ?\.?", re.IGNORECASE)
# Prometheus 2 relative grading: "[RESULT] A" or "[RESULT] B" (the letter as written, quotes or brackets allowed).
_CHOICE_AFTER_MARKER = re.compile(r":? ?[(\[]? ?\"?(A|B)\"? ?[)\]]? ?\.?")
VERDICT_TAIL_CHARS = 32  # longer than any form above: a longer tail is text after the verdict, not a verdict

# A bare rating reply, read from its first words: an optional label, at most three other characters, the number.
_RATING_HEAD_WORDS, _RATING_HEAD_CHARS = 6, 48
_LEADING_LABEL = re.compile(r"(?:rating|score|quality|answer|verdict) ?[:=-]? ?", re.IGNORECASE)
_FIRST_INTEGER = re.compile(r"[^0-9]{0,3}?([0-9]{1,3})(?![0-9])")
_OTHER_SCALE_OR_DECIMAL = re.compile(r" ?(?:[.,][0-9]|(?:/|out of) ?(?!5(?![0-9]))[0-9])", re.IGNORECASE)
_FIRST_WORD = re.compile(r"\W*([A-Za-z]+)")


def _collapsed(text: str, limit: int) -> str | None:
    """`text` with whitespace runs as single spaces, trimmed; None when it is longer than `limit` characters."""
    words = text.split(maxsplit=limit)  # at most limit + 1 pieces: no more work for a longer text
    if len(words) > limit:
        return None
    collapsed = " ".join(words)
    return collapsed if len(collapsed) <= limit else None


def _after_last_marker(text: str) -> str | None:
    """What follows the judge's last `[RESULT]` marker, if it is short enough to be a verdict."""
    last = None
    for last in MARKER.finditer(text or ""):
        pass
    return None if last is None else _collapsed(text[last.end():], VERDICT_TAIL_CHARS)


def parse_result_marker(text: str, low: int = 1, high: int = 5) -> int | None:
    """Prometheus format: feedback text then "[RESULT] n" at the end. Out of range or elsewhere -> None."""
    tail = _after_last_marker(text)
    match = _SCORE_AFTER_MARKER.fullmatch(tail) if tail is not None else None
    if not match:
        return None
    value = int(match.group(1))
    return value if low <= value <= high else None


def parse_rating(text: str, low: int = 1, high: int = 5) -> int | None:
    """A bare rating reply: "4", "Rating: 4", "4/5", "4 out of 5". Another scale ("4/10", "4 out of 10"), a
    decimal ("3.5") or anything else -> None."""
    head = " ".join((text or "").split(maxsplit=_RATING_HEAD_WORDS)[:_RATING_HEAD_WORDS])[:_RATING_HEAD_CHARS]
    label = _LEADING_LABEL.match(head)
    head = head[label.end():] if label else head
    match = _FIRST_INTEGER.match(head)
    if not match or _OTHER_SCALE_OR_DECIMAL.match(head, match.end()):
        return None
    value = int(match.group(1))
    return value if low <= value <= high else None


def parse_yes_no(text: str) -> int | None:
    """'Yes.' -> 1, 'no, because ...' -> 0; anything else -> None."""
    match = _FIRST_WORD.match((text or "").lstrip()[:_RATING_HEAD_CHARS])
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
# The value is 1.0 for A and 0.0 for B, so the expectation over the two is P(A is better).


def parse_result_choice(text: str) -> float | None:
    """'Feedback: ... [RESULT] A' -> 1.0, '... [RESULT] B' -> 0.0; no marker at the end -> None."""
    tail = _after_last_marker(text)
    match = _CHOICE_AFTER_MARKER.fullmatch(tail) if tail is not None else None
    return None if not match else {"A": 1.0, "B": 0.0}[match.group(1)]


RESULT_A_OR_B = VerdictScale("prometheus_a_b", {"A": 1.0, "B": 0.0}, parse_result_choice)
