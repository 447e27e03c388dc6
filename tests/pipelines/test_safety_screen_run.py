"""The safety screen end to end, on the shared screens run (tests/pipelines/conftest.py): the screen's question
("is this content unsafe?") gets a planted verdict, yes for the planted unsafe documents and no for the rest.
They are dropped as `unsafe` and accounted for in the summary, the rejected records, the console and the merged
artifact's lineage; nothing planted reaches a question or a pair."""
import json
import re

import pytest

pytestmark = pytest.mark.e2e


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_planted_unsafe_documents_are_dropped_and_accounted(screened):
    run_dir, summary, asked = screened.run_dir, screened.summary, screened.asked
    screen = summary["stages"]["safety_screen"]
    assert sorted(asked) == [False] * (screen["in"] - 3) + [True] * 3  # one question per document, greedy
    assert screen["in"] == summary["stages"]["ugc_filter"]["out"] == summary["input_records"] - \
        sum(summary["stages"]["ingest_ugc"]["dropped"].values())
    assert screen["dropped"] == {"unsafe": 3} and screen["in"] == screen["out"] + 3
    assert summary["stages"]["instruction_gen"]["in"] == screen["out"]
    assert screen["metrics"]["harm_mean"] == pytest.approx(3 / screen["in"], abs=1e-4)
    unsafe = [r for r in rows(run_dir / "rejected.jsonl") if r["stage"] == "safety_screen"]
    assert sorted(r["record_id"] for r in unsafe) == ["planted-unsafe-1", "planted-unsafe-2", "planted-unsafe-3"]
    assert all(r["reason"] == "unsafe" and r["detail"] == "harm 1.000 > 0.5" for r in unsafe)


def test_nothing_planted_reaches_a_question_or_a_pair(screened):
    run_dir, summary = screened.run_dir, screened.summary
    assert summary["preference_pairs"] > 0
    pairs = rows(run_dir / "preference_pairs.jsonl")
    assert not [p for p in pairs if p["doc_id"].startswith("planted-unsafe-")]
    (questions,) = run_dir.glob("artifacts/*/merge-shards-3/merged")  # instruction_gen's merged output
    assert rows(questions) and not [q for q in rows(questions) if q["doc_id"].startswith("planted-unsafe-")]


def test_the_console_and_the_lineage_show_the_screen(screened):
    """The summary's stage entry is read from the merged artifact's lineage (its metadata): counts, model, time."""
    summary, console = screened.summary, screened.console
    screen = summary["stages"]["safety_screen"]
    assert re.search(rf"\[3/14\] +safety_screen +in {screen['in']}, out {screen['out']}, dropped unsafe=3", console), \
        console
    assert screen["model"] == "pugc-tiny/generator" and screen["seconds"] is not None
    assert screen["metrics"]["pass_rate"] == pytest.approx(screen["out"] / screen["in"], abs=1e-4)
