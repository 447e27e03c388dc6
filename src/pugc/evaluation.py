"""Run the evaluation tasks from files: held-out split, evaluate (one shard), the gate's figures, the export.

The bodies of the evaluation components (components/held_out_split.py, evaluate.py, evaluation_gate.py,
export_model.py); like pugc.stage_runner it imports no kfp. Pure logic lives in pugc.stages.evaluate. The
held-out split and the three passes of evaluate are stages of the shared runner (pugc.runner.stage).
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path

from pugc import __version__
from pugc.config import BenchmarksConfig, EngineConfig, EvaluationConfig, build
from pugc.io import JsonlWriter, iter_input_rows, iter_records, iter_rows, read_records, write_json
from pugc.logs import setup_logging
from pugc.records import Instruction
from pugc.runner.budget import check_stage_budget, with_spending
from pugc.runner.stage import run_stage
from pugc.runner.tally import format_dropped
from pugc.scratch import scratch_folder
from pugc.stages import evaluate

log = logging.getLogger(__name__)
LOCAL_BACKEND = "hf"  # what answers for a served (openai) policy's checkpoints: a server cannot load them


# ------------------------------------------------------------------------------------- held-out split
def run_held_out_split(questions_path: str, section: dict, training_path: str, evaluation_path: str,
                       dropped_path: str, documents_path: str, spent_before: dict | None = None) -> dict:
    """Relevant questions -> training questions (on to sampling; those containing an evaluation prompt dropped
    as contaminated) and the evaluation set (never trained on)."""
    return run_stage(evaluate.SPLIT_STAGE, questions_path, training_path, dropped_path, section,
                     side_path=evaluation_path, tables={"documents": documents_path}, spent_before=spent_before)


# ------------------------------------------------------------------------------------------- evaluate
def write_evaluation_prompts(held_out_path: str, prompt_sets: list[str], target: str,
                             benchmarks: BenchmarksConfig | None = None) -> int:
    """The held-out questions, every prompt set's rows in file order, then the benchmarks' prompts, as
    EvalPrompt rows (streamed)."""
    with JsonlWriter(target) as prompts:
        for question in iter_records(held_out_path, Instruction):
            prompts.write(evaluate.held_out_prompt(question))
        for uri in prompt_sets:
            for source, line, row, error in iter_input_rows(uri, "jsonl"):
                if error and error.reason != "blank_line":
                    raise ValueError(f"evaluation.prompt_sets: {source} line {line}: {error}")
                if not error:
                    prompts.write(evaluate.prompt_from_row(row, Path(uri).name, line))
        prompts.write_all(evaluate.benchmark_prompts(benchmarks or BenchmarksConfig()))
    return prompts.count


def evaluation_engines(config: EvaluationConfig, engines: dict, model_dir: str) -> dict:
    """Who answers and who judges: the trained checkpoint, the baseline (evaluation.baseline, else the starting
    policy) and the judge, as the passes' engine roles. A checkpoint folder has no hub revision, and a server
    (backend openai) cannot load one: checkpoints answer on the local backend."""
    policy = build(EngineConfig, engines.get("policy", {}), "engines.policy")
    local = policy if policy.backend != "openai" else dataclasses.replace(policy, backend=LOCAL_BACKEND, options={})
    if local is not policy:
        log.info("evaluate: the policy is served (openai); trained checkpoints answer on the %s backend", LOCAL_BACKEND)
    baseline = dataclasses.replace(local, model=local_model(config.baseline), revision=None) if config.baseline \
        else policy
    trained = dataclasses.replace(local, model=model_dir, revision=None)
    return {"trained": dataclasses.asdict(trained), "baseline": dataclasses.asdict(baseline),
            "judge": engines.get("evaluator") or engines.get("judge", {})}  # the evaluator grades, if the recipe names one


def run_evaluate(held_out_path: str, documents_path: str, model_dir: str, section: dict, engines: dict,
                 shard_index: int, shard_count: int, judged_path: str, dropped_path: str,
                 runtime: dict | None = None, scope: str = "", drop_stage: str = evaluate.STAGE,
                 spent_before: dict | None = None) -> dict:
    """One shard of the evaluation prompts through three runner passes, each with its model loaded once:
    the trained model answers, the baseline answers, the judge compares. Each pass is chunked and checkpointed
    (a retried task resumes where it stopped, the finished passes included), stops on its engine-error budget
    (`evaluation.max_engine_error_fraction`; the judge's, `evaluation.judge.max_engine_error_fraction`), and
    accounts for every prompt: judged, or dropped with its reason by the pass that failed it. `drop_stage` names
    the comparison in the drops (`evaluate_previous`: a round against the previous round's model), so the
    run's rejected records tell the two comparisons of one prompt apart. `spent_before`: as `run_stage`'s, the
    budget checked on every evaluation prompt before the first model loads."""
    setup_logging()
    config = build(EvaluationConfig, section, "evaluation")
    roles = evaluation_engines(config, engines, model_dir)
    started = time.monotonic()
    common = dict(engines=roles, runtime=runtime, scope=scope)
    with scratch_folder("evaluate") as work:
        prompts = str(work / "prompts.jsonl")
        count = write_evaluation_prompts(held_out_path, config.prompt_sets, prompts, config.benchmarks)
        log.info("evaluate: %d evaluation prompts (%d held out, the rest from evaluation.prompt_sets)", count,
                 sum(1 for _ in iter_records(held_out_path, Instruction)))
        if spent_before is not None:
            check_stage_budget(runtime, evaluate.STAGE, prompts, spent_before)
        trained = run_stage(f"{evaluate.STAGE}_trained", prompts, str(work / "trained.jsonl"),
                            str(work / "trained.dropped.jsonl"), section, shard_index=shard_index,
                            shard_count=shard_count, keep_checkpoints=True, **common)
        baseline = run_stage(f"{evaluate.STAGE}_baseline", str(work / "trained.jsonl"), str(work / "answered.jsonl"),
                             str(work / "baseline.dropped.jsonl"), section, keep_checkpoints=True, **common)
        judged = run_stage(evaluate.STAGE, str(work / "answered.jsonl"), judged_path, str(work / "judge.dropped.jsonl"),
                           judge_section(section), tables={"documents": documents_path}, **common)
        with JsonlWriter(dropped_path) as dropped:
            for name in ("trained", "baseline", "judge"):
                dropped.write_all({**row, "stage": drop_stage} for _, row in iter_rows(work / f"{name}.dropped.jsonl"))
    for finished in (trained, baseline):  # the whole shard is judged: the answer passes' progress is spent
        if finished["checkpoints"]:
            shutil.rmtree(finished["checkpoints"], ignore_errors=True)
    report = combined_report([trained, baseline, judged], started)
    log.info("evaluate: in %d, out %d, dropped %s", report["counts"]["in"], report["counts"]["out"],
             format_dropped(report["counts"]["dropped"]))
    return report if spent_before is None else with_spending(report, runtime, evaluate.STAGE, spent_before)


def judge_section(section: dict) -> dict:
    """The judge pass's section: the evaluation's, with the judge's own engine-error budget."""
    judge = section.get("judge") or {}
    budget = judge.get("max_engine_error_fraction")
    return section if budget is None else {**section, "max_engine_error_fraction": budget}


def combined_report(passes: list[dict], started: float) -> dict:
    """The task's report: prompts in (the first pass's), judged out, every pass's drops; the judge's figures."""
    dropped: dict[str, int] = {}
    for report in passes:
        for reason, count in report["counts"]["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + count
    first, judged = passes[0], passes[-1]
    return {**judged, "counts": {"in": first["counts"]["in"], "out": judged["counts"]["out"],
                                 "dropped": dict(sorted(dropped.items()))},
            "seconds": round(time.monotonic() - started, 3), "shard_index": first["shard_index"],
            "shard_count": first["shard_count"], "checkpoints": None,
            "resumed_chunks": sum(report["resumed_chunks"] for report in passes),
            "tokens_in": sum(report.get("tokens_in", 0) for report in passes),
            "tokens_out": sum(report.get("tokens_out", 0) for report in passes),
            "answer_models": {report["stage"]: report["model"] for report in passes[:-1]}}


def local_model(model: str) -> str:
    """A model id or path as is; a gs:// model (as export_model writes it) downloaded to local disk first."""
    import tempfile

    from pugc.gcs import download_model, is_gcs

    if not is_gcs(model):
        return model
    return str(download_model(model, tempfile.mkdtemp(prefix="pugc-baseline-")))


# ------------------------------------------------------------------------------------------- the gate
def run_evaluation_gate(judged_path: str, section: dict, evaluation_path: str, report_path: str,
                        engines: dict | None = None) -> dict:
    """Figures over every judged prompt (all shards), the gate's decision, and the side-by-side HTML report.
    Writes and returns the `evaluation` block of summary.json. `engines` says who graded: a run whose evaluation
    the reward judge graded says so in the summary, the gate's reason and the report."""
    from pugc.config import EnginesConfig
    from pugc.reports import evaluation_report_html

    setup_logging()
    config = build(EvaluationConfig, section, "evaluation")
    roles = build(EnginesConfig, engines or {}, "engines")
    results = read_records(judged_path, evaluate.PairwiseResult)
    figures = evaluate.figures(results)
    benchmarks = benchmark_figures(results, config.benchmarks, roles.grader.model)
    decision = evaluate.decide_gate({**figures, **gate_figures(benchmarks)}, config.gate)
    if roles.self_judged:
        decision = evaluate.GateDecision(decision.passed, f"{decision.reason}; {SELF_JUDGED}")
    for note in evaluate.gate_notes(figures, results):
        decision = evaluate.GateDecision(decision.passed, f"{decision.reason}; {note}")
    summary = evaluation_summary(figures, decision, config, roles, benchmarks)
    write_json(evaluation_path, summary)
    Path(report_path).write_text(evaluation_report_html(summary, results), encoding="utf-8")
    verdict = "passed" if decision.passed else "failed"
    log.info("evaluation_gate: %d judged: win %d, tie %d, lose %d, win rate %.3f, LC %.3f; gate %s (%s)",
             summary["prompts"], summary["win"], summary["tie"], summary["lose"], summary["win_rate"],
             summary["lc_win_rate"], verdict, decision.reason)
    return summary


SELF_JUDGED = "self-judged: the reward judge, whose scores made the training pairs, graded it"


def benchmark_figures(results: list, benchmarks: BenchmarksConfig, annotator: str) -> dict:
    """Each configured benchmark's figures, by its own protocol (pugc.stages.benchmarks)."""
    from pugc.alpaca_eval_lc import alpaca_eval_figures
    from pugc.stages import benchmarks as protocols

    figures = {}
    if benchmarks.alpaca_eval:
        judged = [r for r in results if r.benchmark == protocols.ALPACA_EVAL]
        annotations = protocols.alpaca_eval_annotations(judged, annotator)
        figures["alpaca_eval"] = {**alpaca_eval_figures(annotations, benchmarks.alpaca_eval.glm_data),
                                  "reference_generator": judged[0].reference_generator if judged else None}
    if benchmarks.mt_bench:
        figures["mt_bench"] = protocols.mt_bench_figures(r for r in results if r.benchmark == protocols.MT_BENCH)
    return figures


def gate_figures(benchmarks: dict) -> dict:
    """The benchmark figures the gate may bound (evaluate.GATE_FIGURES)."""
    alpaca, mt_bench = benchmarks.get("alpaca_eval") or {}, benchmarks.get("mt_bench") or {}
    return {"alpaca_eval_prompts": alpaca.get("prompts", 0), "alpaca_eval_lc_win_rate": alpaca.get("lc_win_rate"),
            "mt_bench_questions": mt_bench.get("questions", 0), "mt_bench_score": mt_bench.get("trained")}


def evaluation_summary(figures: dict, decision: evaluate.GateDecision, config: EvaluationConfig,
                       engines=None, benchmarks: dict | None = None) -> dict:
    """The `evaluation` block of summary.json (design.md section 5), with who graded it when `engines` is given."""
    graded = {} if engines is None else {
        "evaluator": {"model": engines.grader.model, "revision": engines.grader.revision},
        "judge": {"model": engines.judge.model, "revision": engines.judge.revision},
        "self_judged": engines.self_judged}
    return {**graded,
        "prompts": int(figures["prompts"]),
        "win": int(figures["win"]), "tie": int(figures["tie"]), "lose": int(figures["lose"]),
        "win_rate": round(figures["win_rate"], 4), "lc_win_rate": round(figures["lc_win_rate"], 4),
        "mean_length": {model: {"tokens": round(figures[f"{model}_mean_tokens"], 2),
                                "chars": round(figures[f"{model}_mean_chars"], 2),
                                "cut_fraction": round(figures[f"{model}_cut_fraction"], 4)}
                        for model in ("trained", "baseline")},
        "baseline": config.baseline or "engines.policy",
        **({"benchmarks": benchmarks} if benchmarks else {}),
        "gate": {"passed": decision.passed, "reason": decision.reason, "thresholds": config.gate.thresholds,
                 "min_prompts": config.gate.min_prompts},
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
def run_export(model_uri: str, section: dict, model_card_path: str | None = None) -> dict:
    """Copy the gated model (its gs:// URI on a cluster, a local folder in a local run) to
    `dpo_training.export_uri` (gs://), with the model card as its README.md; without one there is nothing to
    do. The section was validated when the recipe loaded; only its export_uri is read (no TRL on a CPU image)."""
    setup_logging()
    export_uri = section.get("export_uri") or ""
    if not export_uri:
        log.info("export_model: no dpo_training.export_uri: nothing uploaded")
        return {"export_uri": ""}
    from pugc.gcs import copy_model, export_model, is_gcs

    card = {"README.md": Path(model_card_path).read_bytes()} if model_card_path else {}
    exported = (copy_model(model_uri, export_uri, extra_files=card) if is_gcs(model_uri)
                else export_model(model_uri, export_uri, extra_files=card))
    log.info("export_model: %d files to %s", exported["files"], exported["uri"])
    return {"export_uri": exported["uri"], "files": exported["files"]}
