"""Run the evaluation tasks from files: held-out split, evaluate (one shard), the gate's figures, the export.

The bodies of the evaluation components (components/held_out_split.py, evaluate.py, evaluation_gate.py,
export_model.py); like pugc.stage_runner it imports no kfp. Pure logic lives in pugc.stages.evaluate.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from pugc import __version__
from pugc.config import EngineConfig, EvaluationConfig, build
from pugc.io import iter_input_rows, read_records, write_json, write_jsonl
from pugc.logs import setup_logging
from pugc.records import Instruction, StageResult
from pugc.secrets import load_hf_token
from pugc.runner.sharding import shard_bounds
from pugc.runner.tally import check_accounting, format_dropped
from pugc.stages import evaluate

log = logging.getLogger(__name__)


def _report(result: StageResult, started: float, **extra) -> dict:
    return {"stage": result.stage, "counts": result.counts, "metrics": result.metrics,
            "seconds": round(time.monotonic() - started, 3), "pugc_version": __version__, **extra}


def document_texts(documents_path: str, doc_ids: set) -> dict[str, str]:
    """{doc_id: text} of the held-out questions' documents, streamed from the document table (ingest's `ugc`)."""
    from pugc.tables import DOCUMENT_TEXT, lookup

    return lookup(documents_path, DOCUMENT_TEXT, doc_ids)


# ------------------------------------------------------------------------------------- held-out split
def run_held_out_split(questions_path: str, section: dict, training_path: str, evaluation_path: str,
                       dropped_path: str) -> dict:
    """Relevant questions -> training questions (on to sampling) and the evaluation set (never trained on)."""
    setup_logging()
    config = build(EvaluationConfig, section, "evaluation")
    started = time.monotonic()
    result, held_out = evaluate.split_held_out(read_records(questions_path, Instruction), config.held_out_fraction)
    check_accounting(result)
    write_jsonl(training_path, result.kept)
    write_jsonl(evaluation_path, held_out)
    write_jsonl(dropped_path, result.dropped)
    log.info("held_out_split: in %d, out %d, dropped %s", result.n_in, len(result.kept),
             format_dropped(result.counts["dropped"]))
    return _report(result, started, model=None)


# ------------------------------------------------------------------------------------------- evaluate
def evaluation_prompts(held_out_path: str, documents_path: str, prompt_sets: list[str]) -> list[evaluate.EvalPrompt]:
    """The held-out questions (each with its UGC document), then every prompt set's rows, in file order."""
    questions = read_records(held_out_path, Instruction)
    prompts = evaluate.held_out_prompts(questions, document_texts(documents_path, {q.doc_id for q in questions}))
    for uri in prompt_sets:
        prompts += evaluate.prompts_from_rows(_prompt_rows(uri), Path(uri).name)
    return prompts


def _prompt_rows(uri: str) -> list[dict]:
    rows = []
    for source, line, row, error in iter_input_rows(uri, "jsonl"):
        if error and error != "blank line":
            raise ValueError(f"evaluation.prompt_sets: {source} line {line}: {error}")
        if not error:
            rows.append(row)
    return rows


def run_evaluate(held_out_path: str, documents_path: str, model_dir: str, section: dict, engines: dict,
                 shard_index: int, shard_count: int, judged_path: str, dropped_path: str) -> dict:
    """One shard of the evaluation prompts: answers from the trained model, then the baseline, then the judge,
    each loaded only while it works (one machine holds one model at a time)."""
    from pugc.engines import make_engine

    setup_logging()
    load_hf_token()
    config = build(EvaluationConfig, section, "evaluation")
    policy = build(EngineConfig, engines.get("policy", {}), "engines.policy")
    roles = {
        "trained": dataclasses.replace(policy, model=model_dir),
        # Another model as baseline: the policy's pinned revision belongs to the policy's repository, not to it.
        "baseline": dataclasses.replace(policy, model=local_model(config.baseline), revision=None)
        if config.baseline else policy,
        "judge": build(EngineConfig, engines.get("judge", {}), "engines.judge"),
    }
    started = time.monotonic()
    prompts = evaluation_prompts(held_out_path, documents_path, config.prompt_sets)
    start, end = shard_bounds(list(range(len(prompts))), int(shard_index), int(shard_count))
    prompts = prompts[start:end]
    log.info("evaluate: %d prompts (shard %d/%d)", len(prompts), int(shard_index) + 1, int(shard_count))
    answers = {}
    result = StageResult(evaluate.STAGE, 0, [], metrics=evaluate.figures([]))
    if prompts:
        for role in ("trained", "baseline"):
            with _loaded(make_engine, roles[role]) as engine:
                answers[role] = evaluate.answer(engine, prompts, config)
        with _loaded(make_engine, roles["judge"]) as engine:
            result = evaluate.judge_pairs(engine, prompts, answers["trained"], answers["baseline"], config.judge)
    check_accounting(result)
    write_jsonl(judged_path, result.kept)
    write_jsonl(dropped_path, result.dropped)
    log.info("evaluate: in %d, out %d, dropped %s", result.n_in, len(result.kept),
             format_dropped(result.counts["dropped"]))
    return _report(result, started, model=roles["judge"].model, shard_index=int(shard_index),
                   shard_count=int(shard_count))


