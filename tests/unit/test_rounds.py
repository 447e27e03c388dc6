"""Online iterative rounds: the deterministic split of the training questions, a round's policy, the figures."""
import pytest

from pugc.config import ConfigError, load_recipe
from pugc.records import Instruction
from pugc.rounds import add_rounds, round_of, split_round, with_policy_model
from pugc.stages import evaluate


def question(i: int) -> Instruction:
    return Instruction(id=f"q{i}", doc_id=f"d{i}", instruction=f"Question {i}?")


def test_every_training_question_falls_in_exactly_one_round_the_same_on_every_run():
    questions = [question(i) for i in range(300)]
    parts = [split_round(questions, r, 3).kept for r in (1, 2, 3)]
    assert sorted(q.id for part in parts for q in part) == sorted(q.id for q in questions)
    assert all(70 < len(part) < 130 for part in parts)  # about a third each
    again = [split_round(list(reversed(questions)), r, 3).kept for r in (1, 2, 3)]
    assert [{q.id for q in p} for p in parts] == [{q.id for q in p} for p in again]
    assert split_round(questions, 1, 1).kept == questions


def test_the_round_split_accounts_for_its_input_and_drops_nothing():
    result = split_round([question(i) for i in range(50)], 2, 2)
    assert result.counts["in"] == 50 and result.counts["out"] == len(result.kept) and result.dropped == []


def test_rounds_do_not_follow_the_held_out_split():
    """Both hash the question id, salted apart: the held-out share is the same in every round."""
    ids = [f"q{i}" for i in range(2000)]
    for r in (1, 2):
        in_round = [i for i in ids if round_of(i, 2) == r]
        held = sum(evaluate.is_held_out(i, 0.25) for i in in_round) / len(in_round)
        assert 0.2 < held < 0.3


def test_a_round_index_outside_the_rounds_names_it():
    with pytest.raises(ValueError, match="round 3 is not one of rounds 1..2"):
        split_round([question(1)], 3, 2)
    with pytest.raises(ValueError, match="at least 1"):
        round_of("q1", 0)


def test_a_trained_checkpoint_replaces_the_policy_model_and_its_hub_revision():
    engines = {"policy": {"model": "org/base", "revision": "abc123", "backend": "hf"}, "judge": {"model": "j"}}
    assert with_policy_model(engines, None) is engines
    swapped = with_policy_model(engines, "/artifacts/round-1/dpo_model")
    assert swapped["policy"] == {"model": "/artifacts/round-1/dpo_model", "backend": "hf"}
    assert swapped["judge"] == {"model": "j"} and engines["policy"]["model"] == "org/base"


def test_round_stage_counts_add_up_over_the_rounds():
    stages = {"held_out_split": {"in": 10, "out": 8, "dropped": {"held_out": 2}},
              "preference_pairs": {"in": 3, "out": 2, "dropped": {"too_few": 1}, "seconds": 1.0}}
    rounds = [{"stages": {"preference_pairs": {"in": 5, "out": 4, "dropped": {"too_few": 1}}}},
              {"stages": {"preference_pairs": {"in": 3, "out": 2, "dropped": {"too_few": 1}}}}]
    total = add_rounds(stages, rounds)
    assert total["preference_pairs"] == {"in": 8, "out": 6, "dropped": {"too_few": 2}, "seconds": 1.0}
    assert total["held_out_split"] == stages["held_out_split"]


def test_rounds_is_a_top_level_recipe_setting():
    assert load_recipe("tiny").rounds == 1
    assert load_recipe("tiny", ["rounds=3"]).rounds == 3
    assert load_recipe("tiny", ["rounds=3"]).digest() != load_recipe("tiny").digest()
    with pytest.raises(ConfigError, match="rounds: must be at least 1, got 0"):
        load_recipe("tiny", ["rounds=0"])
    with pytest.raises(ConfigError, match="dpo_training.lora.merge: true"):
        load_recipe("tiny", ["rounds=2", "dpo_training.lora={merge: false}"])
    with pytest.raises(ConfigError, match="must name a section and a key"):
        load_recipe("tiny", ["reward_scoring=3"])
    with pytest.raises(ConfigError, match="rounds > 1 trains on one node"):  # a TrainJob cannot see the last model
        load_recipe("paper", ["rounds=2", "cluster.resources.dpo_training.nodes=2"])
