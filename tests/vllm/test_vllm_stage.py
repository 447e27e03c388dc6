"""A whole LLM stage on vLLM: reward_scoring through the stage runner, from recipe-shaped sections, as a KFP
component runs it in the vllm image."""
from dataclasses import asdict

import pytest

from pugc.io import read_records, write_jsonl
from pugc.records import Response, ScoredResponse
from pugc.stage_runner import run_stage

from tests.vllm.conftest import engine_config

RESPONSES = [Response(id=f"q{q}-{k}", instruction_id=f"q{q}", doc_id=f"d{q}", response=f"Answer {k}: patch it and pump it.",
                      sample_index=k) for q in range(2) for k in range(3)]
DOCUMENTS = [{"id": f"d{q}", "text": "Find the hole, patch the tube, let the glue set, then pump the tyre up again."}
             for q in range(2)]
QUESTIONS = [{"id": f"q{q}", "doc_id": f"d{q}", "instruction": "How do I fix a flat tyre?"} for q in range(2)]


def score_with(tmp_path, section: dict, engines: dict):
    """reward_scoring run by the stage runner on RESPONSES: its report and scored records."""
    folder = tmp_path / engines["judge"]["backend"]
    folder.mkdir()
    write_jsonl(folder / "responses.jsonl", RESPONSES)
    write_jsonl(folder / "documents.jsonl", DOCUMENTS)
    write_jsonl(folder / "questions.jsonl", QUESTIONS)
    report = run_stage("reward_scoring", str(folder / "responses.jsonl"), str(folder / "scored.jsonl"),
                       str(folder / "dropped.jsonl"), section, engines,
                       tables={"documents": str(folder / "documents.jsonl"), "instructions": str(folder / "questions.jsonl")})
    return report, read_records(folder / "scored.jsonl", ScoredResponse)


def score(tmp_path, backend: str, section: dict):
    return score_with(tmp_path, section, {"judge": asdict(engine_config(backend))})


def test_expected_scores_on_vllm_match_the_same_stage_on_transformers(tmp_path):
    section = {"mode": "expected", "feedback_max_tokens": 12}
    report, scored = score(tmp_path, "vllm", section)
    _, reference = score(tmp_path, "hf", section)
    assert report["counts"] == {"in": 6, "out": 6, "dropped": {}} and report["model"] == "pugc-tiny/judge-hd32"
    assert report["engine_stats"]["scored_prompts"] == 6
    assert [r.id for r in scored] == [r.id for r in RESPONSES]  # input order kept
    assert [r.score for r in scored] == pytest.approx([r.score for r in reference], abs=1e-3)
    assert all(1.0 <= r.score <= 5.0 for r in scored)


def test_sampled_scores_account_for_every_response(tmp_path):
    """The random judge never ends with "[RESULT] n": each response is drawn n times, re-drawn once, then dropped."""
    report, scored = score(tmp_path, "vllm", {"mode": "sampled", "n": 2, "max_tokens": 8, "max_resamples": 1})
    assert report["counts"]["in"] == 6 == len(scored) + sum(report["counts"]["dropped"].values())
    assert report["counts"]["dropped"] == {"unparsable_judgement": 6}
    assert report["engine_stats"]["prompts"] == 12  # 6 prompts, then the 6 re-drawn
    assert report["engine_stats"]["generated_tokens"] > 0


def test_a_scalar_reward_model_scores_every_response_in_the_vllm_image_environment(tmp_path):
    """reward_scoring runs in the vllm image; a reward_model judge (transformers) must run there as well."""
    engines = {"judge": {"backend": "reward_model", "model": "pugc-tiny/reward", "batch_size": 4}}
    report, scored = score_with(tmp_path, {"reference": False}, engines)
    assert report["counts"] == {"in": 6, "out": 6, "dropped": {}} and report["model"] == "pugc-tiny/reward"
    assert report["engine_stats"]["scored_prompts"] == 6 and len({r.score for r in scored}) > 1
