"""The run's accounting: stage counts, a file of every rejected record, and a Markdown report."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from pugc.io import write_json, write_jsonl
from pugc.logs import setup_logging
from pugc.stage_runner import read_lineage, summarize

log = logging.getLogger(__name__)
FAILED_MARKER = "FAILED"  # in a local run's folder when the run failed or was interrupted: the reason, one line

STAGE_ORDER = ("ingest_ugc", "ugc_filter", "instruction_gen", "relevance_filter", "held_out_split",
               "response_sampling", "reward_scoring", "preference_pairs", "dpo_training", "evaluate")


def _rows(path: str) -> list[dict]:
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def rejected_rows(quarantine_path: str, dropped_paths: list[str]) -> list[dict]:
    """One row per record that did not make it, with the stage and reason; malformed lines as `malformed`."""
    rows = [
        {"stage": "ingest_ugc", "reason": f"malformed:{q['reason']}", "record_id": f"{q['source']}:{q['line']}",
         "detail": q["error"], "record": q}
        for q in _rows(quarantine_path)
    ]
    for path in dropped_paths:
        rows.extend(_rows(path))
    return rows


def stage_table(stages: dict) -> list[tuple[str, int, int, str]]:
    rows = []
    for name in STAGE_ORDER:
        if name in stages:
            counts = stages[name]
            dropped = ", ".join(f"{k}={v}" for k, v in counts["dropped"].items()) or "-"
            rows.append((name, counts["in"], counts["out"], dropped))
    return rows


def markdown_report(summary: dict) -> str:
    from pugc.reports import evaluation_sentence, number, training_sentence

    lines = [
        "# PUGC run summary", "",
        f"- input lines: {number(summary['input_lines'])} (quarantined {number(summary['quarantined'])})",
        f"- preference pairs: {number(summary['preference_pairs'])}", "",
        "| stage | in | out | dropped |", "|---|---:|---:|---|",
    ]
    lines += [f"| {name} | {number(n_in)} | {number(n_out)} | {dropped} |"
              for name, n_in, n_out, dropped in stage_table(summary["stages"])]
    training = summary.get("training") or {}
    if training:
        lines += ["", training_sentence(training)]
    if summary.get("evaluation"):
        lines += ["", evaluation_sentence(summary["evaluation"])]
    return "\n".join(lines) + "\n"


def write_run_summary(stage_artifacts: list, quarantine, recipe_digest: str, summary_path: str,
                      rejected_path: str, report_path: str, html_path: str | None = None,
                      evaluation_path: str | None = None) -> dict:
    """`stage_artifacts`/`quarantine`: KFP artifacts whose metadata carry each task's lineage (`publish`).
    `evaluation_path`: the evaluation gate's figures (pugc.evaluation), the summary's `evaluation` block."""
    lineages = [read_lineage(a) for a in [quarantine, *stage_artifacts]]
    summary = {"recipe_digest": recipe_digest, **summarize(lineages)}
    if evaluation_path:
        summary["evaluation"] = json.loads(Path(evaluation_path).read_text(encoding="utf-8"))
    dropped_paths = [a.path for a, m in zip(stage_artifacts, lineages[1:]) if m.get("stage") != "dpo_training"]
    rejected = write_jsonl(rejected_path, rejected_rows(quarantine.path, dropped_paths))
    write_json(summary_path, summary)
    Path(report_path).write_text(markdown_report(summary), encoding="utf-8")
    if html_path:
        from pugc.reports import run_summary_html

        Path(html_path).write_text(run_summary_html(summary), encoding="utf-8")
    setup_logging()
    log.info("run_summary: %d preference pairs, %d records rejected", summary["preference_pairs"], rejected)
    return summary
