"""The personal-data screen (pugc.personal_data): every planted type found and redacted, look-alikes left,
checksums required, actions per type, counts never values, hostile text in linear time."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pugc.config import InputConfig, InstructionGenConfig, PersonalDataConfig, ResponseSamplingConfig, build
from pugc.personal_data import (PLACEHOLDERS, TYPES, PersonalDataScreen, find, iban_valid, luhn_valid)
from pugc.records import Document, Instruction
from pugc.stage_runner import run_ingest
from pugc.stages import instruction_gen, response_sampling
from tests.fakes import FakeEngine
from tests.planted_pii import NOT_PERSONAL, PLANTED, SENTENCE, SEPARATED, planted_values

REDACT_ALL = PersonalDataScreen({})


@pytest.mark.parametrize("kind, value", planted_values())
def test_each_planted_value_is_found_as_its_type_and_replaced_by_its_placeholder(kind, value):
    text = SENTENCE.format(value)
    found = find(text)
    assert [(f.kind, text[f.start:f.end]) for f in found] == [(kind, value)]
    screened = REDACT_ALL.screen(text)
    assert screened.text == SENTENCE.format(PLACEHOLDERS[kind]) and screened.found == {kind: 1}


@pytest.mark.parametrize("text", NOT_PERSONAL)
def test_look_alikes_are_left_as_they_are(text):
    assert find(text) == [] and REDACT_ALL.screen(text).text == text


def test_a_card_needs_its_luhn_check_and_an_iban_its_mod_97():
    assert luhn_valid("4111 1111 1111 1111") and not luhn_valid("4111 1111 1111 1112")
    assert not luhn_valid("0000 0000 0000")  # 12 digits: too short for a card, whatever the checksum
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE88 3704 0044 0532 0130 00")
    # an IBAN followed by capitals is still found: the candidate is trimmed until its check holds
    text = "Pay DE89 3704 0044 0532 0130 00 EUR today"
    assert [text[f.start:f.end] for f in find(text)] == ["DE89 3704 0044 0532 0130 00"]


def test_each_type_takes_its_own_action_and_is_counted_whatever_it_is():
    text = "Mail jane.doe@example.com, card 4111 1111 1111 1111, see https://example.org/x."
    screen = PersonalDataScreen({"email": "keep", "card": "drop"})
    screened = screen.screen(text)
    assert screened.drop == ("card",) and screened.found == {"email": 1, "card": 1, "url": 1}
    assert screened.text == "Mail jane.doe@example.com, card 4111 1111 1111 1111, see [URL]."
    assert screened.drop_detail() == "holds 1 card" and "4111" not in screened.drop_detail()


def test_a_recipe_section_checks_its_actions_and_region():
    with pytest.raises(Exception, match=r"input.personal_data.email: 'hide' is not one of"):
        build(InputConfig, {"personal_data": {"email": "hide"}}, "input")
    with pytest.raises(ValueError, match=r"input.personal_data.phone_region: 'XX' is not a region"):
        PersonalDataScreen.for_config(PersonalDataConfig(phone_region="XX"), "input.personal_data")
    assert set(PersonalDataConfig().actions().values()) == {"redact"} and tuple(PersonalDataConfig().actions()) == TYPES


def test_phone_region_reads_national_numbers():
    assert [f.kind for f in find("Ring 030 12345678 today", phone_region="DE")] == ["phone"]


# ------------------------------------------------------------------------------------------- hostile text
PIECES = ["@", ".", "-", " ", "\n", "1", "4", "9", "0", "DE89", "a", "Z", ":", "/", "http://", "www.", "(", ")",
          "+", "Street", "straße", "\ud83d", "\x00", "é", "[EMAIL]", "jane.doe@example.com", "4111 1111 1111 1111"]
hostile_text = st.lists(st.tuples(st.sampled_from(PIECES), st.integers(1, 3000)), max_size=30).map(
    lambda parts: "".join(piece * count for piece, count in parts)[:60_000])
ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=300)  # lone surrogates included
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(text=hostile_text)
def test_hostile_text_is_screened_in_linear_time(text):
    started = time.perf_counter()
    REDACT_ALL.screen(text)
    assert time.perf_counter() - started < 2.0, f"{len(text)} characters took {time.perf_counter() - started:.2f}s"


@settings(max_examples=300, deadline=None)
@given(text=ANY_TEXT | hostile_text.map(lambda text: text[:3000]))
def test_redaction_never_raises_and_is_idempotent(text):
    once = REDACT_ALL.screen(text).text
    assert REDACT_ALL.screen(once).text == once


@settings(max_examples=300, deadline=None)
@given(before=ANY_TEXT, after=ANY_TEXT, planted=st.sampled_from(planted_values()))
def test_no_planted_value_survives_redaction_whatever_surrounds_it(before, after, planted):
    kind, value = planted
    redacted = REDACT_ALL.screen(SEPARATED.format(before, value, after)).text
    assert redacted.count(value) <= (before + after).count(value)  # only copies the surroundings themselves held


# ------------------------------------------------------------------------------------------- the stages
def rows_with_planted_values():
    rows = [{"id": "clean", "text": "How long should sourdough rest before baking in a cold kitchen?"}]
    for kind, values in PLANTED.items():
        rows.append({"id": kind, "text": f"Question about {kind} number {len(rows)}: ask " + " or ".join(values)
                     + " for the details of the bread recipe."})
    return rows


def ingest_rows(tmp_path, rows, section):
    source = tmp_path / "ugc.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    report = run_ingest(str(source), {"near_duplicates": False, **section}, str(tmp_path / "docs.jsonl"),
                        str(tmp_path / "quarantine.jsonl"), str(tmp_path / "dropped.jsonl"))
    read = lambda name: [json.loads(x) for x in (tmp_path / name).read_text(encoding="utf-8").splitlines()]  # noqa: E731
    return report, read("docs.jsonl"), read("dropped.jsonl")


def test_ingest_redacts_every_planted_value_by_default_and_counts_them_by_type(tmp_path):
    report, documents, dropped = ingest_rows(tmp_path, rows_with_planted_values(), {})
    assert len(documents) == len(PLANTED) + 1 and not dropped
    text = "\n".join(d["text"] for d in documents)
    assert not [value for _, value in planted_values() if value in text]
    assert all(PLACEHOLDERS[kind] in text for kind in TYPES)
    assert {k: v for k, v in report["metrics"].items() if k.startswith("personal_data_")} == {
        f"personal_data_{kind}": float(len(values)) for kind, values in PLANTED.items()}


def test_ingest_drops_what_the_recipe_drops_and_accounts_for_every_document(tmp_path):
    section = {"personal_data": {"card": "drop", "iban": "drop", "email": "keep"}}
    report, documents, dropped = ingest_rows(tmp_path, rows_with_planted_values(), section)
    assert {d["record_id"]: d["reason"] for d in dropped} == {"card": "personal_data", "iban": "personal_data"}
    counts = report["counts"]
    assert counts["in"] == counts["out"] + sum(counts["dropped"].values()) == len(PLANTED) + 1
    assert counts["dropped"] == {"personal_data": 2}
    details = " ".join(d["detail"] for d in dropped)
    assert "holds 4 card" in details and "holds 3 iban" in details
    assert not [value for kind, value in planted_values() if value in details or value.replace(" ", "") in details]
    kept = {d["id"]: d["text"] for d in documents}
    assert all(value in kept["email"] for value in PLANTED["email"])  # kept as the recipe says, still counted
    assert report["metrics"]["personal_data_email"] == 3.0


def test_questions_and_responses_are_screened_with_their_stage_own_actions():
    documents = [Document(id=f"d{i}", text=f"document {i}") for i in range(3)]
    questions = {"document 0": "Can I call (212) 555-0147 about it?", "document 1": "Is 4111 1111 1111 1111 valid?",
                 "document 2": "What is sourdough?"}
    engine = FakeEngine(reply=lambda text, i: next(q for d, q in questions.items() if d in text))
    config = InstructionGenConfig(personal_data=PersonalDataConfig(card="drop"))
    result = instruction_gen.run(documents, config, engine)
    assert [q.instruction for q in result.kept] == ["Can I call [PHONE] about it?", "What is sourdough?"]
    assert result.counts == {"in": 3, "out": 2, "dropped": {"personal_data": 1}}
    assert result.metrics["personal_data_phone"] == 1.0 and result.metrics["personal_data_card"] == 1.0

    asked = [Instruction(id=f"i{i}", doc_id=f"d{i}", instruction=f"question {i}") for i in range(2)]
    replies = {("question 0", 0): "Write to jane.doe@example.com", ("question 0", 1): "Ask @jane_doe",
               ("question 1", 0): "Pay DE89 3704 0044 0532 0130 00", ("question 1", 1): "Pay GB82WEST12345698765432"}
    engine = FakeEngine(reply=lambda text, i: replies[(text, i)])
    config = ResponseSamplingConfig(k=2, personal_data=PersonalDataConfig(handle="drop", iban="drop"))
    result = response_sampling.run(asked, config, engine)
    assert [(r.id, r.response) for r in result.kept] == [("i0-0", "Write to [EMAIL]")]  # the handle's sample left out
    assert result.counts == {"in": 2, "out": 1, "dropped": {"personal_data": 1}}
    assert "2 iban" in result.dropped[0].detail and "DE89" not in result.dropped[0].detail
    assert (result.metrics["personal_data_iban"], result.metrics["personal_data_email"]) == (2.0, 1.0)


def test_counts_by_type_reach_the_summary_through_the_lineage(tmp_path):
    """As a cluster hands lineage back: flattened to artifact metadata and read again by run_summary."""
    from pugc.lineage import decode, encode
    from pugc.summary import markdown_report, summarize

    report, _, _ = ingest_rows(tmp_path, rows_with_planted_values(), {})
    lineage = {"stage": "ingest_ugc", "rows_in": report["counts"]["in"], "rows_out": report["counts"]["out"],
               "dropped": report["counts"]["dropped"], "metrics": report["metrics"],
               "input_lines": report["input_lines"], "quarantined": report["quarantined"]}
    summary = summarize([decode(encode(lineage))])
    assert summary["personal_data"] == {"ingest_ugc": {kind: len(values) for kind, values in PLANTED.items()}}
    assert "personal data found: ingest_ugc email 3, phone 5" in markdown_report(summary)


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml")))
def test_every_shipped_recipe_redacts_every_type_at_ingest_and_in_questions_and_responses(name):
    from pugc.config import load_recipe

    recipe = load_recipe(name)
    for section in (recipe.input, recipe.instruction_gen, recipe.response_sampling):
        assert set(section.personal_data.actions().values()) == {"redact"}, name
