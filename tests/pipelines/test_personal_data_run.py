"""The whole tiny pipeline over the sample slice plus documents full of planted personal data (every type,
cards and IBANs with valid checksums): under the default `redact`, no planted value is left anywhere in the
run folder (documents, questions, responses, pairs, rejected records, reports), and the summary counts the
values by type, never naming one."""
import json
from pathlib import Path

import pytest

from pugc.personal_data import TYPES
from tests.planted_pii import NOT_PERSONAL, PLANTED, planted_values

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(screened):
    """The shared screens run (tests/pipelines/conftest.py): the slice, planted unsafe documents, and the
    documents of planted personal data with their look-alikes."""
    return screened.run_dir, screened.summary


def test_no_planted_value_is_left_anywhere_in_the_run(run):
    run_dir, _ = run
    leaks = []
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".json", ".md", ".html", ".txt", ".log", ""):
            text = path.read_text(encoding="utf-8", errors="replace")
            leaks += [(path.relative_to(run_dir), value) for _, value in planted_values() if value in text]
    assert not leaks
    (pairs,) = run_dir.glob("artifacts/*/preference-pairs/preference_pairs")
    assert pairs.stat().st_size > 0  # the pairs were written, and hold none of them


def test_the_planted_documents_reach_the_questions_redacted(run):
    run_dir, _ = run
    (ingested,) = run_dir.glob("artifacts/*/ingest-ugc/ugc")
    documents = {row["id"]: row["text"] for row in map(json.loads, ingested.read_text().splitlines())}
    for kind in PLANTED:
        assert f"[{kind.upper()}]" in documents[f"planted-{kind}"]
    assert all(documents[f"look-alike-{i}"] == text for i, text in enumerate(NOT_PERSONAL))


def test_values_are_counted_by_type_in_the_summary(run):
    run_dir, summary = run
    found = summary["personal_data"]
    # the planted values, plus two private IP addresses the sample slice holds itself
    assert found["ingest_ugc"] == {kind: len(PLANTED[kind]) + (2 if kind == "ip" else 0) for kind in TYPES}
    assert set(found) >= {"ingest_ugc", "instruction_gen", "response_sampling"}
    assert all(list(counts) == list(TYPES) for counts in found.values())
    stages = summary["stages"]
    for stage in ("ingest_ugc", "instruction_gen", "response_sampling"):
        assert stages[stage]["metrics"]["personal_data_card"] >= (4 if stage == "ingest_ugc" else 0)
