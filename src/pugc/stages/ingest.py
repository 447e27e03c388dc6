"""Stage 0: read raw UGC lines into Documents; quarantine malformed lines, drop duplicates, fail fast.

Every input line ends up in exactly one place: a Document, the quarantine (file, line number, reason code,
error), or a drop: not consented or not in a kept language (pugc.consent: `license_not_allowed`, `opted_out`,
`language_not_kept`), holding personal data that `input.personal_data` drops (pugc.personal_data:
`personal_data`; other values are redacted in the text, or kept, as it says), or a duplicate (exact, or near-duplicate by MinHash). input_lines = documents +
quarantined + dropped. An input with no valid record, or with more malformed lines than `max_malformed_fraction`,
stops the run here with `InputError`, before any model loads.

Hostile input never stops the run on its own (pugc.text states the rules): a line that is too long, not UTF-8,
not JSON or nested too deeply is quarantined with its reason; lone surrogates anywhere in a record become
U+FFFD and control characters leave the text, each repair counted (`IngestCounts.repaired`).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from pugc.config import InputConfig
from pugc.consent import Screens, licence_of
from pugc.personal_data import DROP_REASON, PersonalDataScreen
from pugc.records import Document, Dropped, StageResult, content_id
from pugc.text import (MAX_NESTING, REPLACEMENT, has_control_characters, nesting_exceeds, repair_surrogates,
                       without_control_characters, without_lone_surrogates)

STAGE = "ingest_ugc"
RAW_EXCERPT_CHARS = 500


class InputError(ValueError):
    """The input as a whole is unusable; the message names it and counts the reasons."""


@dataclass
class Quarantined:
    source: str
    line: int
    reason: str  # not_utf8, not_json, too_deep, blank_line, not_object, missing_text, not_string, empty, too_long, bad_id
    error: str
    raw: str = ""


@dataclass
class IngestResult:
    input_lines: int
    result: StageResult
    quarantined: list[Quarantined] = field(default_factory=list)


MAX_ID_CHARS = 256


def _shape_problem(row: Any) -> tuple[str, str] | None:
    """(reason code, message) if a parsed row is no object to read a document from (before any repair)."""
    if not isinstance(row, dict):
        return "not_object", f"expected a JSON object, got {type(row).__name__}"
    if nesting_exceeds(row):
        return "too_deep", f"objects and arrays nested over {MAX_NESTING} levels deep"
    return None


def _problem(row: dict, config: InputConfig) -> tuple[str, str] | None:
    """(reason code, message) if a repaired row cannot become a Document, else None."""
    name = config.text_field
    if name not in row:
        return "missing_text", f"missing text field '{name}'"
    text = row[name]
    if not isinstance(text, str):
        return "not_string", f"text field '{name}' is {type(text).__name__}, not a string"
    if not text.replace(REPLACEMENT, "").strip():  # nothing left but whitespace and replaced surrogates
        return "empty", f"text field '{name}' is empty"
    if len(text) > config.max_chars:
        return "too_long", f"text field '{name}' has {len(text)} characters, over input.max_chars={config.max_chars}"
    given_id = row.get(config.id_field)
    if given_id is not None and (isinstance(given_id, bool) or not isinstance(given_id, (str, int))):
        return "bad_id", f"id field '{config.id_field}' is {type(given_id).__name__}, not a string or integer"
    if isinstance(given_id, str) and len(given_id) > MAX_ID_CHARS:
        return "bad_id", f"id field '{config.id_field}' has {len(given_id)} characters, over {MAX_ID_CHARS}"
    return None


def _repaired(row: dict, config: InputConfig) -> tuple[dict, list[str]]:
    """The row with pugc.text's repairs applied (lone surrogates anywhere, control characters in the text), and
    the rules that changed it."""
    row, surrogates = repair_surrogates(row)
    rules = ["lone_surrogates"] if surrogates else []
    text = row.get(config.text_field)
    if isinstance(text, str) and has_control_characters(text):
        row[config.text_field] = without_control_characters(text)
        rules.append("control_characters")
    return row, rules


def _parse_problem(error: str) -> tuple[str, str]:
    reason = getattr(error, "reason", None) or ("blank_line" if error == "blank line" else "not_json")
    return reason, str(error)


def _near_duplicate_index(config: InputConfig):
    if not config.near_duplicates:
        return None
    from pugc.near_duplicates import NearDuplicateIndex

    return NearDuplicateIndex(config.near_duplicate_threshold)


class IngestCounts:
    """What ingest has seen so far, without holding the records: enough to judge whether the input is usable."""

    def __init__(self) -> None:
        self.input_lines = self.documents = 0
        self.unit = "lines"  # what input_lines counts: "records" for Parquet, CSV and TSV input (runner.ingest)
        self.dropped: Counter = Counter()  # duplicates by reason
        self.quarantined: Counter = Counter()
        self.repaired: Counter = Counter()  # lines repaired, by rule (pugc.text): lone_surrogates, control_characters
        self.sources: set[str] = set()
        self.examples: list[Quarantined] = []  # the first few malformed lines, for the one-line warning
        self.languages: dict[str, int] = {}  # identified language -> documents (with input.languages)
        self.licenses: Counter = Counter()  # licence -> documents kept (with input.license_field)
        self.personal_data: Counter = Counter()  # values found by type (pugc.personal_data), never the values


EXAMPLES_KEPT = 2


def stream(rows: Iterable[tuple[str, int, Any, str | None]], config: InputConfig, counts: IngestCounts,
           screens: Screens | None = None) -> Iterator[Document | Quarantined | Dropped]:
    """Each input row as exactly one of a Document, a Quarantined line or a `Dropped`, one at a time.
    `rows` as yielded by `pugc.io.iter_input_rows`: (file, line number, parsed row, None), or (file, line
    number, raw text, parse error) for a line that does not parse. `screens`: consent and language
    (pugc.consent), checked before duplicates, so a withdrawn document is never anyone's original. Held in
    memory: the ids and text digests seen, and the near-duplicate index."""
    screens = screens or Screens()
    personal_data = PersonalDataScreen.for_config(config.personal_data, "input.personal_data")
    seen_text: dict[str, str] = {}
    seen_ids: set[str] = set()
    near = _near_duplicate_index(config)
    for source, number, row, error in rows:
        counts.input_lines += 1
        repairs: list[str] = []
        problem = _parse_problem(error) if error else _shape_problem(row)
        if not problem:
            row, repairs = _repaired(row, config)
            problem = _problem(row, config)
        if problem:
            excerpt = "" if row is None else _excerpt(row if error else _bounded_dump(row))
            quarantined = Quarantined(source, number, problem[0], problem[1], excerpt)
            counts.quarantined[problem[0]] += 1
            counts.sources.add(source)
            if len(counts.examples) < EXAMPLES_KEPT:
                counts.examples.append(quarantined)
            yield quarantined
            continue
        counts.repaired.update(repairs)
        text = row[config.text_field].strip()
        digest = content_id(text)
        given_id = row.get(config.id_field)
        doc_id = str(given_id) if given_id not in (None, "") else digest
        where = {"doc_id": doc_id, "file": source, "line": number}
        if refused := screens.reason(doc_id, row, text, config, counts.languages):
            counts.dropped[refused[0]] += 1
            yield Dropped(STAGE, refused[0], doc_id, f"{source}:{number}: {refused[1]}", where)
            continue
        screened = personal_data.screen(text)
        counts.personal_data.update(screened.found)
        if screened.drop:
            counts.dropped[DROP_REASON] += 1
            yield Dropped(STAGE, DROP_REASON, doc_id, f"{source}:{number}: {screened.drop_detail()}", where)
            continue
        duplicate = None
        if digest in seen_text:
            duplicate = Dropped(STAGE, "duplicate", doc_id, f"{source}:{number} repeats {seen_text[digest]}", where)
        elif doc_id in seen_ids:
            duplicate = Dropped(STAGE, "duplicate_id", doc_id, f"{source}:{number} reuses id {doc_id!r}", where)
        elif similar := (near.match(doc_id, text) if near else None):
            detail = f"{source}:{number} near-duplicates {similar[0]} (Jaccard ~{similar[1]:.2f})"
            duplicate = Dropped(STAGE, "duplicate", doc_id, detail, where)
        if duplicate:
            counts.dropped[duplicate.reason] += 1
            yield duplicate
            continue
        seen_text[digest] = doc_id
        seen_ids.add(doc_id)
        meta = {k: v for k, v in row.items() if k not in (config.text_field, config.id_field)}
        meta.update(source_file=source, source_line=number)
        counts.documents += 1
        if config.license_field:
            counts.licenses[licence_of(row, config)] += 1
        yield Document(id=doc_id, text=screened.text, meta=meta)


def _bounded_dump(row: Any) -> str:
    """The start of a quarantined row as JSON; a row too deep to write is described instead."""
    if nesting_exceeds(row):
        return f"(a JSON {type(row).__name__} nested over 32 levels deep)"
    return json.dumps(repair_surrogates(row)[0], ensure_ascii=False)


def _excerpt(text: str) -> str:
    return without_lone_surrogates(text[:RAW_EXCERPT_CHARS])


def run(rows: Iterable[tuple[str, int, Any, str | None]], config: InputConfig) -> IngestResult:
    """Ingest held in memory (small inputs, tests); tasks write `stream`'s items as they come."""
    docs, quarantined, dropped = [], [], []
    counts = IngestCounts()
    for item in stream(rows, config, counts, Screens.for_config(config)):
        (docs if isinstance(item, Document) else quarantined if isinstance(item, Quarantined) else dropped).append(item)
    check_usable(counts, config)
    return IngestResult(counts.input_lines, StageResult(STAGE, counts.input_lines - len(quarantined), docs, dropped),
                        quarantined)


def check_usable(counts: IngestCounts, config: InputConfig) -> None:
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(counts.quarantined.items()))
    sources = sorted(counts.sources) or ["the input"]
    where = sources[0] if len(sources) == 1 else f"{sources[0]} (+{len(sources) - 1} more files)"
    if not counts.documents:
        dropped = ", ".join(f"{r} {n}" for r, n in sorted(counts.dropped.items()))
        raise InputError(f"input {where}: " + (f"no valid records in {counts.input_lines} lines" if not dropped
                                               else f"no documents left of {counts.input_lines} {counts.unit}")
                         + (f" (quarantined: {reasons})" if reasons else "")
                         + (f" (dropped: {dropped})" if dropped else ""))
    malformed = sum(counts.quarantined.values())
    fraction = malformed / counts.input_lines
    if fraction > config.max_malformed_fraction:
        raise InputError(f"input {where}: {malformed} of {counts.input_lines} {counts.unit} malformed "
                         f"({fraction:.0%} > input.max_malformed_fraction={config.max_malformed_fraction:.0%}): {reasons}")
