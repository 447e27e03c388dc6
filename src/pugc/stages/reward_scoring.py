"""Stage 5: score every response 1-5 with a Prometheus-style judge, the UGC document as reference answer."""
from __future__ import annotations

import statistics

from pugc.config import RewardScoringConfig
from pugc.engines.base import Engine, Prompt
from pugc.prompts import load_template
from pugc.records import Dropped, Response, ScoredResponse, StageResult, to_row
from pugc.stages.llm import Judgement, fit_documents, judge
from pugc.stages.verdicts import RESULT_1_TO_5

STAGE = "reward_scoring"
RESULT_MARKER = "[RESULT]"


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


def run(responses: list[Response], config: RewardScoringConfig, engine: Engine) -> StageResult:
    """Outputs keep the input order; only the engine sees the prefix-grouped order."""
    order = judge_order(responses)
    documents = {r.doc_id: r.document for r in responses}
    fitted, truncated = fit_documents(engine, list(documents.values()), config.max_document_tokens)
    references = dict(zip(documents, fitted))
    ordered = [responses[i] for i in order]
    judged = judge_prompts(engine, [
        judge_prompt(r.instruction, r.response, references[r.doc_id] if config.reference else None) for r in ordered
    ], config)
    judgements = [None] * len(responses)
    for position, index in enumerate(order):
        judgements[index] = judged[position]
    kept, dropped = [], []
    for response, verdict in zip(responses, judgements):
        if verdict.score is None:
            dropped.append(Dropped(STAGE, "unparsable_judgement", response.id, repr(verdict.raw[:2]), to_row(response)))
            continue
        kept.append(
            ScoredResponse(**to_row(response), score=round(verdict.score, 4), judge_scores=verdict.votes,
                           judge_outputs=verdict.raw)
        )
    scores = [r.score for r in kept]
    votes = [v for j in judgements for v in j.votes]
    return StageResult(
        STAGE, len(responses), kept, dropped,
        metrics={
            "score_mean": statistics.fmean(scores) if scores else 0.0,
            "score_stdev": statistics.pstdev(scores) if scores else 0.0,
            "parse_rate": sum(v is not None for v in votes) / len(votes) if votes else 0.0,
            "judge_generated_tokens": float(sum(j.generated_tokens for j in judgements)),
            "documents_truncated": float(truncated),
        },
    )
