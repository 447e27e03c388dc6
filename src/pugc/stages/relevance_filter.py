"""Stage 3: keep a question only if its document holds enough information to answer it."""
from __future__ import annotations

from pugc.config import RelevanceFilterConfig
from pugc.engines.base import Engine, SamplingParams
from pugc.prompts import load_template
from pugc.records import Dropped, Instruction, StageResult, to_row
from pugc.stages.llm import judge, mean
from pugc.stages.verdicts import YES_NO

STAGE = "relevance_filter"


def run(instructions: list[Instruction], config: RelevanceFilterConfig, engine: Engine | None) -> StageResult:
    template = load_template("relevance")
    params = SamplingParams(
        max_tokens=config.max_tokens, temperature=config.temperature, top_p=config.top_p, n=config.n, seed=config.seed
    )
    prompts = [template.render(instruction=i.instruction, document=i.document) for i in instructions]
    judgements = judge(engine, prompts, YES_NO, config.mode, params)
    kept, dropped = [], []
    for item, verdict in zip(instructions, judgements):
        if verdict.score is None:
            dropped.append(Dropped(STAGE, "unparsable_judgement", item.id, repr(verdict.raw[:2]), to_row(item)))
            continue
        item.relevance = round(verdict.score, 4)
        if verdict.score >= config.threshold:
            kept.append(item)
        else:
            dropped.append(Dropped(STAGE, "not_relevant", item.id, f"P(yes) {verdict.score:.2f} < {config.threshold}", to_row(item)))
    scores = [j.score for j in judgements if j.score is not None]
    return StageResult(
        STAGE, len(instructions), kept, dropped,
        metrics={"relevance_mean": mean(scores), "pass_rate": len(kept) / len(instructions) if instructions else 0.0},
    )
