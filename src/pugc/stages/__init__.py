"""The PUGC stages as pure functions: records in, records out, engine injected.

`STAGE_SPECS` ties each stage to its input record type and the engine role it needs, so one runner
(`pugc.runner.stage`) serves the KFP components and the `pugc stage` command alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pugc.records import Document, Instruction, PreferencePair, Response, ScoredResponse
from pugc.tables import DOCUMENT_TEXT, QUESTION, Join
from pugc.stages import (
    instruction_gen,
    preference_pairs,
    relevance_filter,
    response_sampling,
    reward_scoring,
    ugc_filter,
)


@dataclass(frozen=True)
class StageSpec:
    name: str
    input_type: type
    output_type: type
    engine_role: str | None  # "policy", "generator", "judge", or None for CPU-only stages
    run: Callable
    # Whether the stage can skip loading its model for this config (e.g. a disabled filter).
    needs_engine: Callable[[object], bool] = lambda config: True
    # Records sharing this key stay in one shard and one chunk (the K responses of a question share the
    # judge's prefix, and make one preference pair).
    shard_group: str | None = None
    # 1:K stages: the output field naming the input it came from; accounting counts distinct values of it.
    accounting_key: str | None = None
    # Text the stage reads from other stages' tables by id (pugc.tables), passed to `run` by table name.
    joins: tuple[Join, ...] = ()
    # The name of a side artifact the stage writes (`StageResult.side`), e.g. the judge's raw outputs.
    side_output: str | None = None


STAGE_SPECS = {
    spec.name: spec
    for spec in (
        StageSpec("ugc_filter", Document, Document, "generator", ugc_filter.run, lambda c: c.threshold is not None),
        StageSpec("instruction_gen", Document, Instruction, "generator", instruction_gen.run),
        StageSpec("relevance_filter", Instruction, Instruction, "generator", relevance_filter.run,
                  joins=(DOCUMENT_TEXT,)),
        StageSpec("response_sampling", Instruction, Response, "policy", response_sampling.run,
                  accounting_key="instruction_id"),
        StageSpec("reward_scoring", Response, ScoredResponse, "judge", reward_scoring.run, shard_group="instruction_id",
                  joins=(DOCUMENT_TEXT, QUESTION), side_output="judge_outputs"),
        StageSpec("preference_pairs", ScoredResponse, PreferencePair, None,
                  lambda rows, config, engine, **tables: preference_pairs.run(rows, config, **tables),
                  shard_group="instruction_id", joins=(QUESTION,)),
    )
}
