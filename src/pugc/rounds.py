"""Online iterative training (the paper's Table 4): the training questions split into `rounds` parts; round r
samples with the policy round r-1 trained, and trains on from it.

Pure logic: which round a question belongs to, the engines with a round's policy, and the per-round figures
of summary.json (`rounds`). Bodies of components/round_split.py and round_report.py.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from pathlib import Path

from pugc import __version__
from pugc.io import JsonlWriter, iter_records, iter_rows, write_jsonl
from pugc.logs import setup_logging
from pugc.records import Instruction, StageResult
from pugc.runner.sharding import group_chunks
from pugc.summary import length_entry

log = logging.getLogger(__name__)
STAGE = "round_split"
ROUND_STAGES = ("response_sampling", "reward_scoring", "preference_pairs", "dpo_training", "evaluate")


def round_of(question_id: str, round_count: int) -> int:
    """The round (1-based) a question is trained in: by a hash of its id, the same on every run and machine,
    and independent of the held-out split's hash."""
    if round_count < 1:
        raise ValueError(f"rounds must be at least 1, got {round_count}")
    bucket = int(hashlib.sha256(f"round:{question_id}".encode()).hexdigest()[:12], 16)
    return bucket % round_count + 1


def split_round(questions: list[Instruction], round_index: int, round_count: int) -> StageResult:
    """This round's part of the training questions. The others are not dropped: each is another round's."""
    if not 1 <= round_index <= round_count:
        raise ValueError(f"round {round_index} is not one of rounds 1..{round_count}")
    kept = [q for q in questions if round_of(q.id, round_count) == round_index]
    return StageResult(STAGE, len(questions), kept, [], metrics={"round": float(round_index),
                                                                  "share": len(kept) / len(questions) if questions else 0.0})


def with_policy_model(engines: dict, model_path: str | None) -> dict:
    """The engines section with `policy.model` replaced by a trained round's checkpoint (a local path; on a
    cluster KFP mounts the artifact). A hub revision does not apply to a checkpoint folder, so it goes."""
    if not model_path:
        return engines
    policy = {key: value for key, value in (engines.get("policy") or {}).items() if key != "revision"}
    return {**engines, "policy": {**policy, "model": model_path}}


# ------------------------------------------------------------------------------------------ round split
def run_round_split(questions_path: str, round_index: int, round_count: int, output_path: str,
                    spent_before: dict | None = None) -> dict:
    """This round's questions, streamed in chunks (memory holds one chunk, not the question table)."""
    setup_logging()
    started = time.monotonic()
    n_in = n_out = 0
    with JsonlWriter(output_path) as output:
        for chunk in group_chunks(iter_records(questions_path, Instruction), None, itertools.repeat(SPLIT_CHUNK)):
            result = split_round(chunk, int(round_index), int(round_count))
            output.write_all(result.kept)
            n_in, n_out = n_in + result.n_in, n_out + len(result.kept)
    log.info("round_split: in %d, out %d (round %d of %d)", n_in, n_out, round_index, round_count)
    report = {"stage": STAGE, "counts": {"in": n_in, "out": n_out, "dropped": {}},
              "metrics": {"round": float(round_index), "share": n_out / n_in if n_in else 0.0},
              "seconds": round(time.monotonic() - started, 3), "pugc_version": __version__}
    if spent_before is None:
        return report
    from pugc.runner.budget import with_spending

    return with_spending(report, None, STAGE, spent_before)  # CPU only: passes the run's spending on



SPLIT_CHUNK = 2048


# ----------------------------------------------------------------------------------------- round report
def round_entry(round_index: int, lineages: dict[str, dict], evaluation: dict,
                against_previous: dict | None = None) -> dict:
    """One round's figures for summary.json: its questions, pairs, training, evaluation against the base
    policy (and, after round 1, against the previous round's model), and each round stage's counts (so the
    run's accounting can add the rounds up)."""
    training = lineages["dpo_training"].get("training") or {}
    as_int = lambda value: int(round(value))  # noqa: E731  (KFP hands metadata numbers back as floats)
    return {
        "round": int(round_index),
        "questions": as_int(lineages["response_sampling"]["rows_in"]),
        "pairs": as_int(lineages["preference_pairs"]["rows_out"]),
        "sampled_with": lineages["response_sampling"].get("model") or None,  # the policy that answered
        "base_model": training.get("base_model"),  # the policy training started from
        "final_loss": training.get("final_loss"),
        "steps": training.get("steps"),
        "win_rate": evaluation.get("win_rate"), "lc_win_rate": evaluation.get("lc_win_rate"),
        "mean_length": evaluation.get("mean_length"), "gate": evaluation.get("gate"),
        "vs_previous": {key: against_previous[key] for key in ("prompts", "win", "tie", "lose", "win_rate",
                                                                "lc_win_rate", "mean_length")}
        if against_previous else None,
        "lengths": length_entry(round_index, {stage: m.get("metrics") for stage, m in lineages.items()}, evaluation),
        "stages": {stage: {"in": as_int(m["rows_in"]), "out": as_int(m["rows_out"]),
                           "dropped": {reason: as_int(n) for reason, n in m["dropped"].items()}}
                   for stage, m in lineages.items()},
    }


def write_round_report(round_index: int, stage_artifacts: dict, evaluation_path: str, previous_rounds: str | None,
                       rounds_path: str, appended: dict[str, list], previous_evaluation_path: str | None = None
                       ) -> list[dict]:
    """Append this round to the earlier rounds' list (`rounds_path`, JSON). `appended`: {output path: the
    JSONL files it joins, earlier rounds' first (None: none)}, so the last round's outputs hold every round's
    dropped records and pairs. `stage_artifacts`: {stage: KFP artifact}, their lineage the round's counts."""
    from pugc.runner.artifacts import path_and_lineage

    setup_logging()
    read = {stage: path_and_lineage(artifact) for stage, artifact in stage_artifacts.items()}
    evaluation = json.loads(Path(evaluation_path).read_text(encoding="utf-8"))
    rounds = json.loads(Path(previous_rounds).read_text(encoding="utf-8")) if previous_rounds else []
    against_previous = json.loads(Path(previous_evaluation_path).read_text(encoding="utf-8")) \
        if previous_evaluation_path else None
    rounds.append(round_entry(round_index, {stage: lineage for stage, (_, lineage) in read.items()}, evaluation,
                              against_previous))
    Path(rounds_path).write_text(json.dumps(rounds, indent=2) + "\n", encoding="utf-8")
    for output, sources in appended.items():
        write_jsonl(output, (row for path in sources if path and Path(path).is_file() for _, row in iter_rows(path)))
    entry = rounds[-1]
    log.info("round_report: %d questions, %d pairs, final loss %s, win rate %s (round %d)", entry["questions"],
             entry["pairs"], entry["final_loss"], entry["win_rate"], entry["round"])
    return rounds


def add_rounds(stages: dict, rounds: list[dict]) -> dict:
    """The run's stage table with each round stage's counts summed over the rounds."""
    total = dict(stages)
    for stage in ROUND_STAGES:
        entries = [r["stages"][stage] for r in rounds if stage in r["stages"]]
        if not entries:
            continue
        dropped: dict[str, int] = {}
        for entry in entries:
            for reason, n in entry["dropped"].items():
                dropped[reason] = dropped.get(reason, 0) + n
        total[stage] = {**stages.get(stage, {}), "in": sum(e["in"] for e in entries),
                        "out": sum(e["out"] for e in entries), "dropped": dropped}
    return total
