"""The records that flow between stages, in one place.

Each stage reads one record type and writes the next; every record keeps the id of the UGC document it came
from (`doc_id`), so any preference pair can be traced back to its source line. Records travel as JSONL rows.

Text travels once: the document table is ingest's output (Documents keyed by `id`), questions live on
Instructions, and later records carry ids plus their own text; a stage that needs another record's text joins
its table (`pugc.tables`, declared by the stage's `StageSpec.joins`).
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def content_id(*parts: str, length: int = 16) -> str:
    """A stable id from content: the same text always gets the same id, on any machine."""
    # surrogatepass: any str has an id (a lone surrogate from a served model's reply included); valid text
    # encodes exactly as UTF-8, so ids do not change.
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:length]


@dataclass
class Document:
    """One piece of user-generated content; `meta` holds every other input field, passed through."""

    id: str
    text: str
    meta: dict = field(default_factory=dict)
    quality: float | None = None  # ugc_filter's 1-5 rating
    harm: float | None = None  # safety_screen's P(unsafe), or its fraction of unsafe votes
    unsafe: bool = False  # judged unsafe and kept for review (safety_screen action: flag)


@dataclass
class Instruction:
    """A reader's question that the document answers; the document (joined by `doc_id`) is its reference answer."""

    id: str
    doc_id: str
    instruction: str
    meta: dict = field(default_factory=dict)
    quality: float | None = None
    relevance: float | None = None  # relevance_filter's P(yes) or fraction of yes votes


@dataclass
class Response:
    """One policy sample for a question; the question and document are joined by id where needed."""

    id: str
    instruction_id: str
    doc_id: str
    response: str
    sample_index: int
    num_tokens: int = 0
    finish_reason: str = "stop"


@dataclass
class ScoredResponse(Response):
    score: float | None = None  # mean judge score over the samples that parsed (or the expectation)
    judge_scores: list = field(default_factory=list)  # one per judge sample; None where it did not parse


@dataclass
class JudgeOutputs:
    """The judge's raw text for one response (every sample, re-draws included): a side artifact to inspect."""

    response_id: str
    instruction_id: str
    outputs: list = field(default_factory=list)


@dataclass
class PreferencePair:
    """TRL's conversational preference format, plus where the pair came from and how far apart it is."""

    prompt: list
    chosen: list
    rejected: list
    score_chosen: float
    score_rejected: float
    margin: float
    instruction_id: str
    doc_id: str
    chosen_id: str
    rejected_id: str


@dataclass
class Dropped:
    """A record a stage did not pass on, and why (a reason code, plus free-text detail). `ids` names the
    records it relates to (doc_id, instruction_id; for ingest, the input file and line), never their text."""

    stage: str
    reason: str
    record_id: str
    detail: str = ""
    ids: dict = field(default_factory=dict)


def ids_of(record: Any) -> dict:
    """The ids a dropped record is traced by."""
    ids = {name: getattr(record, name) for name in ID_FIELDS if getattr(record, name, None)}
    if isinstance(record, Document):  # a document's own id is the doc_id its descendants carry
        ids["doc_id"] = record.id
    return ids


ID_FIELDS = ("doc_id", "instruction_id")


@dataclass
class StageResult:
    """What one stage did: the records it kept, the ones it dropped (with reasons), and its figures."""

    stage: str
    n_in: int
    kept: list
    dropped: list[Dropped] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    side: list = field(default_factory=list)  # rows of the stage's side artifact (StageSpec.side_output)

    @property
    def counts(self) -> dict[str, Any]:
        return {
            "in": self.n_in,
            "out": len(self.kept),
            "dropped": dict(sorted(Counter(d.reason for d in self.dropped).items())),
        }


class RecordError(ValueError):
    """A row that does not fit its record type; the message names where it came from and the key."""


def to_row(record: Any) -> dict:
    return dataclasses.asdict(record)


def from_row(cls: type[T], row: Any, where: str) -> T:
    if not isinstance(row, dict):
        raise RecordError(f"{where}: expected a JSON object for {cls.__name__}, got {type(row).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = [
        name for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in row]
    if missing:
        raise RecordError(f"{where}: {cls.__name__} record lacks key(s) {', '.join(missing)}")
    return cls(**{k: v for k, v in row.items() if k in fields})
