"""Parsers of untrusted text on hostile inputs: median milliseconds per call, today's parsers beside the
backtracking patterns they replaced (those only at sizes where they still finish).

    python bench/parsers.py [--repeats 5]

The inputs are the issue's: a judge that answers `[RESULT] 4` and then rambles (spaces, then a character), or
ends in thousands of newlines; a generated question line that is a label followed by a long run of spaces.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import time

from pugc.stages.instruction_gen import clean_question
from pugc.stages.verdicts import parse_result_choice, parse_result_marker

# The patterns before they were made linear (kept here only to show the difference).
BEFORE_RESULT = re.compile(
    r"\[RESULT\]\s*:?\s*(?:(?:score|result)\s*(?:of|:)?\s*)?[(\[]?\s*(\d+)\s*(?:/\s*5|out\s+of\s+5)?\s*[)\]]?"
    r"\s*\.?\s*$", re.IGNORECASE)
BEFORE_CHOICE = re.compile(r"(?i:\[RESULT\])\s*:?\s*[(\[]?\s*\"?(A|B)\"?\s*[)\]]?\s*\.?\s*$")
BEFORE_PREAMBLE = re.compile(r"^\s*(?:\**\s*(?:question|q|instruction|user)\s*\d*\s*\**\s*[:.)-]\s*)?", re.IGNORECASE)

CASES = {
    "marker, N spaces, a character": ("The answer is good. [RESULT] 4{}x", " "),
    "marker, N newlines": ("The answer is good. [RESULT] 4{}", "\n"),
    "choice, N spaces, a character": ("Feedback. [RESULT] A{}x", " "),
    "question label, N spaces, a character": ("Question{}x", " "),
}
NOW = {"marker": parse_result_marker, "choice": parse_result_choice, "question": clean_question}
BEFORE = {"marker": BEFORE_RESULT.search, "choice": BEFORE_CHOICE.search, "question": BEFORE_PREAMBLE.match}
BEFORE_SIZES = (50, 100, 150)  # beyond these the old patterns take seconds to minutes per call
SIZES = (5_000, 100_000)


def median_ms(call, text: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(text)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 4)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for name, (template, filler) in CASES.items():
        kind = name.split(",")[0].split()[0]
        for n in BEFORE_SIZES + SIZES:
            text = template.format(filler * n)
            row = {"case": name, "n": n, "now_ms": median_ms(NOW[kind], text, args.repeats)}
            if n in BEFORE_SIZES:
                row["before_ms"] = median_ms(BEFORE[kind], text, min(args.repeats, 3))
            rows.append(row)
    print(f"{'case':40} {'N':>7} {'now ms':>10} {'before ms':>12}")
    for row in rows:
        before = f"{row['before_ms']:12.3f}" if "before_ms" in row else f"{'(not run)':>12}"
        print(f"{row['case']:40} {row['n']:7d} {row['now_ms']:10.4f} {before}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
