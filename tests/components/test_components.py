"""Each KFP component's body through `python_func`, with real files, the real tiny models and stub artifacts.

(The local runner cannot take an artifact straight into a single component call; the whole DAG runs for
real in tests/pipelines/test_local_run.py.)
"""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from pugc.components.dpo_training import dpo_training
from pugc.components.ingest_ugc import ingest_ugc
from pugc.components.preference_pairs import preference_pairs
from pugc.components.response_sampling import response_sampling
from pugc.components.ugc_filter import ugc_filter
from pugc.config import load_recipe
from pugc.io import read_records, write_jsonl
from pugc.lineage import decode
from pugc.models import resolve_model
from pugc.records import Document, Instruction, PreferencePair, Response, ScoredResponse


class StubArtifact:
    def __init__(self, path, metadata=None):
        self.path = self.uri = str(path)
        self.metadata = dict(metadata or {})
        self.metrics = {}

    def log_metric(self, name, value):
        self.metrics[name] = value


@pytest.fixture(scope="module")
def tiny():
    recipe = load_recipe("tiny")
    return recipe, recipe.pipeline_sections()


def out(tmp_path, name):
    return StubArtifact(tmp_path / name)


def test_ingest_component_quarantines_and_annotates(tmp_path, sample_slice, tiny):
    _, sections = tiny
    ugc, quarantine, dropped, metrics = (out(tmp_path, n) for n in ("ugc", "quarantine", "dropped", "metrics"))
    ingest_ugc.python_func(input_uri=str(sample_slice), config=sections["input"], input_fingerprint="f1",
                           ugc=ugc, quarantine=quarantine, dropped=dropped, metrics=metrics)
    docs = read_records(ugc.path, Document)
    quarantined = [json.loads(line) for line in open(quarantine.path)]
    assert len(docs) + len(quarantined) == 60
    assert [q["line"] for q in quarantined] == [13, 48]
    assert ugc.metadata["rows_out"] == len(docs) and ugc.metadata["input_lines"] == 60
    assert ugc.metadata["input_fingerprint"] == "f1"
    assert metrics.metrics["records_out"] == len(docs)


def test_ugc_filter_component_runs_the_tiny_judge(tmp_path, tiny):
    _, sections = tiny
    source = StubArtifact(tmp_path / "in.jsonl")
    write_jsonl(source.path, [Document(id=f"d{i}", text=f"Post number {i} about tents and stoves.") for i in range(12)])
    kept, dropped, metrics = out(tmp_path, "kept"), out(tmp_path, "dropped"), out(tmp_path, "metrics")
    config = {**sections["ugc_filter"], "threshold": 2.5}
    ugc_filter.python_func(ugc=source, config=config, engines=sections["engines"], runtime={}, recipe_digest="abc", shard_index=0, shard_count=1,
                           filtered_ugc=kept, dropped=dropped, metrics=metrics)
    rows = read_records(kept.path, Document)
    assert all(d.quality >= 2.5 for d in rows)
    assert len(rows) + metrics.metrics.get("dropped_low_quality", 0) == 12
    assert kept.metadata["recipe_digest"] == "abc" and kept.metadata["model"] == "pugc-tiny/generator"
    assert 1.0 <= metrics.metrics["quality_mean"] <= 5.0


def test_response_sampling_component_writes_k_per_question(tmp_path, tiny):
    _, sections = tiny
    source = StubArtifact(tmp_path / "in.jsonl")
    write_jsonl(source.path, [Instruction(id=f"i{i}", doc_id=f"d{i}", instruction=f"Question {i}?")
                              for i in range(3)])
    responses, dropped, metrics = out(tmp_path, "r"), out(tmp_path, "d"), out(tmp_path, "m")
    response_sampling.python_func(relevant_instructions=source, config=sections["response_sampling"],
                                  engines=sections["engines"], runtime={}, recipe_digest="", shard_index=0, shard_count=1,
                                  responses=responses,
                                  dropped=dropped, metrics=metrics)
    rows = read_records(responses.path, Response)
    k = sections["response_sampling"]["k"]
    assert metrics.metrics["records_in"] == 3
    assert len(rows) + k * metrics.metrics.get("dropped_empty_responses", 0) <= 3 * k
    assert {r.instruction_id for r in rows} <= {"i0", "i1", "i2"}


def test_preference_pairs_component(tmp_path):
    source = StubArtifact(tmp_path / "scored.jsonl")
    write_jsonl(source.path, [
        ScoredResponse(id=f"q-{k}", instruction_id="q", doc_id="d", response=f"r{k}", sample_index=k, score=s)
        for k, s in enumerate([2.0, 4.0, 3.0])
    ])
    questions = StubArtifact(tmp_path / "questions.jsonl")
    write_jsonl(questions.path, [Instruction(id="q", doc_id="d", instruction="Which glue holds?")])
    pairs, dropped, metrics = out(tmp_path, "pairs"), out(tmp_path, "dropped"), out(tmp_path, "metrics")
    report = out(tmp_path, "report.html")
    preference_pairs.python_func(scored_responses=source, instructions=questions, config={"min_margin": 1.0},
                                 recipe_digest="",
                                 preference_pairs=pairs, dropped=dropped, metrics=metrics, pairs_report=report)
    html = (tmp_path / "report.html").read_text()
    assert "1 pair from 1 question;" in html and "<svg" in html and "r1" in html
    (pair,) = read_records(pairs.path, PreferencePair)
    assert (pair.chosen[0]["content"], pair.rejected[0]["content"], pair.margin) == ("r1", "r0", 2.0)
    assert pair.prompt == [{"role": "user", "content": "Which glue holds?"}]  # joined from the question table
    assert metrics.metrics["records_out"] == 1


