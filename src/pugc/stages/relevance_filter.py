"""Stage 3: keep a question only if its document holds enough information to answer it."""
from __future__ import annotations

from pugc.config import RelevanceFilterConfig
from pugc.engines.base import Engine
from pugc.prompts import load_template
from pugc.records import Instruction, StageResult
from pugc.stages.llm import filter_by_verdict, fit_documents, verdict_filter_metrics
from pugc.stages.verdicts import YES_NO

STAGE = "relevance_filter"
METRICS = verdict_filter_metrics("relevance")


def run(instructions: list[Instruction], config: RelevanceFilterConfig, engine: Engine,
        documents: dict[str, str]) -> StageResult:
    """`documents`: doc_id -> text, joined from the document table."""
    template = load_template("relevance")
    texts, truncated = fit_documents(engine, [documents[i.doc_id] for i in instructions], config.max_document_tokens)
    prompts = [template.render(instruction=i.instruction, document=text) for i, text in zip(instructions, texts)]
    result = filter_by_verdict(STAGE, instructions, prompts, engine, YES_NO, config, config.threshold,
                               score_field="relevance", drop_reason="not_relevant")
    result.metrics["documents_truncated"] = float(truncated)
    return result
