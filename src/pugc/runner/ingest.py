"""Stage 0 from files: raw input -> Documents, streamed; every malformed line quarantined (line number + error)."""
from __future__ import annotations

import logging
import time

from pugc import __version__
from pugc.config import InputConfig, build
from pugc.consent import Screens
from pugc.io import JsonlWriter, iter_input_rows
from pugc.logs import setup_logging
from pugc.personal_data import count_metrics, found_summary
from pugc.records import Document

log = logging.getLogger(__name__)


def run_ingest(input_uri: str, section: dict, ugc_path: str, quarantine_path: str, dropped_path: str,
               named_as: tuple[str, str] | None = None) -> dict:
    """`named_as` (local path, URI): the input is a local copy of that URI, and records name their file by it."""
    from pugc.stages import ingest

    setup_logging()
    config = build(InputConfig, section, "input")
    if not input_uri:
        raise ValueError("no input: pass --input (or the input_uri pipeline parameter) or set input.uri in the recipe")
    started = time.monotonic()
    counts = ingest.IngestCounts()
    counts.unit = input_unit(input_uri, config.format)
    with JsonlWriter(ugc_path) as ugc, JsonlWriter(quarantine_path) as quarantine, \
            JsonlWriter(dropped_path) as dropped:
        rows = iter_input_rows(input_uri, config.format, config.max_line_bytes)
        screens = Screens.for_config(config)  # the opt-out list and language model, before the first line
        for item in ingest.stream(_renamed(rows, named_as) if named_as else rows, config, counts, screens):
            (ugc if isinstance(item, Document) else quarantine if isinstance(item, ingest.Quarantined)
             else dropped).write(item)
        ingest.check_usable(counts, config)  # before the outputs appear: an unusable input leaves none
    quarantined = sum(counts.quarantined.values())
    if quarantined:
        log.warning("%s", quarantine_summary(counts))
    if counts.repaired:
        log.warning("%s", repair_summary(counts))
    duplicates = sum(counts.dropped.values())  # duplicates, and documents refused consent or language
    report = {
        "stage": ingest.STAGE,
        "counts": {"in": counts.input_lines - quarantined, "out": counts.documents, "dropped": dict(sorted(counts.dropped.items()))},
        "input_lines": counts.input_lines, "quarantined": quarantined, "model": None,
        "metrics": {**{f"repaired_{rule}": float(lines) for rule, lines in sorted(counts.repaired.items())},
                    **{f"language_{code}": float(n) for code, n in sorted(counts.languages.items())},
                    **count_metrics(counts.personal_data)},
        "licenses": dict(sorted(counts.licenses.items())), "input_unit": counts.unit,
        "seconds": round(time.monotonic() - started, 3), "pugc_version": __version__,
    }
    if counts.documents + duplicates + quarantined != counts.input_lines:
        raise RuntimeError(f"ingest: {counts.input_lines} lines, but {counts.documents + duplicates} "
                           f"documents or duplicates and {quarantined} quarantined")
    log.info("ingest: %d lines, %d documents, %d quarantined, %d dropped (%s)", counts.input_lines, counts.documents,
             quarantined, duplicates, ", ".join(f"{r} {n}" for r, n in sorted(counts.dropped.items())) or "none")
    log.info("ingest: personal data found: %s", found_summary(counts.personal_data))
    return report


def input_unit(input_uri: str, declared: str) -> str:
    """What the input's counts count: JSONL lines, or the records of Parquet, CSV and TSV files (a CSV record
    may span lines; a Parquet row is no line at all)."""
    from pugc.io import file_format, input_files

    kinds = {file_format(source, declared) or "jsonl" for source in input_files(input_uri)}
    return "lines" if kinds == {"jsonl"} else "records"


def _renamed(rows, named_as: tuple[str, str]):
    local, uri = named_as
    for source, number, row, error in rows:
        yield uri + source[len(local):] if source.startswith(local) else source, number, row, error


QUARANTINE_EXAMPLES = 2


def quarantine_summary(counts) -> str:
    """One line for any number of malformed lines: the count by reason and the first few, not one line each."""
    total = sum(counts.quarantined.values())
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.quarantined.items()))
    examples = "; ".join(f"line {q.line}: {q.error}" for q in counts.examples[:QUARANTINE_EXAMPLES])
    more = f"; {total - QUARANTINE_EXAMPLES} more" if total > QUARANTINE_EXAMPLES else ""
    return (f"quarantined {total} of {counts.input_lines} {counts.unit} ({reasons}): {examples}{more} "
            "(all in rejected.jsonl)")


REPAIRS = {"lone_surrogates": "lone surrogates replaced by U+FFFD", "control_characters": "control characters removed"}


def repair_summary(counts) -> str:
    """One line for the lines kept after a stated repair (pugc.text), by rule."""
    rules = ", ".join(f"{REPAIRS[rule]} in {n}" for rule, n in sorted(counts.repaired.items()))
    return f"repaired input lines of {counts.input_lines} ({rules}); those documents are kept"
