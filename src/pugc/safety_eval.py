"""Run the optional safety evaluation from files (the body of components/safety_eval.py; no kfp here).

The safety prompts (evaluation.safety.prompts) go through three passes of the shared runner, each with its model
loaded once: the trained model answers and the baseline answers (the evaluation's own answer passes), then the
evaluator judges every answer harmful or not (pugc.stages.safety_eval). Every prompt is accounted for: judged,
or dropped with its reason by the pass that failed it. Without safety prompts nothing is loaded.
"""
from __future__ import annotations

import logging
import time

from pugc.config import EvaluationConfig, build
from pugc.evaluation import combined_report, evaluation_engines, judge_section
from pugc.io import JsonlWriter, iter_input_rows, iter_rows, read_records, write_json
from pugc.logs import setup_logging
from pugc.runner.stage import run_stage
from pugc.scratch import scratch_folder
from pugc.stages import safety_eval
from pugc.stages.evaluate import STAGE as EVALUATE

log = logging.getLogger(__name__)


def write_safety_prompts(prompt_files: list[str], target: str) -> int:
    with JsonlWriter(target) as prompts:
        for uri in prompt_files:
            for source, line, row, error in iter_input_rows(uri, "jsonl"):
                if error and error.reason != "blank_line":
                    raise ValueError(f"evaluation.safety.prompts: {source} line {line}: {error}")
                if not error:
                    prompts.write(safety_eval.safety_prompt_from_row(row, uri.rsplit("/", 1)[-1], line))
    return prompts.count


def run_safety_eval(model_dir: str, section: dict, engines: dict, judged_path: str, dropped_path: str,
                    runtime: dict | None = None, scope: str = "") -> dict:
    """Both models answer every safety prompt, the evaluator judges each answer; returns the task's report."""
    setup_logging()
    config = build(EvaluationConfig, section, "evaluation")
    common = dict(engines=evaluation_engines(config, engines, model_dir), runtime=runtime, scope=scope)
    started = time.monotonic()
    with scratch_folder("safety_eval") as work:
        prompts = str(work / "prompts.jsonl")
        log.info("safety_eval: %d safety prompts", write_safety_prompts(config.safety.prompts, prompts))
        passes = [
            run_stage(f"{EVALUATE}_trained", prompts, str(work / "trained.jsonl"), str(work / "trained.dropped.jsonl"),
                      section, **common),
            run_stage(f"{EVALUATE}_baseline", str(work / "trained.jsonl"), str(work / "answered.jsonl"),
                      str(work / "baseline.dropped.jsonl"), section, **common),
            run_stage(safety_eval.STAGE, str(work / "answered.jsonl"), judged_path, str(work / "judge.dropped.jsonl"),
                      judge_section(section), **common),
        ]
        with JsonlWriter(dropped_path) as dropped:  # every pass's drops, under this task's stage name
            for name in ("trained", "baseline", "judge"):
                dropped.write_all({**row, "stage": safety_eval.STAGE}
                                  for _, row in iter_rows(work / f"{name}.dropped.jsonl"))
    return {**combined_report(passes, started), "stage": safety_eval.STAGE}


def run_safety_gate(judged_path: str, section: dict, safety_path: str) -> dict:
    """The `evaluation.safety` block of summary.json: harm rates over every judged prompt and, with
    evaluation.gate.max_harm_rate_increase, the safety gate's decision (`passed`, `reason`)."""
    config = build(EvaluationConfig, section, "evaluation")
    figures = safety_eval.harm_figures(read_records(judged_path, safety_eval.SafetyResult))
    decision = safety_eval.decide_safety_gate(figures, config.gate.max_harm_rate_increase)
    block = {"prompts": int(figures["safety_prompts"]),
             **{name: round(figures[name], 4) for name in ("trained_harm_rate", "baseline_harm_rate",
                                                          "harm_rate_increase")},
             "max_harm": config.safety.max_harm,
             "gate": {"passed": True if decision is None else decision.passed,
                      "reason": "not checked" if decision is None else decision.reason,
                      "max_harm_rate_increase": config.gate.max_harm_rate_increase}}
    write_json(safety_path, block)
    log.info("safety_eval: %d judged: harm rate trained %.3f, baseline %.3f; safety gate %s (%s)", block["prompts"],
             block["trained_harm_rate"], block["baseline_harm_rate"],
             "passed" if block["gate"]["passed"] else "failed", block["gate"]["reason"])
    return block
