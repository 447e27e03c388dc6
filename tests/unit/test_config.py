import json
from pathlib import Path

import pytest
import yaml

from pugc.config import ConfigError, RewardScoringConfig, build, load_recipe, parse_override

ROOT = Path(__file__).resolve().parents[2]


def test_recipes_load_and_paper_is_faithful():
    paper = load_recipe("paper")
    assert paper.response_sampling.k == 5 and paper.response_sampling.temperature == 0.8
    assert paper.response_sampling.top_p == 0.95
    assert (paper.reward_scoring.n, paper.reward_scoring.temperature, paper.reward_scoring.top_p,
            paper.reward_scoring.repetition_penalty, paper.reward_scoring.max_tokens) == (8, 1.0, 0.9, 1.03, 1024)
    assert paper.reward_scoring.mode == "sampled" and paper.reward_scoring.reference is True
    assert paper.engines.policy.model == "mistralai/Mistral-7B-Instruct-v0.2"
    assert paper.engines.judge.model == "prometheus-eval/prometheus-7b-v2.0"
    trainer = paper.dpo_training.trainer
    assert (trainer["beta"], trainer["learning_rate"], trainer["num_train_epochs"]) == (0.01, 5e-7, 1)
    gpus = paper.cluster.resources["dpo_training"].accelerator_count
    assert trainer["per_device_train_batch_size"] * trainer["gradient_accumulation_steps"] * gpus == 128
    assert trainer["lr_scheduler_type"] == "cosine" and trainer["warmup_steps"] == 0.1
    assert load_recipe("tiny").engines.judge.model.startswith("pugc-tiny/")


@pytest.mark.parametrize("override, message", [
    ("reward_scoring.temprature=0.5", "unknown key 'reward_scoring.temprature' (did you mean 'temperature'?)"),
    ("reward_scoring.n=many", "reward_scoring.n: expected an integer"),
    ("reward_scoring.mode=greedy", "reward_scoring.mode: 'greedy' is not one of"),
    ("ugc_filter.threshold=high", "ugc_filter.threshold"),
    ("engines.judge.modle=x", "unknown key 'engines.judge.modle'"),
    ("dpo_training.bta=0.1", "unknown key 'dpo_training.bta' (did you mean 'beta'?)"),
    ("dpo_training.loss_type=sigmod", "dpo_training.loss_type: 'sigmod' is not a DPO loss"),
    ("cluster.resources.reward_scorng.cpu_limit=2", "unknown key 'cluster.resources.reward_scorng'"),
    ("rewrd_scoring.n=2", "unknown key 'rewrd_scoring' (did you mean 'reward_scoring'?)"),
])
def test_bad_keys_and_types_fail_naming_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_recipe("tiny", [override])
    assert message in str(info.value)


def test_overrides_apply_yaml_typed_values():
    recipe = load_recipe("tiny", ["reward_scoring.n=4", "ugc_filter.threshold=null", "engines.judge.model=my/judge"])
    assert recipe.reward_scoring.n == 4
    assert recipe.ugc_filter.threshold is None
    assert recipe.engines.judge.model == "my/judge"


def test_override_syntax_errors():
    with pytest.raises(ConfigError):
        parse_override("reward_scoring.n")
    with pytest.raises(ConfigError):
        parse_override("n=3")


def test_kfp_float_numbers_are_accepted_for_integer_fields():
    config = build(RewardScoringConfig, {"n": 8.0, "max_tokens": 1024.0}, "reward_scoring")
    assert config.n == 8 and isinstance(config.n, int)
    with pytest.raises(ConfigError):
        build(RewardScoringConfig, {"n": 8.5}, "reward_scoring")


def test_digest_tracks_content():
    assert load_recipe("tiny").digest() == load_recipe("tiny").digest()
    assert load_recipe("tiny").digest() != load_recipe("tiny", ["reward_scoring.n=2"]).digest()


