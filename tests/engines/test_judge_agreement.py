"""`pugc judge-agreement` end to end: the project's labelled pairs judged by the real tiny judge (transformers)."""
import json
from pathlib import Path

import pytest

from pugc.cli import main

PAIRS = Path(__file__).resolve().parents[2] / "data" / "judge_pairs.jsonl"
SAMPLED = ["--set", "reward_scoring.mode=sampled", "--set", "reward_scoring.max_tokens=12",
           "--set", "reward_scoring.max_resamples=0"]


def run(tmp_path, *extra):
    out = tmp_path / "agreement"
    assert main(["judge-agreement", "--pairs", str(PAIRS), "--recipe", "tiny", "--out", str(out), *extra]) == 0
    return out, json.loads((out / "agreement.json").read_text())


def check_figures(report, sample_counts):
    labels = report["labels"]
    assert report["pairs"] == 12 == sum(labels.values()) and labels["tie"] > 0
    settings = {True: report["with_reference"], False: report["pairs"]}
    assert 0 < settings[True] < settings[False]
    assert [(r["reference"], r["samples"]) for r in report["rows"]] == \
        [(ref, n) for ref in (True, False) for n in sample_counts]
    for row in report["rows"]:
        pairs = settings[row["reference"]]
        assert row["ties_counted"]["total"] == pairs
        assert 0 < row["no_ties"]["total"] < pairs  # tie-labelled pairs left out
        for share in (row["ties_counted"], row["no_ties"]):
            assert 0.0 <= share["agreement"] <= 1.0
            assert share["agreement"] == pytest.approx(share["agree"] / share["total"])
        # every pair is a judge preference (agreeing or not), a judge tie, or unscored
        assert row["judge_ties"] + row["unscored"] <= pairs
        assert row["ties_counted"]["agree"] <= pairs - row["unscored"]


def test_sampled_judge_agreement_table_and_plot(tmp_path, capsys):
    out, report = run(tmp_path, *SAMPLED)
    assert report["mode"] == "sampled" and report["model"] == "pugc-tiny/judge"
    check_figures(report, (1, 3, 5, 8))
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:2] == ["reference", "N"] and len(printed) == 2 + 8 + 1
    assert printed[-1].startswith("wrote ") and printed[-1].endswith("agreement.png")
    assert (out / "agreement.txt").read_text().splitlines() == printed[:-1]
    assert (out / "agreement.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_expected_judge_agreement_scores_every_pair(tmp_path):
    """`expected` always yields a score (no unparsable verdicts), so every pair gets a judge decision."""
    _, report = run(tmp_path, "--set", "reward_scoring.feedback_max_tokens=4")
    check_figures(report, (1,))
    assert all(row["unscored"] == 0 for row in report["rows"])


def test_a_bad_pairs_file_fails_before_any_model_loads(tmp_path, capsys):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"prompt": "p", "response_a": "x", "response_b": "y", "label": "maybe"}\n')
    assert main(["judge-agreement", "--pairs", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "pairs.jsonl:1: label 'maybe' is not one of a, b, tie" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
