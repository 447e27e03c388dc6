"""Run one stage from files: read its input artifact, build its config and engine, call it, write, report.

This is the body of every KFP component and of `pugc stage`; it imports no kfp, so it runs anywhere.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

from pugc import __version__
from pugc.config import STAGE_CONFIGS, EngineConfig, build
from pugc.io import make_world_readable, read_records, write_jsonl
from pugc.lineage import decode, encode as lineage_metadata
from pugc.logs import setup_logging
from pugc.records import StageResult
from pugc.secrets import load_hf_token

log = logging.getLogger(__name__)


def check_accounting(result: StageResult, per_group_key: str | None = None) -> None:
    """Every input record is passed on or dropped with a reason; anything else is a bug worth stopping for."""
    if per_group_key:  # 1:K stages: count the distinct inputs that produced output
        produced = {getattr(r, per_group_key) for r in result.kept}
        accounted = len(produced) + len(result.dropped)
    else:
        accounted = len(result.kept) + len(result.dropped)
    if accounted != result.n_in:
        raise RuntimeError(f"{result.stage}: {result.n_in} records in, but {accounted} passed or dropped")


def shard_bounds(keys: list, index: int, count: int) -> tuple[int, int]:
    """[start, end) of shard `index` of `count`: contiguous, near-equal, never splitting a run of equal keys."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside 0..{count - 1}")

    def boundary(k: int) -> int:
        cut = round(len(keys) * k / count)
        while 0 < cut < len(keys) and keys[cut] == keys[cut - 1]:
            cut += 1
        return cut

    return boundary(index), boundary(index + 1)


def run_stage(stage: str, input_path: str, output_path: str, dropped_path: str, section: dict,
              engines: dict | None = None, shard_index: int = 0, shard_count: int = 1,
              runtime: dict | None = None, run_id: str = "", task_name: str = "") -> dict[str, Any]:
    """Run a stage on its shard of the input. With `runtime.checkpoint_root` the shard is worked in chunks of
    `runtime.checkpoint_every` records, each saved when done, so a retried try of the same task of the same
    run (`run_id`, `task_name`) resumes (pugc.checkpoint)."""
    from pugc.stages import STAGE_SPECS

    setup_logging()
    spec = STAGE_SPECS[stage]
    config = build(STAGE_CONFIGS[stage], section, stage)
    started = time.monotonic()
    rows = read_records(input_path, spec.input_type)
    keys = [getattr(r, spec.shard_group) for r in rows] if spec.shard_group else list(range(len(rows)))
    start, end = shard_bounds(keys, int(shard_index), int(shard_count))
    rows, keys = rows[start:end], keys[start:end]
    where = f" (shard {shard_index + 1}/{shard_count})" if shard_count > 1 else ""
    log.info("%s: %d input records%s from %s", stage, len(rows), where, input_path)
    runtime = runtime or {}
    checkpoints = None
    if runtime.get("checkpoint_root") and rows:
        from pugc.checkpoint import ChunkCheckpoints, checkpoint_folder, checkpoint_key

        key = checkpoint_key(stage, section, (engines or {}).get(spec.engine_role or ""), shard_index, shard_count,
                             runtime.get("checkpoint_every"), files=(input_path,))
        checkpoints = ChunkCheckpoints(checkpoint_folder(runtime["checkpoint_root"], run_id, task_name or stage, key))
    chunk_size = int(runtime.get("checkpoint_every") or 0) if checkpoints else 0
    lazy = LazyEngine(spec, config, engines)
    try:
        result, resumed_chunks = _run_chunks(spec, stage, rows, keys, config, lazy, chunk_size, checkpoints)
    finally:
        lazy.close()
    engine = lazy.engine
    check_accounting(result, "instruction_id" if stage == "response_sampling" else None)
    write_jsonl(output_path, result.kept)
    write_jsonl(dropped_path, result.dropped)
    if checkpoints:
        checkpoints.clear()  # the outputs are whole now; a rerun would be a new task with its own outputs
    report = {
        "stage": stage,
        "counts": result.counts,
        "metrics": result.metrics,
        "model": engine.model_id if engine else None,
        "model_revision": getattr(engine, "revision", None),
        "engine_stats": asdict(engine.stats) if engine else None,
        "seconds": round(time.monotonic() - started, 3),
        "pugc_version": __version__,
        "shard_index": int(shard_index),
        "shard_count": int(shard_count),
        "resumed_chunks": resumed_chunks,
    }
    log.info("%s: in %d, out %d, dropped %s (%.1fs)", stage, result.n_in, len(result.kept),
             format_dropped(result.counts["dropped"]), report["seconds"])
    return report