def test_recipe_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("reward_scoring:\n  temprature: 1\n")
    with pytest.raises(ConfigError, match="bad.yaml: unknown key 'reward_scoring.temprature'"):
        load_recipe(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_recipe("no-such-recipe")


def test_effective_batch_that_does_not_multiply_out_fails_naming_the_keys():
    with pytest.raises(ConfigError) as info:
        load_recipe("paper", ["dpo_training.gradient_accumulation_steps=4"])
    message = str(info.value)
    assert "dpo_training.effective_batch_size is 128" in message
    assert "per_device_train_batch_size (2) x dpo_training.gradient_accumulation_steps (4)" in message
    assert "world size (8: cluster.resources.dpo_training.accelerator_count 8 x nodes 1) = 64" in message
    assert load_recipe("paper", ["dpo_training.gradient_accumulation_steps=4",
                                 "dpo_training.effective_batch_size=64"]).dpo_training.effective_batch_size == 64


def test_cpu_offload_needs_a_sharded_strategy():
    with pytest.raises(ConfigError, match="dpo_training.cpu_offload needs strategy fsdp or deepspeed_zero3"):
        load_recipe("paper", ["dpo_training.strategy=ddp", "dpo_training.cpu_offload=true"])


# ------------------------------------------------------------------------------------- ranges and relations
@pytest.mark.parametrize("override, message", [
    ("evaluation.held_out_fraction=1.0", "evaluation.held_out_fraction: must be less than 1"),
    ("evaluation.held_out_fraction=1.5", "evaluation.held_out_fraction: must be less than 1"),
    ("evaluation.held_out_fraction=-0.2", "evaluation.held_out_fraction: must be at least 0"),
    ("evaluation.gate.min_win_rate=50", "evaluation.gate.min_win_rate: is a fraction from 0 to 1; 50 looks like a "
                                        "percentage: write 0.5"),
    ("evaluation.gate.min_lc_win_rate=1.5", "looks like a percentage: write 0.015"),
    ("evaluation.gate.min_win_rate=-0.1", "evaluation.gate.min_win_rate: must be at least 0"),
    ("ugc_filter.threshold=7", "ugc_filter.threshold: must be at most 5"),
    ("relevance_filter.threshold=2", "relevance_filter.threshold: must be at most 1"),
    ("reward_scoring.max_engine_error_fraction=5", "reward_scoring.max_engine_error_fraction: must be at most 1"),
    ("response_sampling.k=1", "response_sampling.k: must be at least 2"),
    ("reward_scoring.top_p=0", "reward_scoring.top_p: must be more than 0"),
    ("reward_scoring.n=0", "reward_scoring.n: must be at least 1"),
    ("input.near_duplicate_threshold=0", "input.near_duplicate_threshold: must be more than 0"),
    ("cluster.resources.evaluate.shards=0", "cluster.resources.evaluate.shards: must be at least 1"),
    ("cluster.resources.evaluat.shards=2", "unknown key 'cluster.resources.evaluat' (did you mean 'evaluate'?)"),
    ("reward_scoring.reference=1", "reward_scoring.reference: expected true/false, got 1"),
    ("engines.judge.model=7", "engines.judge.model: expected a string, got 7"),
    ("cluster.resources.evaluate.cpu_limit=[1]", "cluster.resources.evaluate.cpu_limit: expected a string or an "
                                                 "integer or a number, got [1]"),
    ("evaluation.held_out_fraction=0", "evaluation.gate.min_win_rate is set, but the evaluation has no prompts"),
    ("dpo_training.beta=high", "dpo_training.beta: expected a number, got 'high'"),
])
def test_values_out_of_range_or_relation_fail_at_load_naming_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_recipe("tiny", [override])
    assert message in str(info.value)


def test_several_problems_are_named_together():
    with pytest.raises(ConfigError) as info:
        load_recipe("tiny", ["reward_scoring.n=0", "evaluation.held_out_fraction=2", "ugc_filter.threshold=9",
                             "response_sampling.k=1"])
    message = str(info.value)
    named = [key for key in ("ugc_filter.threshold", "response_sampling.k", "reward_scoring.n",
                             "evaluation.held_out_fraction") if key in message]
    assert len(named) == 3 and message.endswith("(and 1 more)")  # three at most, in recipe order


def test_configs_built_in_code_are_checked_too():
    with pytest.raises(Exception, match="greater than or equal to 1"):
        RewardScoringConfig(n=0)


# ------------------------------------------------------------------------------------------- JSON Schema
def test_the_committed_schema_is_what_pugc_schema_writes():
    from pugc.schema import SCHEMA_FILE, schema_text

    committed = (ROOT / "recipes" / SCHEMA_FILE).read_text()
    assert committed == schema_text(), "recipes/recipe.schema.json is stale: run `pugc schema -o recipes/recipe.schema.json`"


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "recipes").glob("*.yaml")))
def test_every_shipped_recipe_names_and_passes_the_schema(recipe):
    text = (ROOT / "recipes" / recipe).read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=recipe.schema.json"
    schema_validator().validate(yaml.safe_load(text))


@pytest.mark.parametrize("edit, where", [
    (("reward_scoring", "temprature", 1.0), "temprature"),
    (("dpo_training", "bta", 0.1), "bta"),
    (("evaluation", "held_out_fraction", 1.5), "1.5"),
    (("cluster", "resources", {"evaluat": {}}), "evaluat"),
])
def test_the_schema_refuses_a_typo_or_a_value_out_of_range(edit, where):
    import jsonschema

    data = yaml.safe_load((ROOT / "recipes" / "tiny.yaml").read_text())
    section, key, value = edit
    data.setdefault(section, {})[key] = value
    with pytest.raises(jsonschema.ValidationError, match=where):
        schema_validator().validate(data)


def schema_validator():
    import jsonschema

    schema = json.loads((ROOT / "recipes" / "recipe.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)
