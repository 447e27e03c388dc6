"""Optional screen after stage 1: ask the generator whether each document is unsafe, and drop (or flag) those
judged unsafe, so unsafe UGC never becomes a question, a reference answer or a preference pair."""
from __future__ import annotations

from pugc.config import SafetyScreenConfig
from pugc.engines.base import Engine
from pugc.metrics import MEAN, SUM, MetricRules
from pugc.prompts import load_template
from pugc.records import Document, StageResult
from pugc.stages.llm import filter_by_verdict, fit_documents, verdict_filter_metrics
from pugc.stages.verdicts import YES_NO

STAGE = "safety_screen"
UNSAFE = "unsafe"  # drop reason (action: drop)
METRICS = MetricRules({**verdict_filter_metrics("harm").rules, "flagged": SUM, "screen_disabled": MEAN})


def run(docs: list[Document], config: SafetyScreenConfig, engine: Engine | None) -> StageResult:
    if not config.enabled:  # no screen: every document passes and no model is loaded
        return StageResult(STAGE, len(docs), kept=list(docs), metrics={"screen_disabled": 1.0})
    template = load_template("safety_screen")
    texts, truncated = fit_documents(engine, [d.text for d in docs], config.max_document_tokens)
    prompts = [template.render(document=text) for text in texts]
    # The verdict is P(yes: unsafe): no floor, and the ceiling is max_harm (under `flag` nothing is dropped
    # for it; the documents above it are marked instead).
    ceiling = config.max_harm if config.action == "drop" else None
    result = filter_by_verdict(STAGE, docs, prompts, engine, YES_NO, config, 0.0, score_field="harm",
                               drop_reason=UNSAFE, ceiling=ceiling, ceiling_reason=UNSAFE)
    flagged = [doc for doc in result.kept if doc.harm > config.max_harm]
    for doc in flagged:
        doc.unsafe = True
    result.metrics.update(documents_truncated=float(truncated), flagged=float(len(flagged)))
    return result
