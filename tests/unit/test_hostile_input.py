"""Untrusted text cannot hang or crash a run: judge outputs, generated questions and input lines of any shape.

Parsers of model output are property-tested with inputs up to 100k characters built from long runs of the
characters that make a backtracking pattern explode (whitespace next to optional tokens). The per-call bound is
loose on purpose (a second, where a call takes microseconds): it catches a parser that backtracks (seconds to
minutes at these sizes), not a slow machine. `bench/parsers.py` prints the real figures.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pugc.checks import check_input
from pugc.config import InputConfig
from pugc.io import iter_input_rows, iter_rows, write_jsonl
from pugc.runner.ingest import run_ingest
from pugc.stages import ingest
from pugc.stages.instruction_gen import clean_question
from pugc.stages.verdicts import parse_rating, parse_result_choice, parse_result_marker, parse_yes_no
from pugc.text import repair_surrogates

FUZZ = Path(__file__).resolve().parents[1] / "data" / "fuzz"
PER_CALL_BOUND_S = 1.0
PARSERS = (parse_result_marker, parse_result_choice, parse_rating, parse_yes_no, clean_question)
# The pieces a hostile text is built from: the verdict marker and the tokens the parsers look for, beside runs of
# every kind of whitespace.
PIECES = ["[RESULT]", "[result]", " ", "\n", "\t", "\r\n", "\u3000", "4", "5", "/", "out of", "Score", ":", "(",
          "[", "A", "B", ".", "*", "Question", "Q", "1", "here is a question", "x", "\ud83d", "\x00", "é"]
hostile_text = st.lists(st.tuples(st.sampled_from(PIECES), st.integers(1, 6000)), max_size=40).map(
    lambda parts: "".join(piece * count for piece, count in parts)[:100_000])
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def timed(parse, text):
    started = time.perf_counter()
    value = parse(text)
    return value, time.perf_counter() - started


@SETTINGS
@given(text=hostile_text)
def test_no_parser_backtracks_on_long_runs(text):
    for parse in PARSERS:
        _, seconds = timed(parse, text)
        assert seconds < PER_CALL_BOUND_S, f"{parse.__name__} took {seconds:.2f}s on {len(text)} characters"


@pytest.mark.parametrize("tail", [" " * 5000 + "x", "\n" * 5000, " " * 5000 + "x" + " " * 5000])
def test_the_issue_inputs_parse_at_once_and_are_not_verdicts(tail):
    for parse in (parse_result_marker, parse_result_choice):
        value, seconds = timed(parse, "The answer is good. [RESULT] 4" + tail)
        assert seconds < PER_CALL_BOUND_S
    assert parse_result_marker("The answer is good. [RESULT] 4" + "\n" * 5000) == 4  # trailing whitespace is fine
    assert parse_result_marker("The answer is good. [RESULT] 4" + " " * 5000 + "x") is None  # text after it is not


@SETTINGS
@given(feedback=hostile_text, score=st.integers(1, 5), space=st.sampled_from(["", " ", "\n" * 3000]))
def test_a_final_marker_is_read_whatever_came_before(feedback, score, space):
    assert parse_result_marker(f"{feedback} [RESULT] {score}{space}") == score
    assert parse_result_choice(f"{feedback} [RESULT] {'AB'[score % 2]}{space}") == float(score % 2 == 0)


@SETTINGS
@given(feedback=hostile_text, score=st.integers(1, 5), after=st.text("abcxyz", min_size=1, max_size=5))
def test_words_after_the_marker_mean_no_verdict(feedback, score, after):
    assert parse_result_marker(f"{feedback} [RESULT] {score} {after}") is None


@pytest.mark.parametrize("text", ["4/10", "4 out of 10", "3.5", "4,5", "Rating: 7/10", "2 / 3", "4/50"])
def test_rating_refuses_other_scales_and_decimals(text):
    assert parse_rating(text) is None


@pytest.mark.parametrize("text, value", [("4/5", 4), ("3.", 3), ("Rating: 5 out of 5", 5), ("4, because", 4),
                                         ("9" * 5000, None)])
def test_rating_reads_its_own_scale(text, value):
    assert parse_rating(text) == value


# ----------------------------------------------------------------------------------------- input lines
def expected_outcomes() -> dict:
    return {name: value for name, value in json.loads((FUZZ / "expected.json").read_text()).items()
            if not name.startswith("_")}


def test_every_fuzz_file_has_an_expectation():
    assert sorted(p.name for p in FUZZ.glob("*.jsonl")) == sorted(expected_outcomes())


@pytest.mark.parametrize("name", sorted(expected_outcomes()))
def test_fuzz_corpus_is_ingested_with_every_line_accounted(name, tmp_path):
    expected = expected_outcomes()[name]
    paths = {kind: tmp_path / kind for kind in ("ugc", "quarantine", "dropped")}
    report = run_ingest(str(FUZZ / name), {"max_malformed_fraction": 1.0}, *map(str, paths.values()))
    quarantined = [row["reason"] for _, row in iter_rows(paths["quarantine"])]
    documents = [row for _, row in iter_rows(paths["ugc"])]
    dropped = list(iter_rows(paths["dropped"]))
    assert len(documents) == expected["documents"]
    assert {r: quarantined.count(r) for r in set(quarantined)} == expected["quarantined"]
    assert len(dropped) == expected.get("duplicates", 0)
    assert len(documents) + len(quarantined) + len(dropped) == report["input_lines"] == \
        len((FUZZ / name).read_bytes().splitlines())
    assert {k.removeprefix("repaired_"): int(v) for k, v in report["metrics"].items()
            if k.startswith("repaired_")} == expected["repaired"]
    for path in paths.values():  # every output is strict UTF-8 JSON another reader can load
        for line in path.read_bytes().splitlines():
            json.loads(line.decode("utf-8"))


def test_a_line_over_the_byte_limit_is_quarantined_unread(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(b'{"text": "' + b"a" * 3000 + b'"}\n{"text": "after the long line"}\n')
    rows = list(iter_input_rows(path, "jsonl", max_line_bytes=1000))
    assert [(line, error.reason if error else None) for _, line, _, error in rows] == [(1, "too_long"), (2, None)]
    assert len(rows[0][2]) <= 1000


@SETTINGS
@given(lines=st.lists(st.binary(max_size=300), min_size=1, max_size=30))
def test_arbitrary_bytes_never_crash_ingest_and_every_line_is_accounted(lines, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bytes")
    path = folder / "input.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b'\n{"text": "one good line"}\n')
    counts = ingest.IngestCounts()
    items = list(ingest.stream(iter_input_rows(path), InputConfig(), counts))
    assert counts.input_lines == len(items) == len(lines) + 1
    assert counts.documents + sum(counts.quarantined.values()) + sum(counts.dropped.values()) == len(items)
    write_jsonl(folder / "out.jsonl", items)  # every item can be written


@SETTINGS
@given(value=st.recursive(st.text(alphabet=st.characters(codec=None), max_size=8) | st.integers(),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                          max_leaves=20))
def test_repaired_values_encode_as_utf8(value):
    repaired, _ = repair_surrogates(value)
    json.dumps(repaired, ensure_ascii=False).encode("utf-8")


def test_a_lone_surrogate_that_reaches_a_writer_round_trips(tmp_path):
    write_jsonl(tmp_path / "x.jsonl", [{"text": "half \ud83d", "key\udc00": 1}])
    assert list(iter_rows(tmp_path / "x.jsonl")) == [(1, {"text": "half \ud83d", "key\udc00": 1})]


def test_the_pre_launch_check_reports_what_ingest_will_quarantine_and_repair(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes((FUZZ / "bom.jsonl").read_bytes() + (FUZZ / "lone_surrogates.jsonl").read_bytes()
                     + (FUZZ / "deep_nesting.jsonl").read_bytes())
    summary = check_input(str(path), InputConfig())
    assert summary.quarantined == {"empty": 1, "too_deep": 3}
    assert summary.repaired == {"lone_surrogates": 4}
    assert "in the first 12 lines: 4 to quarantine (empty 1, too_deep 3), repairs: lone_surrogates 4" in summary.describe()
