"""A scalar reward model as the reward judge (backend reward_model; `pugc-tiny/reward`, a sequence-classification
Llama built locally, as Skywork-Reward is one): batched rewards equal one-at-a-time ones and a manual forward
pass; reward_scoring scores every response with it, ignores the reference with a warning, and accounts for a
reward that is not a number."""
import logging
import math

import pytest
import torch

from pugc.config import EngineConfig, RewardScoringConfig, load_recipe
from pugc.engines.reward_model import RewardModelEngine
from pugc.records import Response
from pugc.stages import reward_scoring

QUESTION = "Where does the tent go after a wet trip?"
ANSWERS = ["Dry it on the line first, then fold it loosely.", "In the shed.", "no " * 40]


@pytest.fixture(scope="module")
def reward_model():
    engine = RewardModelEngine(EngineConfig(backend="reward_model", model="pugc-tiny/reward", batch_size=2))
    yield engine
    engine.close()


def conversation(answer):
    return [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": answer}]


def test_batched_rewards_equal_single_ones_and_a_manual_forward_pass(reward_model):
    together = reward_model.score([conversation(a) for a in ANSWERS])
    alone = [reward_model.score([conversation(a)])[0] for a in ANSWERS]
    assert together == pytest.approx(alone, abs=1e-5) and len(set(together)) == 3
    ids = reward_model.conversation_ids(conversation(ANSWERS[0]))
    assert reward_model.tokenizer.decode(ids).endswith(ANSWERS[0] + "<|end|>\n")  # the answer is the last turn
    with torch.inference_mode():
        manual = reward_model.model(input_ids=torch.tensor([ids])).logits[0, 0].item()
    assert together[0] == pytest.approx(manual, abs=1e-5)


def test_reward_scoring_scores_every_response_and_says_the_reference_is_not_shown(reward_model, caplog):
    responses = [Response(id=f"r{i}", instruction_id="q1", doc_id="d1", response=a, sample_index=i)
                 for i, a in enumerate(ANSWERS)]
    with caplog.at_level(logging.WARNING):
        result = reward_scoring.run(responses, RewardScoringConfig(reference=True), reward_model,
                                    documents={"d1": "the UGC"}, instructions={"q1": QUESTION})
    expected = reward_model.score([conversation(a) for a in ANSWERS])
    assert [r.score for r in result.kept] == [round(x, 4) for x in expected]
    assert [r.judge_scores for r in result.kept] == [[x] for x in expected]
    assert "takes no reference answer" in caplog.text
    assert result.n_in == 3 and not result.dropped and len(result.side) == 3


class NotANumber:
    """A scalar reward model whose second reward is NaN (a fake: only the stage's accounting is under test)."""

    model_id = "nan-model"

    def score(self, conversations):
        return [1.0, math.nan][: len(conversations)]


def test_a_reward_that_is_not_a_number_is_dropped_and_accounted():
    responses = [Response(id=f"r{i}", instruction_id="q1", doc_id="d1", response="a", sample_index=i) for i in range(2)]
    result = reward_scoring.run(responses, RewardScoringConfig(reference=False), NotANumber(), documents={},
                                instructions={"q1": QUESTION})
    assert [r.id for r in result.kept] == ["r0"] and [d.reason for d in result.dropped] == ["non_finite_reward"]
    assert result.n_in == len(result.kept) + len(result.dropped)


def test_a_reward_model_cannot_generate(reward_model):
    from pugc.engines.base import Prompt, SamplingParams

    with pytest.raises(TypeError, match="it can only be engines.judge"):
        reward_model.generate([Prompt(({"role": "user", "content": "hi"},))], SamplingParams())


@pytest.mark.parametrize("overrides, words", [
    (["engines.judge={backend: reward_model, model: pugc-tiny/reward}"], "set engines.evaluator"),
    (["engines.generator.backend=reward_model"], "it can only be engines.judge"),
])
def test_a_reward_model_anywhere_but_the_judge_or_without_an_evaluator_is_refused(overrides, words):
    from pugc.checks import UserError

    with pytest.raises((UserError, ValueError), match=words):
        load_recipe("tiny", overrides)
