"""Consent and language at ingest (pugc.consent): planted documents whose licence is not allowed, whose id,
author or domain is on the opt-out list, or whose language is not kept never reach the document table that
every later stage reads; each is a drop with its reason, and no drop repeats the name or domain that matched."""
import json
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pugc.config import InputConfig
from pugc.consent import OptOutList, _host_listed
from pugc.stage_runner import run_ingest

KEPT = {"id": "keep", "text": "Why does my sourdough starter smell like nail polish remover after a week?",
        "license": "CC-BY-4.0", "author": "Hal", "url": "https://ok.org/8"}
PLANTED = {  # id -> (row changes, the reason it is dropped)
    "author": ({"author": "ANN "}, "opted_out"),
    "listed": ({}, "opted_out"),
    "domain": ({"url": "https://www.forum.blocked.net:8443/t/5"}, "opted_out"),
    "licence": ({"license": "proprietary"}, "license_not_allowed"),
    "unlicensed": ({"license": None}, "license_not_allowed"),
    "german": ({"text": "Wie schärfe ich ein Küchenmesser ohne Schleifstein zu Hause richtig?"}, "language_not_kept"),
    "japanese": ({"text": "雨の後、テントはどこに保管すればいいですか。乾かしてから畳みます。"}, "language_not_kept"),
}
OPT_OUT = "# withdrawn on request\nlisted\nauthor:ann\ndomain:blocked.net   # the whole forum\n"
SECTION = {"license_field": "license", "allowed_licenses": ["cc-by-4.0"], "author_field": "author",
           "url_field": "url", "languages": ["en"], "near_duplicates": False}


def planted_rows():
    rows = [KEPT]
    for number, (doc_id, (changes, _)) in enumerate(PLANTED.items()):
        row = {**KEPT, "id": doc_id, "text": f"{KEPT['text']} Variant {number}: how long should it rest?", **changes}
        rows.append({k: v for k, v in row.items() if v is not None})
    return rows


@pytest.fixture()
def ingested(tmp_path):
    source, opt_out = tmp_path / "ugc.jsonl", tmp_path / "opt-out.txt"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in planted_rows()), encoding="utf-8")
    opt_out.write_text(OPT_OUT)
    report = run_ingest(str(source), {**SECTION, "opt_out": str(opt_out)}, str(tmp_path / "docs.jsonl"),
                        str(tmp_path / "quarantine.jsonl"), str(tmp_path / "dropped.jsonl"))
    read = lambda name: [json.loads(x) for x in (tmp_path / name).read_text(encoding="utf-8").splitlines()]  # noqa: E731
    return report, read("docs.jsonl"), read("dropped.jsonl")


def test_planted_documents_never_reach_the_document_table_and_each_is_accounted(ingested):
    report, documents, dropped = ingested
    assert [d["id"] for d in documents] == ["keep"]
    assert {d["record_id"]: d["reason"] for d in dropped} == {doc_id: reason for doc_id, (_, reason) in PLANTED.items()}
    counts = report["counts"]
    assert counts["in"] == counts["out"] + sum(counts["dropped"].values()) == len(PLANTED) + 1
    assert counts["dropped"] == {"language_not_kept": 2, "license_not_allowed": 2, "opted_out": 3}
    assert report["licenses"] == {"CC-BY-4.0": 1}  # the licences of the documents kept
    # languages are identified on the documents consent let through
    assert {k: v for k, v in report["metrics"].items() if k.startswith("language_")} == {
        "language_de": 1.0, "language_en": 1.0, "language_ja": 1.0}


def test_a_drop_says_which_kind_of_entry_matched_never_the_name_or_domain(ingested):
    _, _, dropped = ingested
    details = {d["record_id"]: d["detail"] for d in dropped}
    assert details["author"].endswith("its author is on the opt-out list")
    assert details["domain"].endswith("its domain is on the opt-out list")
    assert details["listed"].endswith("its document id is on the opt-out list")
    assert not any(word in text.lower() for text in details.values() for word in ("ann", "blocked.net"))
    assert "identified as de" in details["german"] and "'proprietary'" in details["licence"]


