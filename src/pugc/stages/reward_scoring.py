"""Stage 5: score every response 1-5 with a Prometheus-style judge, the UGC document as reference answer."""
from __future__ import annotations

import logging
import math
from typing import Iterable

from pugc.config import RewardScoringConfig
from pugc.engines.base import Engine, Prompt, ScalarRewardModel
from pugc.metrics import MEAN, RECOMPUTED, SUM, MetricRules
from pugc.prompts import load_template
from pugc.records import Dropped, JudgeOutputs, Response, ScoredResponse, StageResult, ids_of, to_row
from pugc.stages.response_sampling import policy_prompt
from pugc.stages.llm import Judgement, drop_unscored, fit_documents, judge
from pugc.stages.verdicts import RESULT_1_TO_5

STAGE = "reward_scoring"
log = logging.getLogger(__name__)
RESULT_MARKER = "[RESULT]"


def score_figures(scored: Iterable[ScoredResponse]) -> dict[str, float]:
    """Mean and standard deviation of the scores over the whole output, in one streaming pass."""
    count, total, squares = 0, 0.0, 0.0
    for response in scored:
        count, total, squares = count + 1, total + response.score, squares + response.score ** 2
    mean = total / count if count else 0.0
    return {"score_mean": mean, "score_stdev": math.sqrt(max(squares / count - mean ** 2, 0.0)) if count else 0.0}


# parse_rate is per judge sample: weighting it by responses in is exact when every response has N samples.
METRICS = MetricRules({"score_mean": RECOMPUTED, "score_stdev": RECOMPUTED, "parse_rate": MEAN,
                       "judge_generated_tokens": SUM, "documents_truncated": SUM}, score_figures)


def judge_prompt(instruction: str, response: str, reference: str | None) -> Prompt:
    """Prometheus 2 absolute grading of `response`; `reference` is the score-5 answer, None the reference-free
    template (its own rubric: a rubric that speaks of a reference the judge never sees would mislead it)."""
    if reference is None:
        template = load_template("reward_judge_no_reference")
        return template.render(instruction=instruction, response=response, rubric=template.part("rubric"))
    template = load_template("reward_judge")
    return template.render(instruction=instruction, response=response, reference=reference,
                           rubric=template.part("rubric"))


def judge_prompts(engine: Engine, prompts: list[Prompt], config: RewardScoringConfig) -> list[Judgement]:
    """The judge's verdicts on ready prompts, in the configured mode (shared with `pugc judge-agreement`)."""
    return judge(
        engine, prompts, RESULT_1_TO_5, config.mode, config.sampling_params(),
        rationale_tokens=config.feedback_max_tokens, verdict_prefix=f"{RESULT_MARKER} ",
        rationale_stop=RESULT_MARKER, max_resamples=config.max_resamples,
    )


def judge_order(responses: list[Response]) -> list[int]:
    """Indices grouped by (instruction, document): the K responses share the judge prompt's long prefix."""
    return sorted(range(len(responses)), key=lambda i: (responses[i].instruction_id, responses[i].sample_index))


def run(responses: list[Response], config: RewardScoringConfig, engine: Engine, documents: dict[str, str],
        instructions: dict[str, str]) -> StageResult:
    """Outputs keep the input order; only the engine sees the prefix-grouped order. `documents` (doc_id -> text)
    and `instructions` (instruction_id -> question) are joined from their tables. The judge's raw text goes to
    the side artifact (`StageResult.side`), not onto the scored responses."""
    if isinstance(engine, ScalarRewardModel):
        return run_reward_model(responses, config, engine, instructions)
    order = judge_order(responses)
    doc_ids = list(dict.fromkeys(r.doc_id for r in responses))
    fitted, truncated = fit_documents(engine, [documents[d] for d in doc_ids], config.max_document_tokens)
    references = dict(zip(doc_ids, fitted)) if config.reference else {}
    judged = judge_prompts(engine, [
        judge_prompt(instructions[responses[i].instruction_id], responses[i].response, references.get(responses[i].doc_id))
        for i in order
    ], config)
    judgements = [None] * len(responses)
    for position, index in enumerate(order):
        judgements[index] = judged[position]
    kept, dropped, side = [], [], []
    for response, verdict in zip(responses, judgements):
        side.append(JudgeOutputs(response.id, response.instruction_id, verdict.raw))
        if verdict.score is None:
            dropped.append(drop_unscored(STAGE, response, verdict))
            continue
        kept.append(ScoredResponse(**to_row(response), score=round(verdict.score, 4), judge_scores=verdict.votes))
    votes = [v for j in judgements for v in j.votes]
    return StageResult(
        STAGE, len(responses), kept, dropped,
        metrics={
            **score_figures(kept),
            "parse_rate": sum(v is not None for v in votes) / len(votes) if votes else 0.0,
            "judge_generated_tokens": float(sum(j.generated_tokens for j in judgements)),
            "documents_truncated": float(truncated),
        },
        side=side,
    )


def run_reward_model(responses: list[Response], config: RewardScoringConfig, engine: "ScalarRewardModel",
                     instructions: dict[str, str]) -> StageResult:
    """A scalar reward model's score for each answer to its question (pugc.engines.reward_model). Such a model
    takes no reference, so the UGC document is not shown (said once per chunk); a reward that is not a finite
    number drops the response as `non_finite_reward`."""
    if config.reference:
        log.warning("%s is a scalar reward model: it takes no reference answer, so the UGC documents are not shown "
                    "to it (reward_scoring.reference ignored)", engine.model_id)
    rewards = engine.score([
        [*policy_prompt(instructions[r.instruction_id]).messages, {"role": "assistant", "content": r.response}]
        for r in responses])
    kept, dropped, side = [], [], []
    for response, reward in zip(responses, rewards):
        side.append(JudgeOutputs(response.id, response.instruction_id, [f"reward {reward!r}"]))
        if not math.isfinite(reward):
            dropped.append(Dropped(STAGE, "non_finite_reward", response.id, f"the reward model gave {reward!r}",
                                   ids_of(response)))
            continue
        kept.append(ScoredResponse(**to_row(response), score=round(reward, 4), judge_scores=[reward]))
    metrics = {**score_figures(kept), "parse_rate": len(kept) / len(responses) if responses else 0.0,
               "judge_generated_tokens": 0.0, "documents_truncated": 0.0}
    return StageResult(STAGE, len(responses), kept, dropped, metrics=metrics, side=side)
