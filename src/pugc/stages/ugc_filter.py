"""Stage 1: rate each UGC document's quality 1-5 and keep those at or above the threshold."""
from __future__ import annotations

from pugc.config import UGCFilterConfig
from pugc.engines.base import Engine, SamplingParams
from pugc.prompts import load_template
from pugc.records import Document, Dropped, StageResult, to_row
from pugc.stages.llm import judge, mean
from pugc.stages.verdicts import RATING_1_TO_5

STAGE = "ugc_filter"


def run(docs: list[Document], config: UGCFilterConfig, engine: Engine | None) -> StageResult:
    if config.threshold is None:  # filtering disabled: no model is needed
        return StageResult(STAGE, len(docs), kept=list(docs), metrics={"threshold_disabled": 1.0})
    template = load_template("ugc_quality")
    params = SamplingParams(
        max_tokens=config.max_tokens, temperature=config.temperature, top_p=config.top_p, n=config.n, seed=config.seed
    )
    judgements = judge(engine, [template.render(document=d.text) for d in docs], RATING_1_TO_5, config.mode, params)
    kept, dropped = [], []
    for doc, verdict in zip(docs, judgements):
        if verdict.score is None:
            dropped.append(Dropped(STAGE, "unparsable_judgement", doc.id, repr(verdict.raw[:2]), to_row(doc)))
            continue
        doc.quality = round(verdict.score, 4)
        if verdict.score >= config.threshold:
            kept.append(doc)
        else:
            dropped.append(Dropped(STAGE, "low_quality", doc.id, f"quality {verdict.score:.2f} < {config.threshold}", to_row(doc)))
    scores = [j.score for j in judgements if j.score is not None]
    return StageResult(
        STAGE, len(docs), kept, dropped,
        metrics={"quality_mean": mean(scores), "pass_rate": len(kept) / len(docs) if docs else 0.0},
    )
