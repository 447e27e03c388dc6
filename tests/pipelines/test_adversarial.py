"""The whole pipeline over a corpus written to break it (tests/data/adversarial_ugc.jsonl, behind a byte-order
mark and followed by hostile lines made here: a lone surrogate, NULs, a 10 MB line, deep nesting, a number
Python will not convert, an object as id): it finishes, every line is accounted for with a reason, and no
secret from the environment lands in any output or log."""
import json
from pathlib import Path

import pytest

from pugc.cli import main
from pugc.config import load_recipe
from pugc.pipelines.local import run_local

pytestmark = pytest.mark.e2e
DATA = Path(__file__).resolve().parents[1] / "data"
PLANTED = {"HF_TOKEN": "hf_PLANTED-fake-secret-token", "OPENAI_API_KEY": "sk-PLANTED-openai-key",
           "KFP_TOKEN": "PLANTED-kfp-bearer"}
EXPECTED_QUARANTINE = {2: "not_json", 4: "missing_text", 5: "not_string", 6: "not_string", 7: "not_string",
                       8: "empty", 9: "empty", 10: "blank_line", 11: "not_utf8", 12: "not_object", 13: "not_json",
                       14: "too_long", 27: "empty", 28: "too_long", 29: "too_deep", 30: "not_json", 31: "bad_id"}
HOSTILE_LINES = [  # lines 26-31, after the 25 of the corpus file
    r'{"id": "half-emoji", "text": "Pack the tent dry \ud83d or it mildews within a week; air it out at home first."}',
    r'{"id": "only-nul", "text": "\u0000\u0007 \u0001"}',
    '{"id": "ten-megabytes", "text": "' + "a" * 10_000_000 + '"}',
    '{"id": "deep", "text": "Nested metadata", "meta": ' + "[" * 100 + "]" * 100 + "}",
    '{"id": "digits", "text": "A number too long to convert", "n": ' + "7" * 5000 + "}",
    '{"id": {"an": "object"}, "text": "Wax the chain after every wet ride."}',
]


def hostile_input(folder: Path) -> Path:
    """The corpus behind a UTF-8 byte-order mark, then the hostile lines."""
    path = folder / "hostile.jsonl"
    corpus = (DATA / "adversarial_ugc.jsonl").read_bytes()
    path.write_bytes("\ufeff".encode() + corpus + "\n".join(HOSTILE_LINES).encode() + b"\n")
    return path
EXPECTED_DUPLICATES = {16: "duplicate", 17: "duplicate", 18: "duplicate_id"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    for name, value in PLANTED.items():
        mp.setenv(name, value)
    root = tmp_path_factory.mktemp("adversarial")
    recipe = load_recipe("tiny", ["input.max_chars=2000", "input.max_malformed_fraction=0.6",
                                  "ugc_filter.threshold=1.0", "ugc_filter.max_document_tokens=64",
                                  "reward_scoring.max_document_tokens=64"])
    summary = run_local(recipe, str(hostile_input(root)), root, run_id="adv")
    mp.undo()
    return root / "adv", summary


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_line_lands_in_exactly_one_place_with_its_reason(run):
    run_dir, summary = run
    lines = len((run_dir.parent / "hostile.jsonl").read_bytes().splitlines())
    assert summary["input_lines"] == lines == 31
    rejected = rows(run_dir / "rejected.jsonl")
    quarantined = {r["ids"]["line"]: r["reason"].split(":", 1)[1] for r in rejected if r["reason"].startswith("malformed:")}
    assert quarantined == EXPECTED_QUARANTINE
    duplicates = {r["ids"]["line"]: r["reason"] for r in rejected if r["stage"] == "ingest_ugc" and "line" in r["ids"]
                  and not r["reason"].startswith("malformed:")}
    assert duplicates == EXPECTED_DUPLICATES
    (ingested,) = run_dir.glob("artifacts/*/ingest-ugc/ugc")
    kept_lines = {doc["meta"]["source_line"] for doc in rows(ingested)}
    assert sorted(kept_lines | set(quarantined) | set(duplicates)) == list(range(1, lines + 1))
    assert not kept_lines & (set(quarantined) | set(duplicates))
    stages = summary["stages"]
    for stage in ("ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "reward_scoring",
                  "preference_pairs"):
        assert stages[stage]["in"] == stages[stage]["out"] + sum(stages[stage]["dropped"].values()), stage


def test_repaired_lines_are_kept_clean_and_counted(run):
    run_dir, summary = run
    (ingested,) = run_dir.glob("artifacts/*/ingest-ugc/ugc")
    documents = {doc["id"]: doc for doc in rows(ingested)}
    assert documents["half-emoji"]["text"] == "Pack the tent dry \ufffd or it mildews within a week; air it out at home first."
    assert "\x00" not in documents["control-chars"]["text"] and "\x07" not in documents["control-chars"]["text"]
    assert documents["good-1"]["meta"]["source_line"] == 1  # the byte-order mark cost no record
    repaired = {k: v for k, v in summary["stages"]["ingest_ugc"]["metrics"].items() if k.startswith("repaired_")}
    assert repaired == {"repaired_control_characters": 1.0, "repaired_lone_surrogates": 1.0}


def test_long_documents_are_cut_to_the_token_budget_and_counted(run):
    _, summary = run
    assert summary["stages"]["ugc_filter"]["metrics"]["documents_truncated"] >= 1


def test_the_injection_document_went_through_as_plain_content(run):
    run_dir, _ = run
    (scored_dir,) = [p for p in run_dir.glob("artifacts/*/merge-shards-6/merged")]
    for row in rows(scored_dir):
        assert 1.0 <= row["score"] <= 5.0
    for pair in rows(run_dir / "preference_pairs.jsonl"):
        for turn in pair["prompt"] + pair["chosen"] + pair["rejected"]:
            assert "<|end|>" not in turn["content"] and "<|assistant|>" not in turn["content"]


def test_no_secret_reaches_outputs_logs_or_summaries(run):
    run_dir, _ = run
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in PLANTED.values():
                assert value.encode() not in data, f"{value} found in {path}"


def test_all_invalid_input_exits_non_zero_naming_input_and_reasons(tmp_path, capsys):
    code = main(["run", "--input", str(DATA / "all_invalid.jsonl"), "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "all_invalid.jsonl: no valid records in 4 lines" in err
    assert "not_json 1" in err and "empty 1" in err and "not_object 1" in err and "missing_text 1" in err
    assert not list(tmp_path.glob("*/model"))  # stopped before any model was trained
