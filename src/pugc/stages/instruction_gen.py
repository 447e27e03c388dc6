"""Stage 2: write the one self-contained question a reader might ask that the document answers."""
from __future__ import annotations

import re
from collections import Counter

from pugc.config import InstructionGenConfig
from pugc.engines.base import Engine
from pugc.metrics import SUM, MetricRules
from pugc.personal_data import DROP_REASON, METRIC_NAMES, PersonalDataScreen, count_metrics
from pugc.prompts import load_template
from pugc.records import Document, Dropped, Instruction, StageResult, content_id, ids_of
from pugc.stages.llm import engine_error_drop, fit_documents, generate_parsed

STAGE = "instruction_gen"
METRICS = MetricRules({"documents_truncated": SUM, **dict.fromkeys(METRIC_NAMES, SUM)})

# Labels and preambles that instruct models put before the question itself. Possessive quantifiers: each run
# of spaces, digits or stars is taken whole, so a long line that fails late is scanned once, not once per split.
_PREAMBLE = re.compile(
    r"^\s*+(?:(?:sure|okay|ok|certainly)[,!.]?\s*+)?"
    r"(?:here(?:'s| is)\s++(?:a|the|one)\s++(?:possible\s++)?question[^:\n]*+:\s*+)?"
    r"(?:\**+\s*+(?:question|q|instruction|user)\s*+\d*+\s*+\**+\s*+[:.)-]\s*+)?",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’`*"


def clean_question(text: str) -> str | None:
    """The question itself: preamble and labels stripped, first non-empty line, quotes removed; None if empty."""
    for line in (text or "").splitlines():
        candidate = _PREAMBLE.sub("", line.strip(), count=1).strip().strip(_QUOTES).strip()
        if candidate:
            return candidate
    return None


def run(docs: list[Document], config: InstructionGenConfig, engine: Engine) -> StageResult:
    template = load_template("instruction_gen")
    texts, truncated = fit_documents(engine, [d.text for d in docs], config.max_document_tokens)
    prompts = [template.render(document=text) for text in texts]
    outputs = generate_parsed(engine, prompts, config.sampling_params(), clean_question)
    screen = PersonalDataScreen.for_config(config.personal_data, f"{STAGE}.personal_data")
    kept, dropped, found = [], [], Counter()
    for doc, (parsed,) in zip(docs, outputs):
        if not parsed.value:
            dropped.append(engine_error_drop(STAGE, doc, parsed.error) if parsed.error else
                           Dropped(STAGE, "empty_instruction", doc.id, repr(parsed.completion.text[:200]), ids_of(doc)))
            continue
        # The model may copy an address or a phone number from the document into the question.
        question = screen.screen(parsed.value)
        found.update(question.found)
        if question.drop:
            dropped.append(Dropped(STAGE, DROP_REASON, doc.id, f"the question {question.drop_detail()}", ids_of(doc)))
            continue
        kept.append(
            Instruction(
                id=content_id(doc.id, question.text), doc_id=doc.id, instruction=question.text, meta=doc.meta,
                quality=doc.quality,
            )
        )
    return StageResult(STAGE, len(docs), kept, dropped,
                       metrics={"documents_truncated": float(truncated), **count_metrics(found)})
