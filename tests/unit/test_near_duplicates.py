"""MinHash near-duplicate detection (pugc.near_duplicates): what it finds, what it leaves, and that it is
the same in every process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pugc.near_duplicates import (PERMUTATIONS, NearDuplicateIndex, band_layout, shingle_hashes, signature, similarity,
                                  word_hashes)

KETTLE = ("Descaling a kettle: fill it halfway with equal parts white vinegar and water, bring it to the boil, "
          "let it sit for an hour, then rinse three times with fresh water. The chalky taste disappears and the "
          "element heats faster, which I did not expect at all from such a cheap trick.")
TENT = ("Our tent leaked at the seams until we sealed them with silicone seam grip on a dry afternoon; two thin "
        "coats, a day apart, and the next storm left the inside bone dry even around the door zip.")


def word_trigram_jaccard(first: str, second: str) -> float:
    def grams(text: str) -> set:
        words = text.lower().replace(",", " ").replace(".", " ").replace(":", " ").replace(";", " ").split()
        return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}

    a, b = grams(first), grams(second)
    return len(a & b) / len(a | b)


def test_identical_documents_have_identical_signatures_and_are_matched():
    assert np.array_equal(signature(KETTLE), signature(KETTLE))
    index = NearDuplicateIndex(0.8)
    assert index.match("a", KETTLE) is None
    assert index.match("b", KETTLE) == ("a", 1.0)
    assert index.documents == 1  # a match does not join the index


def test_case_and_punctuation_do_not_change_the_shingles():
    assert np.array_equal(shingle_hashes(KETTLE), shingle_hashes(KETTLE.upper().replace(",", " ;")))


def test_a_near_duplicate_above_the_threshold_is_found_with_its_similarity():
    near = KETTLE.replace("three times", "four times")
    assert word_trigram_jaccard(KETTLE, near) > 0.85
    index = NearDuplicateIndex(0.8)
    index.match("a", KETTLE)
    index.match("c", TENT)
    found = index.match("b", near)
    assert found is not None and found[0] == "a" and found[1] >= 0.8


def test_different_documents_are_not_matched():
    index = NearDuplicateIndex(0.8)
    assert index.match("a", KETTLE) is None
    assert index.match("c", TENT) is None
    assert similarity(signature(KETTLE), signature(TENT)) < 0.2
    assert index.documents == 2


def test_a_half_rewritten_document_stays_below_a_high_threshold():
    words = KETTLE.split()
    half = " ".join(words[: len(words) // 2] + [f"other{i}" for i in range(len(words) - len(words) // 2)])
    assert word_trigram_jaccard(KETTLE, half) < 0.5
    index = NearDuplicateIndex(0.8)
    index.match("a", KETTLE)
    assert index.match("b", half) is None


def test_the_estimate_tracks_the_true_jaccard_similarity():
    """Jaccard of 3-gram sets against the signature estimate, on edits of growing size (64 permutations:
    standard error about 0.06)."""
    words = (KETTLE + " " + TENT).split()
    for changed in (2, 6, 12):
        edited = " ".join(f"swap{i}" if i % (len(words) // changed) == 0 else w for i, w in enumerate(words))
        truth = word_trigram_jaccard(" ".join(words), edited)
        estimate = similarity(signature(" ".join(words)), signature(edited))
        assert abs(estimate - truth) < 0.2, (changed, truth, estimate)


def test_short_and_empty_texts_have_signatures():
    assert signature("hello").shape == (PERMUTATIONS,)
    assert np.array_equal(signature("Hello world"), signature("hello, WORLD"))
    assert not np.array_equal(signature("hello world"), signature("world hello"))
    assert signature("...") is None  # no words, no shingles: never similar to another wordless text


def test_ties_break_to_the_smallest_id_and_the_best_match_wins():
    index = NearDuplicateIndex(0.5)
    index.match("z", KETTLE)
    index.match("m", KETTLE + " extra")  # a near-duplicate of z: not indexed
    assert index.documents == 1
    index = NearDuplicateIndex(0.8)
    index.match("b", TENT)
    assert index.match("a", KETTLE) is None
    assert index.match("x", KETTLE) == ("a", 1.0)


def test_band_layout_uses_at_most_all_permutations_and_catches_pairs_at_the_threshold():
    for threshold in (0.5, 0.8, 0.9):
        bands, rows = band_layout(threshold)
        assert bands * rows <= PERMUTATIONS
        assert 1 - (1 - threshold ** rows) ** bands >= 0.9


def test_threshold_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="threshold must be in"):
        NearDuplicateIndex(1.5)


def test_signatures_are_the_same_in_another_process():
    """No salted hash(): a fresh interpreter with a different PYTHONHASHSEED computes the same signatures."""
    code = ("import json, sys; from pugc.near_duplicates import signature; "
            "print(json.dumps([signature(t).tolist() for t in json.loads(sys.argv[1])]))")
    texts = [KETTLE, TENT, "short one"]
    outputs = []
    for seed in ("1", "2"):
        child = subprocess.run([sys.executable, "-c", code, json.dumps(texts)], capture_output=True, text=True,
                               env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        outputs.append(json.loads(child.stdout))
    assert outputs[0] == outputs[1] == [signature(t).tolist() for t in texts]


def test_words_are_the_regex_word_runs_in_any_script():
    """The vectorised word split agrees with `re.findall(r"\\w+")`: each regex word hashes alone to the same
    value, in order (underscores, digits, accents, CJK, combining marks and punctuation included)."""
    import re

    text = "Hello, wörld_1 — ß café İstanbul 日本語x ２３ e\u0301 don't  tab\there... end"
    words = re.findall(r"\w+", text)
    assert words and [int(h) for h in word_hashes(text)] == [int(word_hashes(w)[0]) for w in words]
    assert len(word_hashes("")) == 0 and len(word_hashes(" ,.;")) == 0


def test_band_table_finds_entries_in_its_dict_and_in_its_sorted_runs(monkeypatch):
    """Entries move from the dict into sorted runs (merged as they grow); lookups find them in both,
    repeated keys included, and nothing for keys never added."""
    from pugc.near_duplicates import BandTable

    monkeypatch.setattr(BandTable, "FLUSH_ENTRIES", 4)
    table = BandTable()
    for number in range(40):
        table.add([number * 7, 1000 + number % 3], number)
    assert table.runs and len(table.runs) < 10
    assert table.lookup([7 * 5]) == {5}
    assert table.lookup([1001]) == {n for n in range(40) if n % 3 == 1}
    assert table.lookup([7 * 39, 3]) == {39}
    assert table.lookup([999_999]) == set()


def test_matches_survive_the_move_into_sorted_runs(monkeypatch):
    from pugc.near_duplicates import BandTable

    monkeypatch.setattr(BandTable, "FLUSH_ENTRIES", 16)
    index = NearDuplicateIndex(0.8)
    index.match("kettle", KETTLE)
    for n in range(30):
        assert index.match(f"other-{n}", f"{TENT} variant {n} " + " ".join(f"w{n}x{i}" for i in range(40))) is None
    assert index.table.runs
    assert index.match("again", KETTLE.replace("three times", "four times"))[0] == "kettle"
