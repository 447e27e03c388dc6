"""DPO's reference across online rounds: `rounds_reference: previous` (TRL's default: the model the round starts
from) or `initial` (engines.policy, as in RLHFlow's online DPO), through `dpo_training.reference_model`.

Before the first update the policy scores every answer as its reference does when the two are one model, so
DPO's first loss is exactly log 2; a reference of its own makes it something else. Real TRL training on the CPU.
"""
import math

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from pugc.config import DPOTrainingConfig, EngineConfig, load_recipe
from pugc.io import write_jsonl
from pugc.models import resolve_model
from pugc.records import PreferencePair
from pugc.training.dpo import train


@pytest.fixture(scope="module")
def later_round_policy(tmp_path_factory):
    """A model a first round could have trained: the tiny policy with its weights moved."""
    folder = tmp_path_factory.mktemp("round-1-model")
    base = resolve_model("pugc-tiny/policy")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    write_jsonl(path, [
        PreferencePair(prompt=[{"role": "user", "content": f"Where does item {i} go?"}],
                       chosen=[{"role": "assistant", "content": "On the shelf by the door."}],
                       rejected=[{"role": "assistant", "content": f"Item {i} is a tent."}],
                       score_chosen=5.0, score_rejected=1.0, margin=4.0, instruction_id=f"q{i}", doc_id="d",
                       chosen_id=f"c{i}", rejected_id=f"r{i}")
        for i in range(4)])
    return path


def first_loss(tmp_path, pairs, policy_dir, **reference) -> tuple[float, dict]:
    config = DPOTrainingConfig(**reference, trainer={
        "max_steps": 1, "per_device_train_batch_size": 4, "learning_rate": 1e-6, "beta": 0.1, "max_length": 64,
        "seed": 0})
    report = train(str(pairs), str(tmp_path / f"model-{len(reference)}"), config, EngineConfig(model=str(policy_dir)))
    return report["losses"][0], report


def test_the_reference_is_the_starting_model_unless_the_recipe_names_the_initial_policy(tmp_path, pairs,
                                                                                         later_round_policy):
    previous, report = first_loss(tmp_path, pairs, later_round_policy)
    assert previous == pytest.approx(math.log(2), abs=1e-5)
    assert report["reference"] == "frozen copy of the starting model in float32"
    initial, report = first_loss(tmp_path, pairs, later_round_policy, reference_model="pugc-tiny/policy")
    assert abs(initial - math.log(2)) > 1e-3
    assert report["reference"] == "frozen copy of pugc-tiny/policy (reference_model) in float32"


def test_rounds_reference_initial_names_the_starting_policy_in_every_rounds_training_section(tmp_path):
    from pugc.pipelines.local import compile_pipeline

    recipe = load_recipe("tiny", ["rounds=2", "rounds_reference=initial"])
    spec = next(yaml.safe_load_all(compile_pipeline(recipe, tmp_path / "p.yaml", "kfp", None).read_text()))
    section = spec["root"]["inputDefinitions"]["parameters"]["dpo_training_config"]["defaultValue"]
    assert section["reference_model"] == recipe.engines.policy.model == "pugc-tiny/policy"
    default = next(yaml.safe_load_all(compile_pipeline(load_recipe("tiny", ["rounds=2"]), tmp_path / "q.yaml", "kfp",
                                                        None).read_text()))
    assert "reference_model" not in default["root"]["inputDefinitions"]["parameters"]["dpo_training_config"]["defaultValue"]


@pytest.mark.parametrize("overrides, words", [
    (["rounds_reference=initial", "dpo_training.method=simpo"], "needs full-parameter DPO"),
    (["rounds_reference=initial", "dpo_training.lora={merge: true}"], "needs full-parameter DPO"),
    (["dpo_training.reference_model=pugc-tiny/judge", "dpo_training.method=simpo"], "simpo has no reference model"),
])
def test_a_reference_where_there_is_none_is_refused_at_load(overrides, words):
    from pugc.checks import UserError

    with pytest.raises((UserError, ValueError), match=words):
        load_recipe("tiny", overrides)
