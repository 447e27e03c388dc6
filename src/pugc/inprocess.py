"""The whole pipeline in one Python process, stage after stage, without KFP.

The same stage runner the components call, on files in a work folder: for debugging a stage with a
debugger, and for measuring what the local KFP runner adds (bench/cpu_bench.py). It runs one round, up to
DPO (no evaluation).
"""
from __future__ import annotations

import time
from pathlib import Path

from pugc.config import Recipe
from pugc.evaluation import run_held_out_split
from pugc.stage_runner import run_ingest, run_stage, run_training

LLM_STAGES = ("ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "response_sampling", "reward_scoring")


def run_in_process(recipe: Recipe, input_uri: str, work_dir: str | Path) -> dict:
    """Run every stage in order, one training round; returns each stage's report and the wall time."""
    if recipe.rounds != 1:
        raise ValueError(f"rounds: {recipe.rounds}: the in-process run trains one round; several rounds run "
                         "through the pipeline (`pugc run`)")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    sections = recipe.to_dict()
    started = time.monotonic()
    reports = {"ingest_ugc": run_ingest(input_uri, sections["input"], str(work / "ugc.jsonl"),
                                        str(work / "quarantine.jsonl"), str(work / "ingest.dropped.jsonl"))}
    current = work / "ugc.jsonl"
    tables = {"documents": str(work / "ugc.jsonl"), "instructions": str(work / "relevance_filter.jsonl")}
    for stage in LLM_STAGES + ("preference_pairs",):
        if stage == "response_sampling":  # the held-out questions never reach sampling (pugc.evaluation)
            reports["held_out_split"] = run_held_out_split(
                str(current), sections["evaluation"], str(work / "training_questions.jsonl"),
                str(work / "evaluation_questions.jsonl"), str(work / "held_out_split.dropped.jsonl"),
                tables["documents"])
            current = work / "training_questions.jsonl"
        output = work / f"{stage}.jsonl"
        reports[stage] = run_stage(stage, str(current), str(output), str(work / f"{stage}.dropped.jsonl"),
                                   sections[stage], sections["engines"], tables=tables)
        current = output
    reports["dpo_training"] = run_training(str(current), str(work / "model"), sections["dpo_training"],
                                           sections["engines"])
    return {"reports": reports, "wall_seconds": round(time.monotonic() - started, 2)}
