"""The whole pipeline through KFP's local SubprocessRunner on a slice of the sample data, tiny models, CPU."""
import json
import os

import pytest
import torch
from transformers import AutoModelForCausalLM

from pugc.config import load_recipe
from pugc.models import resolve_model
from pugc.pipelines.local import run_local

ONE_TO_ONE = ["ugc_filter", "instruction_gen", "relevance_filter", "reward_scoring", "preference_pairs"]
CHAIN = ["ingest_ugc", "ugc_filter", "instruction_gen", "relevance_filter", "response_sampling"]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory, sample_slice):
    root = tmp_path_factory.mktemp("runs")
    summary = run_local(load_recipe("tiny"), str(sample_slice), root, run_id="e2e")
    return root, root / "e2e", summary


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_input_line_is_accounted_for(run):
    _, run_dir, summary = run
    stages = summary["stages"]
    assert summary["input_lines"] == 60 and summary["quarantined"] == 2
    assert summary["input_records"] == 58 == stages["ingest_ugc"]["in"]
    for stage in ONE_TO_ONE + ["ingest_ugc"]:
        counts = stages[stage]
        assert counts["in"] == counts["out"] + sum(counts["dropped"].values()), stage
    for before, after in zip(CHAIN, CHAIN[1:]):
        assert stages[after]["in"] == stages[before]["out"], after
    assert stages["reward_scoring"]["in"] == stages["response_sampling"]["out"]
    rejected = rows(run_dir / "rejected.jsonl")
    total_dropped = sum(sum(s["dropped"].values()) for s in stages.values())
    assert len(rejected) == summary["quarantined"] + total_dropped
    malformed = [r for r in rejected if r["reason"].startswith("malformed:")]
    assert sorted(r["record"]["line"] for r in malformed) == [13, 48]
    assert {r["reason"] for r in malformed} == {"malformed:not_json"}


def test_summary_has_the_documented_fields(run):
    root, run_dir, summary = run
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk == summary
    for key in ("run_id", "recipe", "input_lines", "quarantined", "input_records", "stages", "preference_pairs",
                "model_dir", "wall_seconds"):
        assert key in summary, key
    assert summary["recipe"] == "tiny" and summary["run_id"] == "e2e"
    assert os.path.realpath(root / "latest") == os.path.realpath(run_dir)
    assert load_recipe(run_dir / "recipe.yaml").digest() == load_recipe("tiny").digest()
    assert (run_dir / "pipeline.log").stat().st_size > 0


def test_pairs_are_trl_conversational_and_traceable(run):
    _, run_dir, summary = run
    pairs = rows(run_dir / "preference_pairs.jsonl")
    assert len(pairs) == summary["preference_pairs"] >= 5
    (ingested,) = run_dir.glob("artifacts/*/ingest-ugc/ugc")
    doc_ids = {doc["id"] for doc in rows(ingested)}
    for pair in pairs:
        assert [m["role"] for m in pair["prompt"]] == ["user"]
        assert [m["role"] for m in pair["chosen"]] == ["assistant"] == [m["role"] for m in pair["rejected"]]
        assert pair["score_chosen"] > pair["score_rejected"]
        assert pair["margin"] == pytest.approx(pair["score_chosen"] - pair["score_rejected"], abs=1e-3)
        assert pair["chosen_id"].startswith(pair["instruction_id"]) and pair["rejected_id"] != pair["chosen_id"]
        assert pair["doc_id"] in doc_ids


def test_dpo_checkpoint_loads_and_differs_from_the_policy(run):
    _, _, summary = run
    trained = AutoModelForCausalLM.from_pretrained(summary["model_dir"]).state_dict()
    base = AutoModelForCausalLM.from_pretrained(resolve_model("pugc-tiny/policy")).state_dict()
    assert trained.keys() == base.keys()
    assert any(not torch.equal(trained[k], base[k]) for k in base)
    assert summary["training"]["steps"] == load_recipe("tiny").dpo_training.trainer["max_steps"]


def test_four_shards_give_the_same_pairs_as_one(run, tmp_path, sample_slice):
    """Every LLM stage fanned out over 4 shards and merged: the same pairs as the unsharded run.

    Samples are seeded per prompt, so texts and choices match exactly; expected-mode scores come from batched
    forward passes whose float rounding depends on batch shape, so they match to 1e-3, not bit for bit.
    """
    _, run_dir, summary = run
    sharded = run_local(load_recipe("tiny", ["cluster.shards=4"]), str(sample_slice), tmp_path, run_id="shards4")
    assert {s: (c["in"], c["out"], c["dropped"]) for s, c in sharded["stages"].items()} == \
           {s: (c["in"], c["out"], c["dropped"]) for s, c in summary["stages"].items()}
    one, four = rows(run_dir / "preference_pairs.jsonl"), rows(tmp_path / "shards4" / "preference_pairs.jsonl")
    fields = ("prompt", "chosen", "rejected", "instruction_id", "doc_id", "chosen_id", "rejected_id")
    assert [[p[f] for f in fields] for p in four] == [[p[f] for f in fields] for p in one]
    for a, b in zip(one, four):
        assert b["score_chosen"] == pytest.approx(a["score_chosen"], abs=1e-3)
        assert b["score_rejected"] == pytest.approx(a["score_rejected"], abs=1e-3)
    assert len(list((tmp_path / "shards4" / "artifacts").glob("*/for-loop-*-iteration-3"))) == 5