def test_dpo_component_trains_and_saves_a_loadable_model(tmp_path, tiny):
    _, sections = tiny
    source = StubArtifact(tmp_path / "pairs.jsonl")
    write_jsonl(source.path, [
        PreferencePair(prompt=[{"role": "user", "content": f"Question {i}?"}],
                       chosen=[{"role": "assistant", "content": f"A careful answer {i}."}],
                       rejected=[{"role": "assistant", "content": "no"}], score_chosen=5.0, score_rejected=1.0,
                       margin=4.0, instruction_id=f"q{i}", doc_id="d", chosen_id="c", rejected_id="r")
        for i in range(8)
    ])
    model, metrics, curve = out(tmp_path, "model"), out(tmp_path, "metrics"), out(tmp_path, "loss.html")
    report = out(tmp_path, "training_report.json")
    uri = dpo_training.python_func(preference_pairs=source, config=sections["dpo_training"], engines=sections["engines"],
                                   runtime={}, recipe_digest="", dpo_model=model, training_report=report,
                                   metrics=metrics, loss_curve=curve)
    assert uri == model.uri  # what export_model copies from
    assert decode(report.metadata) == decode(model.metadata)  # the figures, without the checkpoint
    assert json.loads((tmp_path / "training_report.json").read_text())["training"]["pairs"] == 8
    curve_html = (tmp_path / "loss.html").read_text()
    assert "<svg" in curve_html and ">training step<" in curve_html and "8 pairs, final loss" in curve_html
    assert len(decode(model.metadata)["training"]["data_digest"]) == 16
    trained = AutoModelForCausalLM.from_pretrained(model.path)
    base = AutoModelForCausalLM.from_pretrained(resolve_model("pugc-tiny/policy"))
    changed = [n for n, p in trained.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    assert changed, "DPO left every weight unchanged"
    assert decode(model.metadata)["training"]["steps"] == sections["dpo_training"]["max_steps"]
    training = decode(model.metadata)["training"]
    assert training["base_model"] == "pugc-tiny/policy"
    # the tiny recipe trains in one process, fp32 throughout (no bf16 on the CPU unless the recipe asks)
    assert (training["world_size"], training["master_dtype"], training["compute_dtype"], training["strategy"]) == \
        (1, "float32", "float32", "ddp")
    assert 0.0 <= training["reward_accuracy"] <= 1.0 and "reward_margin" in training
    report = json.loads((tmp_path / "model" / "training_report.json").read_text())
    assert len(report["losses"]) == report["steps"] and report["reference"] == "frozen copy of the starting model in float32"
    assert metrics.metrics["steps"] == sections["dpo_training"]["max_steps"]
    assert not (tmp_path / "model" / ".trainer").exists()


def test_dpo_with_lora_merges_adapters_into_a_plain_checkpoint(tmp_path, tiny):
    from pugc.config import DPOTrainingConfig, EngineConfig, LoraConfig
    from pugc.training.dpo import train

    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, [
        PreferencePair(prompt=[{"role": "user", "content": "Q?"}], chosen=[{"role": "assistant", "content": "Yes, because."}],
                       rejected=[{"role": "assistant", "content": "no"}], score_chosen=5.0, score_rejected=1.0,
                       margin=4.0, instruction_id="q", doc_id="d", chosen_id="c", rejected_id="r")
    ] * 4)
    config = DPOTrainingConfig(lora=LoraConfig(r=4, alpha=8), trainer={"max_steps": 2, "learning_rate": 1e-2,
                                                                       "per_device_train_batch_size": 2,
                                                                       "gradient_checkpointing": False})
    report = train(str(pairs), str(tmp_path / "model"), config, EngineConfig(model="pugc-tiny/policy"))
    assert report["lora"] and report["steps"] == 2
    assert not (tmp_path / "model" / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(tmp_path / "model")


def test_dpo_without_pairs_fails_clearly(tmp_path, tiny):
    _, sections = tiny
    source = StubArtifact(tmp_path / "pairs.jsonl")
    write_jsonl(source.path, [])
    with pytest.raises(ValueError, match="no preference pairs to train on"):
        dpo_training.python_func(preference_pairs=source, config=sections["dpo_training"], engines=sections["engines"],
                                 runtime={}, recipe_digest="", dpo_model=out(tmp_path, "m"),
                                 training_report=out(tmp_path, "r"), metrics=out(tmp_path, "x"),
                                 loss_curve=out(tmp_path, "l"))


def test_simpo_option_trains_with_trl_cpo(tmp_path):
    from pugc.config import DPOTrainingConfig, EngineConfig
    from pugc.training.dpo import train

    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, [
        PreferencePair(prompt=[{"role": "user", "content": f"Q{i}?"}], chosen=[{"role": "assistant", "content": "A good answer."}],
                       rejected=[{"role": "assistant", "content": "no"}], score_chosen=5.0, score_rejected=1.0,
                       margin=4.0, instruction_id=f"q{i}", doc_id="d", chosen_id="c", rejected_id="r")
        for i in range(4)
    ])
    config = DPOTrainingConfig(method="simpo", trainer={"max_steps": 2, "beta": 2.5, "simpo_gamma": 0.25,
                                                        "per_device_train_batch_size": 2, "learning_rate": 1e-3})
    report = train(str(pairs), str(tmp_path / "model"), config, EngineConfig(model="pugc-tiny/policy"))
    assert report["method"] == "simpo" and report["steps"] == 2 and report["final_loss"] is not None
    AutoModelForCausalLM.from_pretrained(tmp_path / "model")
