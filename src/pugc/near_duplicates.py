"""Near-duplicate detection: MinHash signatures over word 3-grams, banded LSH, Jaccard check on candidates.

A document is a near-duplicate when the estimated Jaccard similarity of its word 3-gram sets with an earlier
kept document reaches the threshold. Everything is deterministic across processes and machines: words hash
as polynomials of their code points in 64-bit integer arithmetic (never Python's salted `hash()`), and the
64 hash permutations derive from SHA-256 of fixed labels. Words, shingles and all permutations are computed
with numpy, with no Python call per word, which keeps ingest at thousands of documents per second on one core.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

SHINGLE_WORDS = 3
PERMUTATIONS = 64
FALSE_POSITIVE_WEIGHT = 0.05
LOW_32 = np.uint64(0xFFFFFFFF)
# splitmix64's finalizer constants: mix the three word hashes of a shingle into one 64-bit value
MIX_1, MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
WORD_WEIGHTS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(1))


def _mix(values: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mix (uint64 arithmetic wraps, which is the point)."""
    values = values ^ (values >> np.uint64(30))
    values = values * MIX_1
    values = values ^ (values >> np.uint64(27))
    values = values * MIX_2
    return values ^ (values >> np.uint64(31))


def _permutation_parameters() -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the multiply-shift hashes ((a*x + b) mod 2^64) >> 32 of 32-bit x: a odd, both 64-bit."""
    digests = [hashlib.sha256(f"pugc-minhash-{i}".encode()).digest() for i in range(PERMUTATIONS)]
    a = np.array([int.from_bytes(d[:8], "big") | 1 for d in digests], dtype=np.uint64)
    b = np.array([int.from_bytes(d[8:16], "big") for d in digests], dtype=np.uint64)
    return a[:, None], b[:, None]


A, B = _permutation_parameters()


def _powers(base: int, count: int) -> np.ndarray:
    """base^0 .. base^(count-1) modulo 2^64."""
    powers = np.full(count, base, dtype=np.uint64)
    powers[0] = 1
    return np.cumprod(powers, dtype=np.uint64)


class _Powers:
    """Powers of the character base and of its inverse modulo 2^64, grown on demand."""

    def __init__(self):
        self.forward = self.inverse = np.ones(0, dtype=np.uint64)

    def upto(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        if count > len(self.forward):
            size = max(count, 2 * len(self.forward), 4096)
            self.forward, self.inverse = _powers(CHAR_BASE, size), _powers(CHAR_BASE_INVERSE, size)
        return self.forward, self.inverse


CHAR_BASE = 0x100000001B3  # odd, so it has an inverse modulo 2^64
CHAR_BASE_INVERSE = pow(CHAR_BASE, -1, 1 << 64)
POWERS = _Powers()
# regex \w on ASCII: letters, digits, underscore; other code points are looked up with str.isalnum (as re does)
ASCII_WORD = np.array([chr(c).isalnum() or chr(c) == "_" for c in range(128)] + [False], dtype=bool)


def word_hashes(text: str) -> np.ndarray:
    """A 64-bit hash of each word (a run of regex \\w characters) of `text`, in order. Vectorised: each word's
    hash is a polynomial in its code points, read off prefix sums, so no Python call per word."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    is_word = ASCII_WORD[np.minimum(codes, 128)]
    wide = codes > 127
    if wide.any():
        for code in np.unique(codes[wide]).tolist():
            if chr(code).isalnum():
                is_word[codes == code] = True
    edges = np.diff(is_word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    forward, inverse = POWERS.upto(len(codes) + 1)
    prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
    np.cumsum((codes.astype(np.uint64) + np.uint64(1)) * forward[: len(codes)], out=prefix[1:])
    return _mix((prefix[ends] - prefix[starts]) * inverse[starts] + (ends - starts).astype(np.uint64))


def shingle_hashes(text: str) -> np.ndarray:
    """32-bit hashes of the text's lower-cased word 3-grams (one shingle of all words when there are fewer;
    none for a text without words)."""
    hashes = word_hashes(text.lower())
    width = min(SHINGLE_WORDS, len(hashes))
    if width == 0:
        return np.zeros(0, dtype=np.uint64)
    count = len(hashes) - width + 1
    combined = np.zeros(count, dtype=np.uint64)
    for offset in range(width):
        combined = _mix(combined + hashes[offset:offset + count] * WORD_WEIGHTS[SHINGLE_WORDS - width + offset])
    return combined & LOW_32


def signature(text: str) -> np.ndarray | None:
    """The MinHash signature: for each of the 64 permutations, the least permuted shingle hash (uint32).
    None for a text without words: it has no shingles to be similar by."""
    shingles = shingle_hashes(text)
    if not len(shingles):
        return None
    permuted = (A * shingles[None, :] + B) >> np.uint64(32)
    return permuted.min(axis=1).astype(np.uint32)


def similarity(first: np.ndarray, second: np.ndarray) -> float:
    """Estimated Jaccard similarity: the share of permutations whose minima agree."""
    return float(np.count_nonzero(first == second)) / PERMUTATIONS


def _collision_probability(bands: int, rows: int, s: np.ndarray) -> np.ndarray:
    return 1.0 - (1.0 - s ** rows) ** bands


@lru_cache(maxsize=None)
def band_layout(threshold: float) -> tuple[int, int]:
    """(bands, rows per band) minimising the weighted false-positive area below the threshold plus the
    false-negative area above it, over the Jaccard similarity. False negatives weigh 19 times more: a missed
    candidate is a missed duplicate, an extra one costs a signature comparison. At 0.8 this gives 10 bands
    of 6 rows, which makes a pair at the threshold a candidate with probability 0.95 (equal weights: 0.36)."""
    below = np.linspace(0.0, threshold, 1001)
    above = np.linspace(threshold, 1.0, 1001)
    best = None
    for bands in range(1, PERMUTATIONS + 1):
        for rows in range(1, PERMUTATIONS // bands + 1):
            false_positive = np.trapezoid(_collision_probability(bands, rows, below), below)
            false_negative = np.trapezoid(1.0 - _collision_probability(bands, rows, above), above)
            error = FALSE_POSITIVE_WEIGHT * false_positive + (1.0 - FALSE_POSITIVE_WEIGHT) * false_negative
            if best is None or error < best[0] - 1e-12:
                best = (error, bands, rows)
    return best[1], best[2]


class BandTable:
    """LSH band key -> numbers of the documents with that band. New entries go to a dict; every
    FLUSH_ENTRIES they move into sorted numpy runs (12 bytes an entry instead of about 90 in a dict), a run
    merged with the last one while that is no larger, so a lookup searches a few sorted arrays."""

    FLUSH_ENTRIES = 1 << 16

    def __init__(self):
        self.recent: dict[int, int | list[int]] = {}
        self.recent_entries = 0
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted keys, document numbers)

    def add(self, keys: list[int], number: int) -> None:
        for key in keys:
            bucket = self.recent.get(key)
            if bucket is None:
                self.recent[key] = number
            elif isinstance(bucket, int):
                self.recent[key] = [bucket, number]
            else:
                bucket.append(number)
        self.recent_entries += len(keys)
        if self.recent_entries >= self.FLUSH_ENTRIES:
            self._flush()

    def lookup(self, keys: list[int]) -> set[int]:
        found: set[int] = set()
        for key in keys:
            bucket = self.recent.get(key)
            if bucket is not None:
                found.update((bucket,) if isinstance(bucket, int) else bucket)
        if self.runs:
            query = np.array(keys, dtype=np.uint64)
            for sorted_keys, numbers in self.runs:
                low = np.searchsorted(sorted_keys, query, "left")
                high = np.searchsorted(sorted_keys, query, "right")
                for i in np.flatnonzero(high > low).tolist():
                    found.update(numbers[low[i]:high[i]].tolist())
        return found

    def _flush(self) -> None:
        keys: list[int] = []
        numbers: list[int] = []
        for key, bucket in self.recent.items():
            members = (bucket,) if isinstance(bucket, int) else bucket
            keys.extend([key] * len(members))
            numbers.extend(members)
        self.recent.clear()
        self.recent_entries = 0
        run_keys, run_numbers = np.array(keys, dtype=np.uint64), np.array(numbers, dtype=np.int32)
        while self.runs and len(self.runs[-1][0]) <= len(run_keys):
            last_keys, last_numbers = self.runs.pop()
            run_keys, run_numbers = np.concatenate([last_keys, run_keys]), np.concatenate([last_numbers, run_numbers])
        order = np.argsort(run_keys, kind="stable")
        self.runs.append((run_keys[order], run_numbers[order]))


class NearDuplicateIndex:
    """Kept documents' signatures and their LSH band keys (`BandTable`). `match` finds the most similar
    earlier document at or above the threshold; only documents that are not near-duplicates are added, as
    ingest keeps them."""

    def __init__(self, threshold: float):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.bands, self.rows = band_layout(threshold)
        self.band_salts = _mix(np.arange(1, self.bands + 1, dtype=np.uint64))
        self.ids: list[str] = []
        self.signatures = np.empty((1024, PERMUTATIONS), dtype=np.uint32)
        self.table = BandTable()

    @property
    def documents(self) -> int:
        return len(self.ids)

    def _band_keys(self, sig: np.ndarray) -> list[int]:
        rows = sig[: self.bands * self.rows].astype(np.uint64).reshape(self.bands, self.rows)
        keys = self.band_salts.copy()
        for column in range(self.rows):
            keys = _mix(keys + rows[:, column])
        return keys.tolist()

    def _add(self, doc_id: str, sig: np.ndarray, keys: list[int]) -> None:
        number = len(self.ids)
        if number == len(self.signatures):
            self.signatures = np.concatenate([self.signatures, np.empty_like(self.signatures)])
        self.signatures[number] = sig
        self.ids.append(doc_id)
        self.table.add(keys, number)

    def match(self, doc_id: str, text: str) -> tuple[str, float] | None:
        """(earlier document id, estimated Jaccard) of the most similar kept document at or above the
        threshold (ties: the smallest id), or None, in which case this document joins the index. A document
        without words is never a near-duplicate (only the exact-text check can match it) and is not indexed:
        else every such document would share one empty shingle set."""
        sig = signature(text)
        if sig is None:
            return None
        keys = self._band_keys(sig)
        candidates = sorted(self.table.lookup(keys), key=self.ids.__getitem__)
        best = None
        if candidates:
            agree = np.count_nonzero(self.signatures[candidates] == sig, axis=1) / PERMUTATIONS
            for number, score in zip(candidates, agree.tolist()):
                if score >= self.threshold and (best is None or score > best[1]):
                    best = (self.ids[number], score)
        if best is None:
            self._add(doc_id, sig, keys)
        return best
