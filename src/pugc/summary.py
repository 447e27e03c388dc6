"""The run's accounting: stage counts, a file of every rejected record, and a Markdown report."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator

from pugc.io import iter_rows, write_json, write_jsonl
from pugc.logs import setup_logging
from pugc.runner.artifacts import path_and_lineage

log = logging.getLogger(__name__)
FAILED_MARKER = "FAILED"  # in a local run's folder when the run failed or was interrupted: the reason, one line

STAGE_ORDER = ("ingest_ugc", "ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "held_out_split",
               "response_sampling", "reward_scoring", "preference_pairs", "dpo_training", "evaluate", "safety_eval")


def _rows(path: str) -> Iterator[dict]:
    if Path(path).is_file():
        yield from (row for _, row in iter_rows(path))


def rejected_rows(quarantine_path: str, dropped_paths: list[str]) -> Iterator[dict]:
    """One row per record that did not make it: stage, reason, record_id, detail and the ids it relates to;
    malformed lines as `malformed:<why>`, with their raw text (cut to ingest's excerpt length).
    Streamed, file after file: memory holds one row."""
    for q in _rows(quarantine_path):
        yield {"stage": "ingest_ugc", "reason": f"malformed:{q['reason']}", "record_id": f"{q['source']}:{q['line']}",
               "detail": q["error"], "ids": {"file": q["source"], "line": q["line"]}, "raw": q["raw"]}
    for path in dropped_paths:
        yield from _rows(path)


def stage_table(stages: dict) -> list[tuple[str, int, int, str]]:
    rows = []
    for name in STAGE_ORDER:
        if name in stages:
            counts = stages[name]
            dropped = ", ".join(f"{k}={v}" for k, v in counts["dropped"].items()) or "-"
            rows.append((name, counts["in"], counts["out"], dropped))
    return rows


LENGTH_FIGURES = {"response_sampling": {"response_chars_mean": "sampled_chars", "truncated_fraction": "truncated_fraction"},
                  "preference_pairs": {"chosen_chars_mean": "chosen_chars", "rejected_chars_mean": "rejected_chars",
                                       "cut_chosen": "cut_chosen", "cut_rejected": "cut_rejected"}}


def length_entry(round_index: int, stage_metrics: dict[str, dict], evaluation: dict | None) -> dict:
    """One round's lengths (characters): what the policy sampled and how much of it was cut, what the pairs
    chose and rejected, what the trained model answered on the held-out questions. Read down the rounds, it
    shows whether training is buying its wins with length. `stage_metrics`: stage -> its figures."""
    entry: dict = {"round": int(round_index)}
    for stage, names in LENGTH_FIGURES.items():
        figures = stage_metrics.get(stage) or {}
        entry |= {name: figures.get(figure) for figure, name in names.items()}
    trained = ((evaluation or {}).get("mean_length") or {}).get("trained") or {}
    return entry | {"trained_answer_chars": trained.get("chars")}


def length_trend(summary: dict) -> list[dict]:
    """The summary's `lengths`: a row per training round (one for a single-round run)."""
    if summary.get("rounds"):
        return [r["lengths"] for r in summary["rounds"] if r.get("lengths")]
    metrics = {stage: counts.get("metrics") for stage, counts in summary["stages"].items()}
    return [length_entry(1, metrics, summary.get("evaluation"))] if "preference_pairs" in metrics else []


LENGTH_HEADER = ["round", "sampled chars", "cut at max_tokens", "chosen chars", "rejected chars",
                 "cut chosen", "cut rejected", "trained answer chars"]


def length_rows(lengths: list[dict]) -> list[list[str]]:
    from pugc.reports import number

    percent = lambda fraction: "-" if fraction is None else f"{100 * fraction:.1f}%"  # noqa: E731
    return [[str(e["round"]), number(e.get("sampled_chars")), percent(e.get("truncated_fraction")),
             number(e.get("chosen_chars")), number(e.get("rejected_chars")), number(e.get("cut_chosen")),
             number(e.get("cut_rejected")),
             number(e.get("trained_answer_chars"))] for e in lengths]


COST_HEADER = ["stage", "task seconds", "GPUs", "GPU-hours", "tokens in", "tokens out", "tokens/s", "cost"]


def cost_rows(cost: dict) -> list[list[str]]:
    """The `cost` block (pugc.cost.account) as table rows, a total row last. On a local run the GPU-hours are 0
    and the column shows what the recipe's resources would have held, marked `would be`."""
    from pugc.reports import number

    local = cost.get("where") == "local"
    money = lambda value: "-" if value is None else f"{value:,.4g} {cost.get('currency', '')}".strip()  # noqa: E731
    hours = lambda entry: (f"0 (would be {entry['would_be_gpu_hours']:.4g})" if local  # noqa: E731
                           else f"{entry['gpu_hours']:.4g}")
    rows = []
    for stage in STAGE_ORDER:
        entry = cost["stages"].get(stage)
        if entry is None:
            continue
        rows.append([stage, number(entry["task_seconds"]),
                     f"{entry.get('would_be_accelerators', entry['accelerators'])} {entry['accelerator_type']}".strip(),
                     hours(entry), f"{entry['tokens_in']:,}", f"{entry['tokens_out']:,}",
                     number(entry.get("throughput")), money(entry.get("cost"))])
    total = cost["total"]
    would_be = sum(e.get("would_be_gpu_hours", 0.0) for e in cost["stages"].values())
    rows.append(["total", number(total["task_seconds"]), "",
                 f"0 (would be {would_be:.4g})" if local else f"{total['gpu_hours']:.4g}",
                 f"{total['tokens_in']:,}", f"{total['tokens_out']:,}", "", money(total.get("cost"))])
    return rows


def cost_sentence(cost: dict) -> str:
    total = cost["total"]
    per_pair = total.get("per_preference_pair") or {}
    where = " (a local run holds no accelerator)" if cost.get("where") == "local" else ""
    text = f"cost: {total['gpu_hours']:.4g} GPU-hours{where}, {total['tokens_in'] + total['tokens_out']:,} tokens"
    if total.get("cost") is not None:
        text += f", {total['cost']:,.4g} {cost.get('currency', '')}"
    if per_pair:
        text += f"; per preference pair {per_pair['gpu_hours']:.3g} GPU-hours, {per_pair['tokens']:,} tokens"
        if per_pair.get("cost") is not None:
            text += f", {per_pair['cost']:.4g} {cost.get('currency', '')}"
    return text


def markdown_report(summary: dict) -> str:
    from pugc.reports import evaluation_sentence, number, training_sentence

    lines = [
        "# PUGC run summary", "",
        f"- input {summary.get('input_unit', 'lines')}: {number(summary['input_lines'])} "
        f"(quarantined {number(summary['quarantined'])})",
        f"- preference pairs: {number(summary['preference_pairs'])}", "",
        "| stage | in | out | dropped |", "|---|---:|---:|---|",
    ]
    lines += [f"| {name} | {number(n_in)} | {number(n_out)} | {dropped} |"
              for name, n_in, n_out, dropped in stage_table(summary["stages"])]
    if found := personal_data_line(summary):
        lines += ["", f"- {found}"]
    if summary.get("lengths"):
        lines += ["", "| " + " | ".join(LENGTH_HEADER) + " |", "|---" + "|---:" * (len(LENGTH_HEADER) - 1) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in length_rows(summary["lengths"])]
    if summary.get("cost"):
        lines += ["", cost_sentence(summary["cost"]), "",
                  "| " + " | ".join(COST_HEADER) + " |", "|---" + "|---:" * (len(COST_HEADER) - 1) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cost_rows(summary["cost"])]
    training = summary.get("training") or {}
    if training:
        lines += ["", training_sentence(training)]
    if summary.get("evaluation"):
        lines += ["", evaluation_sentence(summary["evaluation"])]
    return "\n".join(lines) + "\n"


def pair_licenses(pairs_path: str, documents_path: str, license_field: str) -> dict[str, int]:
    """Preference pairs per source licence (`input.license_field` of each pair's document; `unknown` where a
    document has none): what the training data is made of, as a data review asks. Two streaming passes: the
    pairs' document ids, then the document table."""
    from collections import Counter

    from pugc.io import iter_rows

    if not license_field:
        return {}
    per_document = Counter(row["doc_id"] for _, row in iter_rows(pairs_path))
    counts: Counter = Counter()
    for _, row in iter_rows(documents_path):
        if row["id"] in per_document:
            value = (row.get("meta") or {}).get(license_field)
            counts[value.strip() if isinstance(value, str) and value.strip() else "unknown"] += per_document[row["id"]]
    return dict(sorted(counts.items()))


def write_run_summary(stage_artifacts: list, quarantine, recipe_digest: str, summary_path: str,
                      rejected_path: str, report_path: str, html_path: str | None = None,
                      evaluation_path: str | None = None, rounds_path: str | None = None,
                      rounds_dropped_path: str | None = None, safety_path: str | None = None,
                      safety_artifacts: list = (), cost_settings: dict | None = None,
                      pair_sources: tuple[str, str, str] | None = None) -> dict:
    """`stage_artifacts`/`quarantine`: KFP artifacts whose metadata carry each task's lineage (`publish`).
    `evaluation_path`: the evaluation gate's figures (pugc.evaluation), the summary's `evaluation` block.
    `rounds_path`/`rounds_dropped_path`: every training round's figures and drops (pugc.rounds); the round
    stages' counts are then their sums over the rounds. `cost_settings`: the recipe's `cluster` and `engines`
    sections, for the `cost` block (pugc.cost). `pair_sources`: (pairs, document table, input.license_field), for
    `pair_licenses`."""
    (quarantine_path, quarantine_lineage), *stages = [path_and_lineage(a)
                                                      for a in [quarantine, *stage_artifacts, *safety_artifacts]]
    summary = {"recipe_digest": recipe_digest, **summarize([quarantine_lineage, *(m for _, m in stages)])}
    if evaluation_path:
        summary["evaluation"] = json.loads(Path(evaluation_path).read_text(encoding="utf-8"))
    if safety_path:
        add_safety(summary, json.loads(Path(safety_path).read_text(encoding="utf-8")))
    skipped = {"dpo_training"}
    if rounds_path:
        from pugc.rounds import ROUND_STAGES, add_rounds

        summary["rounds"] = json.loads(Path(rounds_path).read_text(encoding="utf-8"))
        summary["stages"] = add_rounds(summary["stages"], summary["rounds"])
        summary["preference_pairs"] = summary["stages"]["preference_pairs"]["out"]
        skipped |= set(ROUND_STAGES)
    summary["lengths"] = length_trend(summary)
    if pair_sources:
        summary["pair_licenses"] = pair_licenses(*pair_sources)
    if cost_settings:
        from pugc.cost import account, settings_of

        summary["cost"] = account(settings_of(cost_settings), summary["stages"], summary["preference_pairs"],
                                  local=False)
    dropped_paths = [path for path, m in stages if m.get("stage") not in skipped]
    dropped_paths += [rounds_dropped_path] if rounds_dropped_path else []
    rejected = write_jsonl(rejected_path, rejected_rows(quarantine_path, dropped_paths))
    write_json(summary_path, summary)
    Path(report_path).write_text(markdown_report(summary), encoding="utf-8")
    if html_path:
        from pugc.reports import run_summary_html

        Path(html_path).write_text(run_summary_html(summary), encoding="utf-8")
    setup_logging()
    log.info("run_summary: %d preference pairs, %d records rejected", summary["preference_pairs"], rejected)
    return summary


def add_safety(summary: dict, safety: dict) -> None:
    """evaluation.safety (pugc.safety_eval); a failed safety gate fails the run's gate, its reason appended."""
    evaluation = summary.setdefault("evaluation", {})
    evaluation["safety"] = safety
    gate = evaluation.get("gate")
    if gate is not None and not safety["gate"]["passed"]:
        gate["passed"] = False
        gate["reason"] = f"{gate['reason']}; safety: {safety['gate']['reason']}"


def summarize(lineages: list[dict]) -> dict:
    """The run's accounting from every task's lineage (`read_lineage`)."""
    as_int = lambda value: int(round(value))  # noqa: E731  (KFP hands metadata numbers back as floats)
    ingest = next(m for m in lineages if m["stage"] == "ingest_ugc")
    stages = {
        m["stage"]: {
            "in": as_int(m["rows_in"]), "out": as_int(m["rows_out"]),
            "dropped": {reason: as_int(n) for reason, n in m["dropped"].items()},
            "metrics": m.get("metrics", {}), "seconds": m.get("seconds"),
            # cost accounting (pugc.cost): task seconds summed over shards, the engines' tokens
            "task_seconds": m.get("task_seconds", m.get("seconds")),
            "tokens_in": as_int(m.get("tokens_in", 0)), "tokens_out": as_int(m.get("tokens_out", 0)),
            **{key: m[key] for key in ("model", "model_revision") if m.get(key)},  # which weights judged/sampled
        }
        for m in lineages
    }
    training = next((m.get("training") for m in lineages if m["stage"] == "dpo_training"), None)
    return {
        "input_lines": as_int(ingest["input_lines"]),
        "input_unit": ingest.get("input_unit") or "lines",  # lines (JSONL) or records (Parquet, CSV, TSV)
        "quarantined": as_int(ingest["quarantined"]),
        "input_records": as_int(ingest["input_lines"]) - as_int(ingest["quarantined"]),
        "stages": stages,
        "preference_pairs": stages.get("preference_pairs", {}).get("out", 0),
        "training": training,
        # documents kept at ingest by licence (input.license_field; empty without one)
        "input_licenses": {name: as_int(n) for name, n in (ingest.get("licenses") or {}).items()},
        # personal data found by type in each screened stage's text (pugc.personal_data), never the values
        "personal_data": personal_data_found(stages),
    }


def personal_data_found(stages: dict) -> dict[str, dict[str, int]]:
    """Stage -> values found by type, for the stages that screen (ingest, questions, responses)."""
    from pugc.personal_data import counts_in

    return {name: found for name, figures in stages.items() if (found := counts_in(figures.get("metrics") or {}))}


def personal_data_line(summary: dict) -> str | None:
    """One line for the console and the report: values found by type per stage (all redacted, dropped or
    kept as the recipe says)."""
    found = summary.get("personal_data") or {}
    if not found:
        return None
    parts = [f"{stage} " + (", ".join(f"{kind} {n}" for kind, n in counts.items() if n) or "none")
             for stage, counts in found.items()]
    return "personal data found: " + "; ".join(parts)
