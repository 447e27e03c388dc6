"""Stage 1: rate each UGC document's quality 1-5 and keep those at or above the threshold (and, for a quality
band, at or below max_score)."""
from __future__ import annotations

from pugc.config import UGCFilterConfig
from pugc.engines.base import Engine
from pugc.prompts import load_template
from pugc.records import Document, StageResult
from pugc.metrics import MEAN, MetricRules
from pugc.stages.llm import filter_by_verdict, fit_documents, verdict_filter_metrics
from pugc.stages.verdicts import RATING_1_TO_5

STAGE = "ugc_filter"
METRICS = MetricRules({**verdict_filter_metrics("quality").rules, "threshold_disabled": MEAN})


def run(docs: list[Document], config: UGCFilterConfig, engine: Engine | None) -> StageResult:
    if config.threshold is None:  # filtering disabled: no model is needed
        return StageResult(STAGE, len(docs), kept=list(docs), metrics={"threshold_disabled": 1.0})
    template = load_template("ugc_quality")
    texts, truncated = fit_documents(engine, [d.text for d in docs], config.max_document_tokens)
    prompts = [template.render(document=text) for text in texts]
    result = filter_by_verdict(STAGE, docs, prompts, engine, RATING_1_TO_5, config, config.threshold,
                               score_field="quality", drop_reason="low_quality", ceiling=config.max_score)
    result.metrics["documents_truncated"] = float(truncated)
    return result