class LazyEngine:
    """The stage's engine, loaded on first use: a disabled filter or a fully checkpointed shard loads none."""

    def __init__(self, spec, config, engines: dict | None):
        self.spec, self.config, self.engines = spec, config, engines or {}
        self.engine, self.loaded = None, False

    def get(self):
        from pugc.engines import make_engine

        role = self.spec.engine_role
        if not self.loaded and role and self.spec.needs_engine(self.config):
            load_hf_token()
            self.engine = make_engine(build(EngineConfig, self.engines.get(role, {}), f"engines.{role}"))
        self.loaded = True
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()


def _run_chunks(spec, stage, rows, keys, config, lazy: LazyEngine, chunk_size, checkpoints) -> tuple[StageResult, int]:
    """The stage over consecutive chunks (one chunk without checkpoints); finished chunks are loaded, not redone.
    Returns the combined result and how many chunks came from checkpoints."""
    if not rows:
        return StageResult(stage, 0, []), 0
    count = max(1, -(-len(rows) // chunk_size)) if chunk_size else 1
    bounds = [shard_bounds(keys, i, count) for i in range(count)]
    done = (checkpoints.done() if checkpoints else set()) & set(range(count))
    if done:
        log.info("%s: resuming, %d of %d chunks already done", stage, len(done), count)
    results = []
    for index, (start, end) in enumerate(bounds):
        if index in done:
            results.append(checkpoints.load(index, stage, spec.output_type))
            continue
        result = spec.run(rows[start:end], config, lazy.get()) if end > start else StageResult(stage, 0, [])
        if checkpoints:
            checkpoints.save(index, result)
            log.info("%s: chunk %d/%d saved (%d records)", stage, index + 1, count, end)
        results.append(result)
    return combine_results(stage, results), len(done)


def combine_results(stage: str, results: list[StageResult]) -> StageResult:
    if len(results) == 1:
        return results[0]
    return StageResult(
        stage, sum(r.n_in for r in results), [k for r in results for k in r.kept],
        [d for r in results for d in r.dropped], combine_metrics([(r.n_in, r.metrics) for r in results]))


def publish(report: dict, outputs: list, metrics=None, recipe_digest: str = "") -> None:
    """Lineage: row counts, drop reasons, recipe digest, model and version on each output artifact; the
    counts and stage figures as Metrics. `outputs`/`metrics` are KFP artifacts, used only through
    `.metadata` and `.log_metric`, so this module needs no kfp. Metadata is flat (pugc.lineage), as the
    KFP backend hands it back.
    """
    counts = report["counts"]
    lineage = {
        "stage": report["stage"], "rows_in": counts["in"], "rows_out": counts["out"], "dropped": counts["dropped"],
        "metrics": report["metrics"], "seconds": report["seconds"], "model": report.get("model") or "",
        "model_revision": report.get("model_revision"),
        "recipe_digest": recipe_digest, "pugc_version": report["pugc_version"],
    }
    lineage.update({key: report[key] for key in LINEAGE_EXTRAS if key in report})
    for artifact in outputs:
        artifact.metadata.update(lineage_metadata(lineage))
    if metrics is not None:
        metrics.log_metric("records_in", counts["in"])
        metrics.log_metric("records_out", counts["out"])
        for reason, count in counts["dropped"].items():
            metrics.log_metric(f"dropped_{reason}", count)
        for name, value in report["metrics"].items():
            metrics.log_metric(name, round(float(value), 6))
        metrics.log_metric("seconds", report["seconds"])


LINEAGE_EXTRAS = ("input_fingerprint", "input_lines", "quarantined", "training", "shard_index", "shard_count", "shards")


MEAN_METRIC_SUFFIXES = ("_mean", "_rate", "_fraction", "_per_instruction", "_stdev")


def combine_metrics(parts: list[tuple[int, dict]]) -> dict[str, float]:
    """Stage figures of several parts: means weighted by records in (stdev approximately), the rest summed."""
    total_in = sum(n for n, _ in parts)
    combined: dict[str, float] = {}
    for n_in, metrics in parts:
        share = n_in / total_in if total_in else 0.0
        for name, value in metrics.items():
            weight = share if name.endswith(MEAN_METRIC_SUFFIXES) else 1.0
            combined[name] = combined.get(name, 0.0) + float(value) * weight
    return combined


def merge_shards(parts: list, dropped_parts: list, merged_path: str, dropped_path: str) -> dict:
    """Concatenate a stage's shard outputs in shard order; sum counts. `parts` are KFP artifacts whose
    metadata carry each shard's lineage. Means are merged weighted by records in (stdev approximately)."""
    setup_logging()
    parts = sorted(parts, key=lambda a: read_lineage(a)["shard_index"])
    dropped_parts = sorted(dropped_parts, key=lambda a: read_lineage(a)["shard_index"])
    lineages = [read_lineage(p) for p in parts]
    _concatenate([p.path for p in parts], merged_path)
    _concatenate([p.path for p in dropped_parts], dropped_path)
    total_in = sum(int(m["rows_in"]) for m in lineages)
    dropped: dict[str, int] = {}
    for m in lineages:
        for reason, count in m["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + int(count)
    metrics = combine_metrics([(m["rows_in"], m["metrics"]) for m in lineages])
    first = lineages[0]
    report = {
        "stage": first["stage"],
        "counts": {"in": total_in, "out": sum(int(m["rows_out"]) for m in lineages), "dropped": dict(sorted(dropped.items()))},
        "metrics": metrics, "model": next((m["model"] for m in lineages if m.get("model")), None),
        "model_revision": next((m["model_revision"] for m in lineages if m.get("model_revision")), None),
        "seconds": round(max(float(m["seconds"]) for m in lineages), 3), "pugc_version": __version__,
        "shards": len(parts),
    }
    log.info("%s: merged %d shards: in %d, out %d, dropped %s", report["stage"], len(parts), total_in,
             report["counts"]["out"], format_dropped(report["counts"]["dropped"]))
    return report


def format_dropped(dropped: dict) -> str:
    return ", ".join(f"{reason}={count}" for reason, count in dropped.items()) or "none"


def _concatenate(paths: list[str], target: str) -> None:
    from pathlib import Path

    tmp = Path(target).with_name(f".{Path(target).name}.tmp")
    with open(tmp, "wb") as out:
        for path in paths:
            out.write(Path(path).read_bytes())
    tmp.replace(target)


def run_ingest(input_uri: str, section: dict, ugc_path: str, quarantine_path: str, dropped_path: str) -> dict:
    """Stage 0: raw input -> Documents, with every malformed line quarantined (line number + error)."""
    from pugc.config import InputConfig
    from pugc.io import iter_input_rows
    from pugc.stages import ingest

    setup_logging()
    config = build(InputConfig, section, "input")
    if not input_uri:
        raise ValueError("no input: pass --input (or the input_uri pipeline parameter) or set input.uri in the recipe")
    started = time.monotonic()
    outcome = ingest.run(iter_input_rows(input_uri, config.format), config)
    result = outcome.result
    check_accounting(result)
    write_jsonl(ugc_path, result.kept)
    write_jsonl(quarantine_path, outcome.quarantined)
    write_jsonl(dropped_path, result.dropped)
    if outcome.quarantined:
        log.warning("%s", quarantine_summary(outcome.quarantined, outcome.input_lines))
    report = {
        "stage": ingest.STAGE, "counts": result.counts, "input_lines": outcome.input_lines,
        "quarantined": len(outcome.quarantined), "metrics": {}, "model": None,
        "seconds": round(time.monotonic() - started, 3), "pugc_version": __version__,
    }
    log.info("ingest: %d lines, %d documents, %d quarantined, %d duplicates", outcome.input_lines,
             len(result.kept), len(outcome.quarantined), len(result.dropped))
    return report


QUARANTINE_EXAMPLES = 2


def quarantine_summary(quarantined: list, input_lines: int) -> str:
    """One line for any number of malformed lines: the count by reason and the first few, not one line each."""
    from collections import Counter

    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(Counter(q.reason for q in quarantined).items()))
    examples = "; ".join(f"line {q.line}: {q.error}" for q in quarantined[:QUARANTINE_EXAMPLES])
    more = f"; {len(quarantined) - QUARANTINE_EXAMPLES} more" if len(quarantined) > QUARANTINE_EXAMPLES else ""
    return (f"quarantined {len(quarantined)} of {input_lines} lines ({reasons}): {examples}{more} "
            "(all in rejected.jsonl)")


def run_training(pairs_path: str, model_dir: str, section: dict, engines: dict, runtime: dict | None = None,
                 run_id: str = "", task_name: str = "", pairs_uri: str = "", model_uri: str = "") -> dict:
    from pugc.config import DPOTrainingConfig

    setup_logging()
    load_hf_token()
    config = build(DPOTrainingConfig, section, "dpo_training")
    policy = build(EngineConfig, engines.get("policy", {}), "engines.policy")
    started = time.monotonic()
    runtime = runtime or {}
    checkpoint_dir = None
    if runtime.get("checkpoint_root"):
        from pugc.checkpoint import checkpoint_folder, checkpoint_key

        key = checkpoint_key("dpo_training", section, engines.get("policy"), files=(pairs_path,))
        checkpoint_dir = str(checkpoint_folder(runtime["checkpoint_root"], run_id, task_name or "dpo_training", key))
    if runtime.get("dpo_trainjob"):
        training = _train_as_trainjob(pairs_uri, model_uri, model_dir, section, engines, config, runtime,
                                      checkpoint_dir, run_id, task_name)
    else:
        training = _train_in_world(pairs_path, model_dir, section, engines, config, policy, runtime, checkpoint_dir)
    make_world_readable(model_dir)  # the export to dpo_training.export_uri is its own task, after the gate
    return {
        "stage": "dpo_training",
        "counts": {"in": training["pairs"], "out": training["pairs"], "dropped": {}},
        "metrics": {"steps": training["steps"], "final_loss": training["final_loss"] or 0.0,
                    "train_loss": training["train_loss"]},
        "training": {k: v for k, v in training.items() if k != "losses"}, "model": policy.model,
        "model_revision": training.get("base_revision"),
        "seconds": round(time.monotonic() - started, 3), "pugc_version": __version__,
    }


def _train_in_world(pairs_path, model_dir, section, engines, config, policy, runtime, checkpoint_dir) -> dict:
    """In this process (one process, ddp: local runs), or launched over this pod's GPUs (pugc.training.launch)."""
    from pugc.training.launch import World, needs_launcher, run_world

    save_steps = int(runtime.get("dpo_save_steps") or 50)
    world = World(nodes=1, processes_per_node=int(runtime.get("dpo_processes_per_node") or 1),
                  strategy=config.strategy, cpu_offload=config.cpu_offload)
    if not needs_launcher(world):
        from pugc.training.dpo import train

        return train(pairs_path, model_dir, config, policy, checkpoint_dir, save_steps)
    return run_world(world, pairs_path, model_dir, section, engines.get("policy", {}), checkpoint_dir, save_steps)


def _train_as_trainjob(pairs_uri, model_uri, model_dir, section, engines, config, runtime, checkpoint_dir,
                       run_id, task_name) -> dict:
    """Several nodes: a Kubeflow Trainer TrainJob trains from and to the pipeline root; the checkpoint is then
    copied into this task's Model artifact (pugc.training.trainjob)."""
    import json
    from pathlib import Path

    from pugc.gcs import download_model, is_gcs
    from pugc.training.launch import World
    from pugc.training.trainjob import build_trainjob, job_name, run_trainjob

    if not (is_gcs(pairs_uri) and is_gcs(model_uri)):
        raise ValueError(f"a TrainJob reads and writes the pipeline root: set cluster.pipeline_root to gs://... "
                         f"(pairs at {pairs_uri!r}, model at {model_uri!r})")
    settings = runtime["dpo_trainjob"]
    world = World(int(settings["nodes"]), int(runtime.get("dpo_processes_per_node") or 1), config.strategy,
                  config.cpu_offload)
    staging = f"{model_uri.rstrip('/')}-trainjob"
    job = build_trainjob(job_name(run_id, task_name), settings, world, pairs_uri, staging, section,
                         engines.get("policy", {}), checkpoint_dir, int(runtime.get("dpo_save_steps") or 50))
    run_trainjob(job, poll_seconds=float(settings.get("poll_seconds", 30)),
                 timeout_seconds=settings.get("timeout_seconds"))
    download_model(staging, model_dir)
    return json.loads(Path(model_dir, "training_report.json").read_text())


def read_lineage(artifact) -> dict:
    """A task's lineage (see `publish`) from a KFP artifact's metadata."""
    return decode(artifact.metadata)


def summarize(lineages: list[dict]) -> dict:
    """The run's accounting from every task's lineage (`read_lineage`)."""
    as_int = lambda value: int(round(value))  # noqa: E731  (KFP hands metadata numbers back as floats)
    ingest = next(m for m in lineages if m["stage"] == "ingest_ugc")
    stages = {
        m["stage"]: {
            "in": as_int(m["rows_in"]), "out": as_int(m["rows_out"]),
            "dropped": {reason: as_int(n) for reason, n in m["dropped"].items()},
            "metrics": m.get("metrics", {}), "seconds": m.get("seconds"),
            **{key: m[key] for key in ("model", "model_revision") if m.get(key)},  # which weights judged/sampled
        }
        for m in lineages
    }
    training = next((m.get("training") for m in lineages if m["stage"] == "dpo_training"), None)
    return {
        "input_lines": as_int(ingest["input_lines"]),
        "quarantined": as_int(ingest["quarantined"]),
        "input_records": as_int(ingest["input_lines"]) - as_int(ingest["quarantined"]),
        "stages": stages,
        "preference_pairs": stages.get("preference_pairs", {}).get("out", 0),
        "training": training,
    }