def local_model(model: str) -> str:
    """A model id or path as is; a gs:// model (as export_model writes it) downloaded to local disk first."""
    import tempfile

    from pugc.gcs import download_model, is_gcs

    if not is_gcs(model):
        return model
    return str(download_model(model, tempfile.mkdtemp(prefix="pugc-baseline-")))


class _loaded:
    """`with _loaded(make_engine, config) as engine`: the engine is closed (its memory freed) on leaving."""

    def __init__(self, make, config):
        self.make, self.config, self.engine = make, config, None

    def __enter__(self):
        self.engine = self.make(self.config)
        return self.engine

    def __exit__(self, *exc):
        self.engine.close()


# ------------------------------------------------------------------------------------------- the gate
def run_evaluation_gate(judged_path: str, section: dict, evaluation_path: str, report_path: str) -> dict:
    """Figures over every judged prompt (all shards), the gate's decision, and the side-by-side HTML report.
    Writes and returns the `evaluation` block of summary.json."""
    from pugc.reports import evaluation_report_html

    setup_logging()
    config = build(EvaluationConfig, section, "evaluation")
    results = read_records(judged_path, evaluate.PairwiseResult)
    figures = evaluate.figures(results)
    decision = evaluate.decide_gate(figures, config.gate.min_win_rate, config.gate.min_lc_win_rate)
    summary = evaluation_summary(figures, decision, config)
    write_json(evaluation_path, summary)
    Path(report_path).write_text(evaluation_report_html(summary, results), encoding="utf-8")
    verdict = "passed" if decision.passed else "failed"
    log.info("evaluation_gate: %d judged: win %d, tie %d, lose %d, win rate %.3f, LC %.3f; gate %s (%s)",
             summary["prompts"], summary["win"], summary["tie"], summary["lose"], summary["win_rate"],
             summary["lc_win_rate"], verdict, decision.reason)
    return summary


def evaluation_summary(figures: dict, decision: evaluate.GateDecision, config: EvaluationConfig) -> dict:
    """The `evaluation` block of summary.json (design.md section 5)."""
    return {
        "prompts": int(figures["prompts"]),
        "win": int(figures["win"]), "tie": int(figures["tie"]), "lose": int(figures["lose"]),
        "win_rate": round(figures["win_rate"], 4), "lc_win_rate": round(figures["lc_win_rate"], 4),
        "mean_length": {
            "trained": {"tokens": round(figures["trained_mean_tokens"], 2), "chars": round(figures["trained_mean_chars"], 2)},
            "baseline": {"tokens": round(figures["baseline_mean_tokens"], 2),
                         "chars": round(figures["baseline_mean_chars"], 2)},
        },
        "baseline": config.baseline or "engines.policy",
        "gate": {"passed": decision.passed, "reason": decision.reason,
                 "thresholds": {"min_win_rate": config.gate.min_win_rate,
                                "min_lc_win_rate": config.gate.min_lc_win_rate}},
    }


EXIT_PASSED, EXIT_RUN_FAILED, EXIT_GATE_FAILED = 0, 1, 3  # `pugc run`, `pugc submit --wait`, `pugc status`


def gate_exit_code(summary: dict) -> int:
    """0 when the run's gate passed (or it has no evaluation), 3 when the gate failed."""
    gate = (summary.get("evaluation") or {}).get("gate") or {}
    return EXIT_GATE_FAILED if gate.get("passed") is False else EXIT_PASSED


def gate_line(summary: dict) -> str:
    from pugc.reports import evaluation_sentence

    return evaluation_sentence(summary["evaluation"]) if summary.get("evaluation") else "no evaluation in this run"


# ------------------------------------------------------------------------------------------- export
def run_export(model_dir: str, section: dict) -> dict:
    """Upload the gated model to `dpo_training.export_uri` (gs://); without one there is nothing to do.
    The section was validated when the recipe loaded; only its export_uri is read (no TRL on a CPU image)."""
    setup_logging()
    export_uri = section.get("export_uri") or ""
    if not export_uri:
        log.info("export_model: no dpo_training.export_uri: nothing uploaded")
        return {"export_uri": ""}
    from pugc.gcs import export_model

    exported = export_model(model_dir, export_uri)
    log.info("export_model: %d files to %s", exported["files"], exported["uri"])
    return {"export_uri": exported["uri"], "files": exported["files"]}