def test_an_opt_out_list_is_parsed_strictly_and_needs_the_fields_it_matches_on():
    listed = OptOutList.parse(OPT_OUT.splitlines(), "list")
    assert (listed.ids, listed.authors, listed.domains) == ({"listed"}, {"ann"}, {"blocked.net"})
    with pytest.raises(ValueError, match="list:2: 'author:' names no author"):
        OptOutList.parse(["x", "author:  "], "list")
    with pytest.raises(ValueError, match="input.author_field is not set"):
        listed.check_fields(InputConfig(), "list")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_url_text_is_matched_or_not_without_raising(url):
    assert _host_listed(url, {"blocked.net"}) in (True, False)


@pytest.mark.parametrize("url, listed", [("https://blocked.net/x", True), ("http://a.b.blocked.net", True),
                                         ("blocked.net/path", True), ("https://notblocked.net", False),
                                         ("https://blocked.net.example.com", False), ("http://[::1", False)])
def test_a_domain_entry_covers_its_subdomains_only(url, listed):
    assert _host_listed(url, {"blocked.net"}) is listed


def test_the_ingest_cache_key_changes_when_someone_opts_out(tmp_path):
    """KFP caches ingest by its inputs; the opt-out list's version is part of the input fingerprint."""
    from pugc.components.input_fingerprint import input_fingerprint

    data, opt_out = tmp_path / "ugc.jsonl", tmp_path / "opt-out.txt"
    data.write_text(json.dumps(KEPT) + "\n")
    opt_out.write_text("listed\n")
    before = input_fingerprint.python_func(str(data), str(opt_out))
    opt_out.write_text("listed\nkeep\n")
    assert input_fingerprint.python_func(str(data), str(opt_out)) != before
    assert input_fingerprint.python_func(str(data)) == before.split("-")[0]


@pytest.mark.parametrize("settings_, words", [
    (["input.opt_out=missing.txt"], "input.opt_out .*missing.txt: no such file"),
    (["input.languages=[english]"], "'english' is not an ISO 639-1 code"),
    (["input.languages=[xx]"], "xx not among the"),
    (["input.license_field=license"], "input.license_field and input.allowed_licenses go together"),
])
def test_screens_that_cannot_work_stop_the_run_before_launch(tmp_path, sample_data, settings_, words):
    command = [sys.executable, "-m", "pugc.cli", "run", "--dry-run", "--input", str(sample_data)]
    for setting in settings_:
        command += ["--set", setting]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and re.search(words, done.stderr)


def test_the_licences_kept_reach_the_summary_through_the_lineage(ingested):
    """As a cluster hands lineage back: flattened to artifact metadata and read again by run_summary."""
    from pugc.lineage import decode, encode
    from pugc.summary import summarize

    report, _, _ = ingested
    lineage = {"stage": "ingest_ugc", "rows_in": report["counts"]["in"], "rows_out": report["counts"]["out"],
               "dropped": report["counts"]["dropped"], "metrics": report["metrics"], "licenses": report["licenses"],
               "input_lines": report["input_lines"], "quarantined": report["quarantined"]}
    summary = summarize([decode(encode(lineage))])
    assert summary["input_licenses"] == {"CC-BY-4.0": 1}
    assert summary["stages"]["ingest_ugc"]["dropped"]["opted_out"] == 3


ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=200)  # lone surrogates included


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(ANY_TEXT, max_size=5), author=ANY_TEXT, url=ANY_TEXT)
def test_any_opt_out_line_author_or_url_is_handled_without_raising(lines, author, url):
    try:
        listed = OptOutList.parse(lines, "list")
    except ValueError as exc:  # only the one stated refusal: an author: or domain: entry naming nothing
        assert "names no" in str(exc)
        return
    config = InputConfig(author_field="author", url_field="url")
    assert listed.match("id", {"author": author, "url": url}, config) in (None, "document id", "author", "domain")


@pytest.mark.parametrize("text", ["", " " * 100_000, "a\ud800b", "x" * 100_000])
def test_language_identification_takes_hostile_text(text):
    from pugc.consent import UNDETERMINED, LanguageFilter

    language, confidence = LanguageFilter(InputConfig(languages=["en"])).identify(text)
    assert language == UNDETERMINED and 0.0 <= confidence <= 1.0
