"""Decontamination at held_out_split (pugc.decontamination): a training question that contains an evaluation
prompt, verbatim or lightly edited, or whose UGC document does, is dropped as `contaminated` with the prompt
set named, before any sampling; so is one that repeats a held-out question. Everything else passes."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pugc.decontamination import ContaminationIndex, words
from pugc.evaluation import run_held_out_split
from pugc.records import Instruction
from pugc.stages.evaluate import is_held_out

ALPACA = "Write a short story about a lighthouse keeper who discovers a message in a bottle."
MT_BENCH = ["Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural experiences.",
            "Rewrite your previous response. Start every sentence with the letter A."]
COMMON = "Can you give me some advice on how to get started?"  # everyday words
# an evaluation prompt that opens with the same ten words: a question sharing only them is not contaminated
LONG_PROMPT = (COMMON[:-1] + " with investing in low-cost index funds while I am still paying off student loans "
               "each month?")


def planted(tmp_path):
    """(questions, documents, the reason each question ends with)."""
    rows = {
        "verbatim": (f"Please help: {ALPACA}", "A forum post about boats.", "contaminated"),
        "edited": ("write a SHORT story about a lighthouse-keeper that discovers a message in a glass bottle!",
                   "Another post.", "contaminated"),
        "in_document": ("How do I plan a trip?", f"Last year I wondered: {MT_BENCH[0]} Here is what I did.",
                        "contaminated"),
        "clean": ("How do I keep basil alive indoors in winter?", "South window, water sparingly.", None),
        "common_phrase": (COMMON + " I want to learn the ukulele.", "Buy a cheap one first.", None),
    }
    questions = [Instruction(id=name, doc_id=f"d-{name}", instruction=q) for name, (q, _, _) in rows.items()]
    documents = [{"id": f"d-{name}", "text": doc} for name, (_, doc, _) in rows.items()]
    return questions, documents, {name: reason for name, (_, _, reason) in rows.items()}


def write(path, rows):
    path.write_text("".join(json.dumps(r if isinstance(r, dict) else r.__dict__) + "\n" for r in rows))
    return str(path)


def split(tmp_path, questions, documents, section):
    report = run_held_out_split(write(tmp_path / "questions.jsonl", questions), section, str(tmp_path / "train.jsonl"),
                                str(tmp_path / "eval.jsonl"), str(tmp_path / "dropped.jsonl"),
                                write(tmp_path / "docs.jsonl", documents))
    dropped = [json.loads(line) for line in (tmp_path / "dropped.jsonl").read_text().splitlines()]
    kept = [json.loads(line)["id"] for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    return report, kept, dropped


def test_questions_or_documents_holding_an_evaluation_prompt_never_reach_sampling(tmp_path):
    questions, documents, reasons = planted(tmp_path)
    alpaca = write(tmp_path / "alpaca_eval.jsonl", [{"instruction": ALPACA, "output": "ref", "generator": "gpt4"},
                                                    {"instruction": LONG_PROMPT, "output": "ref", "generator": "gpt4"}])
    mt_bench = write(tmp_path / "mt_bench.jsonl", [{"question_id": 81, "category": "writing", "turns": MT_BENCH}])
    report, kept, dropped = split(tmp_path, questions, documents,
                                  {"held_out_fraction": 0.0, "prompt_sets": [alpaca], "decontamination": {
                                      "extra_sets": [mt_bench]}})
    assert kept == [name for name, reason in reasons.items() if reason is None] == ["clean", "common_phrase"]
    details = {d["record_id"]: d["detail"] for d in dropped if d["reason"] == "contaminated"}
    assert set(details) == {"verbatim", "edited", "in_document"}
    assert details["verbatim"].startswith("its question contains alpaca_eval.jsonl prompt 1 (100%")
    assert details["in_document"].startswith("its document contains mt_bench.jsonl prompt 1")
    counts = report["counts"]
    assert counts["in"] == counts["out"] + sum(counts["dropped"].values()) and counts["dropped"] == {"contaminated": 3}


def test_a_training_question_that_repeats_a_held_out_one_is_dropped(tmp_path):
    held = next(f"q{i}" for i in range(100) if is_held_out(f"q{i}", 0.5))
    trained = next(f"q{i}" for i in range(100) if not is_held_out(f"q{i}", 0.5))
    text = "What is the safest way to store a wet tent after a long weekend of camping in the rain?"
    questions = [Instruction(id=held, doc_id="d1", instruction=text),
                 Instruction(id=trained, doc_id="d2", instruction=text.replace("safest", "best"))]
    report, kept, dropped = split(tmp_path, questions, [{"id": "d1", "text": "x"}, {"id": "d2", "text": "y"}],
                                  {"held_out_fraction": 0.5})
    assert kept == [] and {d["record_id"]: d["reason"] for d in dropped} == {held: "held_out", trained: "contaminated"}
    assert f"held_out prompt {held}" in next(d["detail"] for d in dropped if d["record_id"] == trained)


def test_switched_off_nothing_is_checked(tmp_path):
    questions, documents, _ = planted(tmp_path)
    alpaca = write(tmp_path / "alpaca_eval.jsonl", [{"instruction": ALPACA}])
    report, kept, _ = split(tmp_path, questions, documents, {"held_out_fraction": 0.0, "prompt_sets": [alpaca],
                                                             "decontamination": {"enabled": False}})
    assert len(kept) == 5 and report["counts"]["dropped"] == {}


WORD = st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd", "Lo")), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(prompt=st.lists(WORD, min_size=3, max_size=30), before=st.text(max_size=200), after=st.text(max_size=200))
def test_a_prompt_inserted_anywhere_is_found_and_no_text_makes_matching_raise(prompt, before, after):
    index = ContaminationIndex(ngram=8, threshold=0.5)
    index.add("set", 1, " ".join(prompt))
    if not words(" ".join(prompt)):
        return
    found = index.match(f"{before} {' '.join(prompt)} {after}")
    assert found is not None and found.prompt_set == "set" and found.overlap >= 0.5
    index.match(before + after)  # arbitrary text: a match or None, never an error


@pytest.mark.parametrize("text, normalised", [("Hello,   WORLD!", ["hello", "world"]), ("ﬁne_print", ["fine", "print"]),
                                              ("", [])])
def test_normalisation_folds_case_width_and_punctuation(text, normalised):
    assert words(text) == normalised


ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=300)  # lone surrogates included


@settings(max_examples=200, deadline=None)
@given(text=ANY_TEXT)
def test_any_text_with_lone_surrogates_is_matched_or_not_without_raising(text):
    index = ContaminationIndex(ngram=8, threshold=0.5)
    index.add("set", 1, "Write a short story about a lighthouse keeper who finds a message in a bottle.")
    assert index.match(text) is None or index.match(text).prompt_set == "set"
    assert all(" " not in word and word for word in words(text))


@pytest.mark.parametrize("text", ["", " " * 100_000, "word " * 20_000, "\ud800" * 1000])
def test_hostile_samples_are_checked_in_bounded_work(text):
    index = ContaminationIndex()
    index.add("set", 1, "Write a short story about a lighthouse keeper who finds a message in a bottle.")
    assert index.match(text) is None
