"""The model and dataset cards, read back by the Hub's own card parser (huggingface_hub.ModelCard/DatasetCard)."""
import json

from huggingface_hub import DatasetCard, ModelCard

from pugc.cards import dataset_card, model_card, run_id_of

COLON_MODEL = "registry.example:5000/org/policy:v2"  # a model id a hand-written YAML line would break
QUOTED_LICENCE = 'CC BY-SA 4.0 "with attribution": see notes'


def summary(**changes) -> dict:
    base = {
        "recipe_digest": "755e0dbb9b81", "input_lines": 60, "quarantined": 2, "input_records": 58,
        "preference_pairs": 18,
        "stages": {
            "ingest_ugc": {"in": 58, "out": 55, "dropped": {"duplicate": 3}},
            "ugc_filter": {"in": 55, "out": 40, "dropped": {"low_quality": 15}, "model": "gen/model"},
            "instruction_gen": {"in": 40, "out": 40, "dropped": {}, "model": "gen/model"},
            "response_sampling": {"in": 20, "out": 80, "dropped": {}, "model": COLON_MODEL},
            "reward_scoring": {"in": 80, "out": 80, "dropped": {}, "model": "prometheus-eval/prometheus-7b-v2.0",
                               "model_revision": "abc123"},
            "preference_pairs": {"in": 20, "out": 18, "dropped": {"all_tied": 2}},
        },
        "training": {"base_model": COLON_MODEL, "method": "dpo", "steps": 4, "final_loss": 0.64, "pairs": 18,
                     "reward_accuracy": 0.95, "lora": False, "strategy": "ddp"},
        "evaluation": {"evaluator": {"model": "gpt-4-turbo", "revision": None}, "self_judged": False,
                       "prompts": 5, "win": 3, "tie": 1, "lose": 1, "win_rate": 0.7, "lc_win_rate": 0.65,
                       "baseline": "engines.policy",
                       "gate": {"passed": True, "reason": "win_rate 0.700 >= 0.5", "thresholds": {"min_win_rate": 0.5}},
                       "benchmarks": {"alpaca_eval": {"lc_win_rate": 0.31, "win_rate": 0.28, "prompts": 805},
                                      "mt_bench": {"trained": 6.9, "baseline": 6.5, "questions": 80}}},
        "input_licenses": {QUOTED_LICENCE: 30, "cc0-1.0": 10},
    }
    return {**base, **changes}


TRAINING = {"method": "dpo", "export_uri": "gs://bucket/exported", "master_dtype": "float32",
            "trainer": {"beta": 0.01, "learning_rate": 5e-7, "num_train_epochs": 1, "lr_scheduler_type": "cosine"}}
HANDOFF = {"license": QUOTED_LICENCE, "hub": {"repo_id": "me/pugc-model", "dataset_repo_id": "me/pugc-pairs"}}


def test_the_model_card_loads_with_the_hub_parser_and_keeps_its_metadata(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(model_card(summary(), TRAINING, HANDOFF, run_id="run-7"))
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["base_model"] == COLON_MODEL  # the colons survive as one value
    assert data["license"] == QUOTED_LICENCE  # and the quotes
    assert data["datasets"] == ["me/pugc-pairs"]
    assert {"pugc", "dpo", "trl"} <= set(data["tags"])
    results = {(r.dataset_name, r.metric_type): r for r in card.data.eval_results}
    assert results[("PUGC held-out questions", "win_rate")].metric_value == 0.7
    assert results[("PUGC held-out questions", "lc_win_rate")].metric_value == 0.65
    assert results[("AlpacaEval 2", "lc_win_rate")].metric_value == 0.31
    assert results[("MT-Bench", "mt_bench_score")].metric_value == 6.9
    assert all(r.metric_args == {"evaluator": "gpt-4-turbo", "self_judged": False} for r in results.values())
    assert results[("PUGC held-out questions", "win_rate")].metric_name == "win rate (graded by gpt-4-turbo)"
    assert data["pugc"]["gate"] == {"passed": True, "reason": "win_rate 0.700 >= 0.5"}
    assert data["pugc"]["run_id"] == "run-7" and data["pugc"]["self_judged"] is False
    assert data["pugc"]["hyperparameters"]["learning_rate"] == 5e-7
    assert list(data["pugc"]["hyperparameters"])[:2] == ["beta", "learning_rate"]  # headline first
    assert data["pugc"]["input_licenses"] == {QUOTED_LICENCE: 30, "cc0-1.0": 10}
    assert "&id" not in card.content  # plain YAML: no anchors and aliases for other readers
    assert "**passed**: win_rate 0.700 >= 0.5" in card.text and "Graded by **gpt-4-turbo**." in card.text


def test_a_self_judged_run_that_failed_its_gate_says_so(tmp_path):
    evaluation = {**summary()["evaluation"], "self_judged": True,
                  "evaluator": {"model": "prometheus-eval/prometheus-7b-v2.0", "revision": "abc123"},
                  "gate": {"passed": False, "reason": "win_rate 0.300 < 0.5"}, "benchmarks": {}}
    text = model_card(summary(evaluation=evaluation, input_licenses={}), TRAINING, {}, run_id="r")
    card = ModelCard(text)
    assert card.data.license == "other"  # no licence named in the recipe
    assert card.data.to_dict()["pugc"]["gate"]["passed"] is False
    assert "prometheus-eval/prometheus-7b-v2.0@abc123" in card.text and "self-judged" in card.text
    assert "**failed**: win_rate 0.300 < 0.5" in card.text
    assert "not recorded" in card.text  # no licence field: the card says so instead of inventing one
    assert {r.dataset_name for r in card.data.eval_results} == {"PUGC held-out questions"}  # no benchmarks ran


def test_the_dataset_card_loads_with_its_sizes_drops_judge_and_licences(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(dataset_card(summary(), run_id="run-7"))
    card = DatasetCard.load(path)
    data = card.data.to_dict()
    assert data["license"] == [QUOTED_LICENCE, "cc0-1.0"]  # every source licence, quotes intact
    assert data["size_categories"] == ["n<1K"] and data["task_categories"] == ["text-generation"]
    pugc = data["pugc"]
    assert pugc["preference_pairs"] == 18 and pugc["input_records"] == 58
    assert pugc["dropped"] == {"ingest_ugc": {"duplicate": 3}, "ugc_filter": {"low_quality": 15},
                               "preference_pairs": {"all_tied": 2}}
    assert pugc["models"] == {"generator": "gen/model", "policy": COLON_MODEL,
                              "judge": "prometheus-eval/prometheus-7b-v2.0@abc123"}
    assert "| ugc_filter | 55 | 40 | low_quality=15 |" in card.text
    assert json.dumps(pugc)  # plain data all the way down


def test_a_single_licence_is_a_plain_value_and_none_is_unknown():
    assert DatasetCard(dataset_card(summary(input_licenses={"cc-by-4.0": 3}), "r")).data.license == "cc-by-4.0"
    assert DatasetCard(dataset_card(summary(input_licenses={}), "r")).data.license == "unknown"


def test_the_run_id_is_read_from_an_output_uri_on_the_backend_and_locally():
    uuid = "0b4c2c3e-58a1-4f7e-9d1b-2f1c3e4d5a6b"
    assert run_id_of(f"gs://b/root/pugc/5f2e-run/run-summary/{uuid}/model_card") == "5f2e-run"
    assert run_id_of("/runs/x/artifacts/pugc-2026-12-04-17-47-14-608289/run-summary/model_card") \
        == "pugc-2026-12-04-17-47-14-608289"
