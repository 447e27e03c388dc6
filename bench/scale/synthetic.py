"""Deterministic synthetic data for the scale benchmark, cached under bench/.cache/scale/.

Two kinds, both plain content with no project record types (the adapters in tasks.py turn them into the
files each entry point reads, so a change of record format touches only the adapters):

- UGC: JSONL lines of about 300 words each, with planted exact duplicates, near-duplicates (a few words
  changed: word 3-gram Jaccard about 0.9) and malformed lines (not JSON, not an object, no text, empty text).
- questions: one per document, each with K responses and, per response, N judge verdicts (1-5; a few
  unparsable) and the judge's short feedback.

Same size and seed, same bytes, on any machine: random.Random with a fixed seed, no hash().
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterator

VERSION = 1  # bump when the generated content changes: the cache key includes it
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "scale"
WORDS_PER_DOCUMENT = 300
NEAR_DUPLICATE_EVERY = 40  # 2.5% of lines
EXACT_DUPLICATE_EVERY = 97
MALFORMED_EVERY = 211
K_RESPONSES = 5
N_JUDGE_SAMPLES = 8
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "pe", "da", "gu", "zi", "ba", "fo", "ha", "je")


def vocabulary(size: int = 6000, seed: int = 7) -> tuple[list[str], list[float]]:
    """Made-up words with Zipf-like cumulative weights: frequent short words, a long tail."""
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    cumulative, total = [], 0.0
    for rank in range(1, size + 1):
        total += 1.0 / rank
        cumulative.append(total)
    return words, cumulative


def _text(rng: random.Random, words: list[str], cumulative: list[float], count: int) -> str:
    chosen = rng.choices(words, cum_weights=cumulative, k=count)
    sentences = [" ".join(chosen[i:i + 15]).capitalize() + "." for i in range(0, count, 15)]
    return " ".join(sentences)


def _near_copy(rng: random.Random, text: str) -> str:
    """The text with three words replaced: a near-duplicate at word 3-gram Jaccard about 0.94."""
    tokens = text.split(" ")
    for position in rng.sample(range(len(tokens)), 3):
        tokens[position] = "edited"
    return " ".join(tokens)


MALFORMED = ('{"id": "broken", "text": "unterminated', '["a list", "not an object"]', '{"id": "no-text"}',
             '{"id": "empty", "text": "   "}')


def ugc_lines(documents: int, seed: int = 1) -> Iterator[str]:
    """`documents` JSONL lines: mostly fresh documents, with duplicates, near-duplicates and malformed lines."""
    rng = random.Random(seed)
    words, cumulative = vocabulary()
    recent: list[str] = []
    for number in range(documents):
        if number and number % MALFORMED_EVERY == 0:
            yield MALFORMED[number // MALFORMED_EVERY % len(MALFORMED)]
            continue
        if recent and number % EXACT_DUPLICATE_EVERY == 0:
            text = rng.choice(recent)
        elif recent and number % NEAR_DUPLICATE_EVERY == 0:
            text = _near_copy(rng, rng.choice(recent))
        else:
            text = _text(rng, words, cumulative, WORDS_PER_DOCUMENT)
            recent = (recent + [text])[-500:]
        yield json.dumps({"id": f"post-{number}", "text": text, "source": "synthetic"})


def questions(count: int, seed: int = 2) -> Iterator[dict]:
    """`count` questions, each {id, doc_id, document, instruction, responses: [{text, verdicts, feedback}]}:
    K responses of about 80 words, N verdicts each (None where the judge's text did not parse)."""
    rng = random.Random(seed)
    words, cumulative = vocabulary()
    documents = [_text(rng, words, cumulative, WORDS_PER_DOCUMENT) for _ in range(200)]
    answers = [_text(rng, words, cumulative, 80) for _ in range(1000)]
    feedback = [_text(rng, words, cumulative, 25) for _ in range(300)]
    for number in range(count):
        responses = []
        for _ in range(K_RESPONSES):
            level = rng.randint(1, 5)
            verdicts = [None if rng.random() < 0.02 else min(5, max(1, level + rng.randint(-1, 1)))
                        for _ in range(N_JUDGE_SAMPLES)]
            responses.append({"text": rng.choice(answers), "verdicts": verdicts,
                              "feedback": [f"{rng.choice(feedback)} [RESULT] {v if v else 'unclear'}" for v in verdicts]})
        yield {"id": f"q-{number}", "doc_id": f"post-{number}", "document": documents[number % len(documents)],
               "instruction": _text(rng, words, cumulative, 15).rstrip(".") + "?", "responses": responses}


def cached_ugc(documents: int) -> Path:
    """The UGC file of this size, generated once (written to a temporary name, then renamed)."""
    path = CACHE / f"ugc-v{VERSION}-{documents}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with open(partial, "w", encoding="utf-8") as out:
            for line in ugc_lines(documents):
                out.write(line + "\n")
        partial.replace(path)
    return path
