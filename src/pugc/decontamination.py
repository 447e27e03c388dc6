"""Decontamination: training questions (and their UGC documents) that contain an evaluation prompt are not
trained on, so a win rate measures alignment, not memory.

The method is the benchmarks' own n-gram overlap, as in Phi-1, Cosmopedia and Tulu 3's decontamination: text
is normalised (Unicode NFKC, case-folded, every run of non-alphanumeric characters a single space) and split
into words; a sample sharing any word n-gram (n = `ngram`, default 8) with an evaluation prompt is a
candidate, and it is contaminated when the words of the prompt that `difflib` matches in order, in a window of
the sample around the shared n-gram, cover at least `threshold` (default 0.5) of the prompt. A prompt shorter
than n words is its own single n-gram. A verbatim copy covers 1.0; a lightly edited one stays above the
threshold; a sample that shares only common phrases stays below it. The work per sample is linear in its
length (each n-gram is one lookup; each confirmation is bounded by three prompt lengths).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Iterable

NON_WORD = re.compile(r"[\W_]+")
MAX_CANDIDATES = 16  # prompts confirmed per sample at most (a sample matching many is contaminated by the first)


def words(text: str) -> list[str]:
    return NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split()


@dataclass(frozen=True)
class Match:
    prompt_set: str
    prompt: object  # the prompt's line in its file, or a held-out question's id
    overlap: float


@dataclass
class ContaminationIndex:
    ngram: int = 8
    threshold: float = 0.5
    prompts: list[tuple[str, int, list[str]]] = field(default_factory=list)
    grams: dict[tuple, list[int]] = field(default_factory=dict)
    short_lengths: set[int] = field(default_factory=set)

    def add(self, prompt_set: str, position: int, text: str) -> None:
        tokens = words(text)
        if not tokens:
            return
        index = len(self.prompts)
        self.prompts.append((prompt_set, position, tokens))
        size = min(self.ngram, len(tokens))
        if size < self.ngram:
            self.short_lengths.add(size)
        for start in range(len(tokens) - size + 1):
            entry = self.grams.setdefault(tuple(tokens[start:start + size]), [])
            if not entry or entry[-1] != index:
                entry.append(index)

    def __len__(self) -> int:
        return len(self.prompts)

    def match(self, text: str) -> Match | None:
        """The first evaluation prompt this text contains (verbatim or lightly edited), or None."""
        if not self.prompts:
            return None
        tokens = words(text)
        tried: set[int] = set()
        for size in sorted({self.ngram, *self.short_lengths}, reverse=True):
            for start in range(len(tokens) - size + 1):
                for index in self.grams.get(tuple(tokens[start:start + size]), ()):
                    if index in tried or len(tried) >= MAX_CANDIDATES:
                        continue
                    tried.add(index)
                    found = self._confirm(index, tokens, start)
                    if found:
                        return found
        return None

    def _confirm(self, index: int, tokens: list[str], start: int) -> Match | None:
        prompt_set, position, prompt = self.prompts[index]
        window = tokens[max(0, start - len(prompt)):start + 2 * len(prompt)]
        matcher = SequenceMatcher(None, prompt, window, autojunk=False)
        overlap = sum(block.size for block in matcher.get_matching_blocks()) / len(prompt)
        return Match(prompt_set, position, round(overlap, 3)) if overlap >= self.threshold else None


def benchmark_text(row: dict) -> str | None:
    """The prompt of a benchmark row in the formats evaluation reads: AlpacaEval (`instruction`), MT-Bench
    (`turns`, every turn), or a plain `prompt`."""
    if isinstance(row.get("instruction"), str):
        return row["instruction"]
    if isinstance(row.get("turns"), list):
        return "\n".join(t for t in row["turns"] if isinstance(t, str))
    if isinstance(row.get("prompt"), str):
        return row["prompt"]
    return None


def add_prompt_files(index: ContaminationIndex, uris: Iterable[str]) -> None:
    """Every prompt of these JSONL files (or JSON arrays, as alpaca_eval ships its sets); a line that is not a
    JSON row is the evaluation's to report, and skipped here."""
    from pathlib import Path

    from pugc.io import iter_input_rows

    for uri in uris:
        rows = _json_array_rows(uri) if str(uri).endswith(".json") else (
            (line, row) for _, line, row, error in iter_input_rows(uri, "jsonl") if error is None)
        for line, row in rows:
            if isinstance(row, dict) and (text := benchmark_text(row)):
                index.add(Path(uri).name, line, text)


def _json_array_rows(uri: str):
    from pugc.stages.benchmarks import read_rows

    return read_rows(uri, "evaluation.decontamination")
