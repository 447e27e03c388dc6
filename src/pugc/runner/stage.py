"""A record-to-record stage from files: its shard of the input streamed through it in chunks, outputs
appended as chunks finish. Generic: what differs between stages lives on their `StageSpec`."""
from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pugc import __version__
from pugc.config import STAGE_CONFIGS, EngineConfig, build
from pugc.io import JsonlWriter, iter_records
from pugc.logs import setup_logging
from pugc.runner.chunks import (CHECKPOINT_SECONDS, CPU_CHUNK, ENGINE_BATCH, BatchPacer, Outputs, Progress,
                                resume, run_in_chunks)
from pugc.runner.budget import check_stage_budget, with_spending
from pugc.runner.sharding import shard_range
from pugc.runner.selection import apply_selection
from pugc.runner.tally import Tally, format_dropped
from pugc.secrets import load_hf_token
from pugc.stages.llm import check_engine_errors
from pugc.tables import TableJoiner, check_tables

log = logging.getLogger(__name__)


def run_stage(stage: str, input_path: str, output_path: str, dropped_path: str, section: dict,
              engines: dict | None = None, shard_index: int = 0, shard_count: int = 1,
              runtime: dict | None = None, scope: str = "", tables: dict | None = None,
              side_path: str | None = None, keep_checkpoints: bool = False,
              spent_before: dict | None = None) -> dict[str, Any]:
    """Run a stage on its shard of the input. `tables` are the paths of the tables the stage joins, by name
    (`StageSpec.joins`); `side_path` receives its side artifact (default: next to the output). With
    `runtime.checkpoint_root` every engine batch is saved when done, so a retried try of the same task of the
    same run (`scope`: pugc.checkpoint.task_scope of the task's output) resumes; they are cleared once the
    output is whole,
    unless `keep_checkpoints` (a pass of a task that runs several: the report's `checkpoints` names the folder,
    for the task to clear when it is done). With `spent_before` (what the run spent upstream, pugc.cost) the
    stage is first checked against the budget in `runtime` and the report carries `spent_before` and `spent`."""
    from pugc.stages import spec_for

    setup_logging()
    spec = spec_for(stage)
    config = build(spec.config or STAGE_CONFIGS[stage], section, spec.section or stage)
    runtime, tables = runtime or {}, tables or {}
    check_tables(stage, spec.joins, tables)
    started = time.monotonic()
    start, end = shard_range(input_path, spec.shard_group, int(shard_index), int(shard_count))
    where = f" (shard {shard_index + 1}/{shard_count})" if shard_count > 1 else ""
    log.info("%s: %d input records%s from %s", stage, end - start, where, input_path)
    if spent_before is not None and spec.engine_role and spec.needs_engine(config):  # a disabled filter costs nothing
        check_stage_budget(runtime, stage, input_path, spent_before)  # before anything loads or runs
    joined = tuple(tables[j.table] for j in spec.joins if j.table in tables)
    checkpoints = _checkpoints(spec, section, engines, shard_index, shard_count, runtime, scope,
                               (input_path, *joined)) if end > start else None
    pacer = _pacer(spec, runtime, checkpointed=checkpoints is not None)
    tally, lazy, joiner = Tally(spec.metrics), LazyEngine(spec, config, engines), TableJoiner(spec.joins, tables)
    if spec.side_output and not side_path:
        side_path = f"{Path(output_path).with_suffix('')}.{spec.side_output}.jsonl"

    prepared = spec.prepare(config, input_path) if spec.prepare else {}

    def call(chunk: list):
        lookups = joiner.lookups(chunk) if spec.joins else {}
        result = spec.run(chunk, config, lazy.get(), **lookups, **prepared)
        # Before the chunk is checkpointed: a stage stopped for engine errors resumes from the chunks that passed.
        check_engine_errors(result, getattr(config, "max_engine_error_fraction", 0.0))
        return result

    try:
        with JsonlWriter(output_path) as kept, JsonlWriter(dropped_path) as dropped, \
                (JsonlWriter(side_path) if spec.side_output else nullcontext()) as side:
            outputs = Outputs(kept, dropped, side)
            progress = resume(checkpoints, outputs, tally) if checkpoints else Progress()
            if progress.chunks_resumed:
                log.info("%s: resuming after %d finished chunks (%d records)", stage, progress.chunks_resumed,
                         progress.records_resumed)
            records = iter_records(input_path, spec.input_type, start + progress.records_resumed, end)
            run_in_chunks(call, records, spec.shard_group, spec.accounting_key, pacer, outputs, tally, checkpoints,
                          progress)
    finally:
        lazy.close()
        joiner.close()
    selection = spec.select(config) if spec.select else None
    if selection is not None:
        if shard_count > 1:  # a count over the whole output: a shard cannot know the others' records
            raise ValueError(f"{stage}: a limit on its output needs the stage unsharded (shard_count {shard_count})")
        apply_selection(selection, output_path, dropped_path, spec.output_type, tally)
    if checkpoints and not keep_checkpoints:
        checkpoints.clear()  # the outputs are whole now; a rerun would be a new task with its own outputs
    engine = lazy.engine
    report = {
        "stage": stage, "counts": tally.counts,
        "metrics": tally.final_metrics(lambda: iter_records(output_path, spec.output_type)),
        "model": engine.model_id if engine else None, "model_revision": getattr(engine, "revision", None),
        "engine_stats": asdict(engine.stats) if engine else None,
        # the engine's tokens, for the run's cost accounting (pugc.cost)
        "tokens_in": engine.stats.prompt_tokens if engine else 0,
        "tokens_out": engine.stats.generated_tokens if engine else 0,
        # evaluate's answer passes run in the evaluate task: its accelerators
        "accelerators": int((runtime.get("accelerators") or {}).get(
            stage.removesuffix("_trained").removesuffix("_baseline"), 0)),
        "seconds": round(time.monotonic() - started, 3), "pugc_version": __version__,
        "shard_index": int(shard_index), "shard_count": int(shard_count),
        "resumed_chunks": progress.chunks_resumed if checkpoints else 0,
        "checkpoints": str(checkpoints.folder) if checkpoints and keep_checkpoints else None,
        "join_index_bytes": joiner.index_bytes,
    }
    log.info("%s: in %d, out %d, dropped %s (%.1fs)", stage, tally.n_in, tally.n_out,
             format_dropped(tally.counts["dropped"]), report["seconds"])
    return report if spent_before is None else with_spending(report, runtime, stage, spent_before)


