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


def planted_judge(server):
    """The served judge's verdicts, planted per sample: the labelled-better response gets 2 then 5s, the other 4
    then 3s, a tie-labelled pair's responses 3s. N = 1 then disagrees with every untied label and N >= 3 agrees:
    the curve rises, as self-consistency should make it."""
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    scores = {}
    for pair in pairs:
        better = {"a": pair["response_a"], "b": pair["response_b"]}.get(pair["label"])
        for response in (pair["response_a"], pair["response_b"]):
            scores[response] = [3] * 8 if better is None else [2] + [5] * 7 if response == better else [4] + [3] * 7

    def complete(body):
        text = json.dumps(body["messages"], ensure_ascii=False)
        (votes,) = [v for response, v in scores.items() if json.dumps(response, ensure_ascii=False)[1:-1] in text]
        choices = [{"index": i, "finish_reason": "stop", "message": {"role": "assistant",
                    "content": f"Feedback. [RESULT] {votes[i]}"}} for i in range(int(body.get("n", 1)))]
        return {"id": "planted", "object": "chat.completion", "created": 0, "model": body["model"], "choices": choices,
                "usage": {"prompt_tokens": 0, "completion_tokens": len(choices), "total_tokens": len(choices)}}
    return complete


def test_sampled_judge_agreement_table_and_curve(tmp_path, capsys):
    from pugc.config import EngineConfig
    from pugc.engines.hf import HFEngine
    from pugc.engines.hf_server import ChatServer

    engine = HFEngine(EngineConfig(model="pugc-tiny/judge"))
    with ChatServer(engine) as server:
        server.complete = planted_judge(server)
        out, report = run(tmp_path, *SAMPLED, "--set", "engines.judge.backend=openai",
                          "--set", f"engines.judge.options={{base_url: '{server.url}'}}")
    engine.close()
    assert report["mode"] == "sampled"
    check_figures(report, (1, 3, 5, 8))
    no_ties = {(r["reference"], r["samples"]): r["no_ties"]["agreement"] for r in report["rows"]}
    assert no_ties[(True, 1)] == no_ties[(False, 1)] == 0.0
    assert all(no_ties[(ref, n)] == 1.0 for ref in (True, False) for n in (3, 5, 8))
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert lines[0].split()[:2] == ["reference", "N"] and len(lines) == 2 + 8 + 1
    assert lines[-1].startswith("wrote ") and lines[-1].endswith("agreement.png")
    assert (out / "agreement.txt").read_text().splitlines() == lines[:-1]
    assert (out / "agreement.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "warning" not in printed.err


def test_a_judge_that_never_writes_a_verdict_warns_and_fails(tmp_path, capsys):
    """The random tiny judge never ends with "[RESULT] n": every pair is unscored, and the command says so and
    exits 1 instead of reporting 0% agreement as if it were a finding."""
    out = tmp_path / "agreement"
    code = main(["judge-agreement", "--pairs", str(PAIRS), "--recipe", "tiny", "--out", str(out), *SAMPLED])
    err = capsys.readouterr().err
    assert code == 1 and "no verdict parsed" in err and "reward_scoring.mode=expected" in err
    report = json.loads((out / "agreement.json").read_text())
    assert all(row["unscored"] == row["ties_counted"]["total"] for row in report["rows"])


def test_the_paper_recipes_judge_on_a_laptop_is_one_line_with_the_fix(tmp_path, capsys):
    assert main(["judge-agreement", "--pairs", str(PAIRS), "--recipe", "paper", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "engines.judge (vllm backend) cannot load here" in err and "--recipe tiny" in err


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
