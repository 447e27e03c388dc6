"""The run's accounting: stage counts, a file of every rejected record, and a Markdown report."""
from __future__ import annotations

import json
from pathlib import Path

from pugc.io import write_json, write_jsonl
from pugc.stage_runner import read_lineage, summarize

STAGE_ORDER = ("ingest_ugc", "ugc_filter", "instruction_gen", "relevance_filter", "response_sampling",
               "reward_scoring", "preference_pairs", "dpo_training")


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
    lines = [
        "# PUGC run summary", "",
        f"- input lines: {summary['input_lines']} (quarantined {summary['quarantined']})",
        f"- preference pairs: {summary['preference_pairs']}", "",
        "| stage | in | out | dropped |", "|---|---:|---:|---|",
    ]
    lines += [f"| {name} | {n_in} | {n_out} | {dropped} |" for name, n_in, n_out, dropped in stage_table(summary["stages"])]
    training = summary.get("training") or {}
    if training:
        lines += ["", f"DPO: {training.get('steps')} steps on {training.get('pairs')} pairs, "
                      f"final loss {training.get('final_loss')}, base {training.get('base_model')}"]
    return "\n".join(lines) + "\n"


def write_run_summary(stage_artifacts: list, quarantine, recipe_digest: str, summary_path: str,
                      rejected_path: str, report_path: str) -> dict:
    """`stage_artifacts`/`quarantine`: KFP artifacts whose metadata carry each task's lineage (`publish`)."""
    lineages = [read_lineage(a) for a in [quarantine, *stage_artifacts]]
    summary = {"recipe_digest": recipe_digest, **summarize(lineages)}
    dropped_paths = [a.path for a, m in zip(stage_artifacts, lineages[1:]) if m.get("stage") != "dpo_training"]
    write_jsonl(rejected_path, rejected_rows(quarantine.path, dropped_paths))
    write_json(summary_path, summary)
    Path(report_path).write_text(markdown_report(summary), encoding="utf-8")
    return summary