def _pacer(spec, runtime: dict, checkpointed: bool) -> BatchPacer:
    if spec.engine_role is None:
        return BatchPacer(CPU_CHUNK, CPU_CHUNK)
    most = int(runtime.get("engine_batch") or ENGINE_BATCH)
    if not checkpointed:
        return BatchPacer(most, most)
    return BatchPacer(int(runtime.get("checkpoint_every") or most), most,
                      float(runtime.get("checkpoint_seconds") or CHECKPOINT_SECONDS))


def _checkpoints(spec, section, engines, shard_index, shard_count, runtime, scope, files):
    if not runtime.get("checkpoint_root"):
        return None
    from pugc.checkpoint import ChunkCheckpoints, checkpoint_folder, checkpoint_key

    key = checkpoint_key(spec.name, section, (engines or {}).get(spec.engine_role or ""), shard_index, shard_count,
                         files=files)
    return ChunkCheckpoints(checkpoint_folder(runtime["checkpoint_root"], scope, key))


class LazyEngine:
    """The stage's engine, loaded on first use: a disabled filter or a fully checkpointed shard loads none."""

    def __init__(self, spec, config, engines: dict | None):
        self.spec, self.config, self.engines = spec, config, engines or {}
        self.engine, self.loaded = None, False

    def get(self):
        role = self.spec.engine_role
        if not self.loaded and role and self.spec.needs_engine(self.config):
            from pugc.engines import make_engine

            load_hf_token()
            self.engine = make_engine(build(EngineConfig, self.engines.get(role, {}), f"engines.{role}"))
        self.loaded = True
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
