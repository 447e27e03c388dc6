"""Stage 0: read raw UGC lines into Documents; quarantine malformed lines and drop exact duplicates.

Every input line ends up in exactly one place: a Document, the quarantine (line number + error), or a
`duplicate` drop. input_lines = documents + quarantined + duplicates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from pugc.config import InputConfig
from pugc.records import Document, Dropped, StageResult, content_id

STAGE = "ingest_ugc"
RAW_EXCERPT_CHARS = 500


@dataclass
class Quarantined:
    source: str
    line: int
    error: str
    raw: str = ""


@dataclass
class IngestResult:
    input_lines: int
    result: StageResult
    quarantined: list[Quarantined] = field(default_factory=list)


def _validate(row: Any, config: InputConfig) -> str | None:
    """The reason a parsed row cannot become a Document, or None if it can."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    if config.text_field not in row:
        return f"missing text field '{config.text_field}'"
    text = row[config.text_field]
    if not isinstance(text, str):
        return f"text field '{config.text_field}' is {type(text).__name__}, not a string"
    if not text.strip():
        return f"text field '{config.text_field}' is empty"
    return None


def run(rows: Iterable[tuple[str, int, Any, str | None]], config: InputConfig) -> IngestResult:
    """`rows` as yielded by `pugc.io.iter_input_rows`: (file, line number, parsed row or None, parse error)."""
    docs, quarantined, dropped = [], [], []
    seen_text: dict[str, str] = {}
    seen_ids: set[str] = set()
    lines = 0
    for source, number, row, error in rows:
        lines += 1
        error = error or _validate(row, config)
        if error:
            excerpt = "" if row is None else str(row)[:RAW_EXCERPT_CHARS]
            quarantined.append(Quarantined(source, number, error, excerpt))
            continue
        text = row[config.text_field].strip()
        digest = content_id(text)
        given_id = row.get(config.id_field)
        doc_id = str(given_id) if given_id not in (None, "") else digest
        meta = {k: v for k, v in row.items() if k not in (config.text_field, config.id_field)}
        meta.update(source_file=source, source_line=number)
        if digest in seen_text:
            dropped.append(Dropped(STAGE, "duplicate", doc_id, f"{source}:{number} repeats {seen_text[digest]}",
                                   {"file": source, "line": number}))
            continue
        if doc_id in seen_ids:
            dropped.append(Dropped(STAGE, "duplicate_id", doc_id, f"{source}:{number} reuses id {doc_id!r}",
                                   {"file": source, "line": number}))
            continue
        seen_text[digest] = doc_id
        seen_ids.add(doc_id)
        docs.append(Document(id=doc_id, text=text, meta=meta))
    result = StageResult(STAGE, lines - len(quarantined), docs, dropped)
    return IngestResult(input_lines=lines, result=result, quarantined=quarantined)
