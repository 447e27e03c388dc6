"""The SimPO, Base and Base SimPO recipes carry the published settings, load, and compile; prompts are cut by tokens."""
import pytest
import yaml
from transformers import AutoTokenizer

from pugc.config import load_recipe
from pugc.models import resolve_model
from pugc.pipelines.local import compile_pipeline
from pugc.training.dpo import cut_prompts


def test_simpo_recipe_has_simpo_instruct_settings():
    recipe = load_recipe("paper-simpo")
    trainer = recipe.dpo_training.trainer
    assert recipe.dpo_training.method == "simpo" and recipe.engines.policy.model == "mistralai/Mistral-7B-Instruct-v0.2"
    assert (trainer["beta"], trainer["simpo_gamma"] / trainer["beta"], trainer["learning_rate"]) == (2.5, 0.1, 5e-7)
    assert recipe.dpo_training.effective_batch_size == 128


def test_base_recipe_starts_from_the_sft_model_with_short_sequences():
    recipe = load_recipe("paper-base")
    assert recipe.engines.policy.model == "alignment-handbook/zephyr-7b-sft-full"
    assert (recipe.dpo_training.trainer["max_length"], recipe.dpo_training.max_prompt_length) == (1024, 512)
    assert (recipe.dpo_training.trainer["beta"], recipe.dpo_training.trainer["learning_rate"]) == (0.01, 5e-7)


def test_base_simpo_recipe_is_the_base_recipe_with_simpo_base_settings():
    base, simpo = load_recipe("paper-base"), load_recipe("paper-base-simpo")
    trainer = simpo.dpo_training.trainer
    assert simpo.dpo_training.method == "simpo" and simpo.engines == base.engines
    assert (trainer["beta"], trainer["simpo_gamma"] / trainer["beta"], trainer["learning_rate"]) == (2.0, 0.8, 3e-7)
    assert (trainer["max_length"], simpo.dpo_training.max_prompt_length) == (1024, 512)
    assert simpo.response_sampling == base.response_sampling and simpo.reward_scoring == base.reward_scoring


@pytest.mark.parametrize("name", ["paper-simpo", "paper-base", "paper-base-simpo"])
def test_recipe_compiles_with_its_training_section(tmp_path, name):
    recipe = load_recipe(name)
    spec = next(yaml.safe_load_all(compile_pipeline(recipe, tmp_path / "p.yaml").read_text()))
    section = spec["root"]["inputDefinitions"]["parameters"]["dpo_training_config"]["defaultValue"]
    assert section["method"] == recipe.dpo_training.method and section["strategy"] == "deepspeed_zero3"


def test_long_prompts_are_cut_to_the_token_budget_keeping_their_end():
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("pugc-tiny/policy"))
    question = "So which tent should I buy?"
    rows = [{"prompt": [{"role": "user", "content": "tents and stoves " * 200 + question}]},
            {"prompt": [{"role": "user", "content": "short?"}]}]
    assert cut_prompts(rows, tokenizer, 64) == 1
    templated = tokenizer.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, tokenize=True,
                                              return_dict=True)["input_ids"]
    assert len(templated) <= 64 and rows[0]["prompt"][0]["content"].endswith(question)
    assert rows[1]["prompt"][0]["content"] == "short?"
