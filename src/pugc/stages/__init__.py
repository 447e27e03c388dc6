"""The PUGC stages as pure functions: records in, records out, engine injected.

`STAGE_SPECS` ties each stage to its input record type and the engine role it needs, so one runner
(`pugc.runner.stage`) serves the KFP components and the `pugc stage` command alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from pugc.metrics import MetricRules
from pugc.records import Document, Instruction, PreferencePair, Response, ScoredResponse
from pugc.tables import DOCUMENT_TEXT, QUESTION, Join
from pugc.stages import (
    instruction_gen,
    preference_pairs,
    relevance_filter,
    response_sampling,
    reward_scoring,
    safety_screen,
    ugc_filter,
)

if TYPE_CHECKING:
    from pugc.selection import Selection


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
    # How the stage's figures combine over chunks and shards (declared in the stage's module).
    metrics: MetricRules = MetricRules()
    # The config class the stage's recipe section builds, and that section's name (None: the stage's own,
    # pugc.config.STAGE_CONFIGS[name]); stages that share a section (the evaluation passes) name it.
    config: type | None = None
    section: str | None = None
    # A limit on the whole output, applied after the last chunk (pugc.selection), or None for this config.
    select: Callable[[object], "Selection | None"] | None = None
    # A read-only lookup built once from the config and the whole input before the first chunk (e.g. the
    # decontamination index), passed to `run` as keyword arguments.
    prepare: Callable[[object, str], dict] | None = None


STAGE_SPECS = {
    spec.name: spec
    for spec in (
        StageSpec("ugc_filter", Document, Document, "generator", ugc_filter.run, lambda c: c.threshold is not None,
                  metrics=ugc_filter.METRICS),
        StageSpec("safety_screen", Document, Document, "generator", safety_screen.run, lambda c: c.enabled,
                  metrics=safety_screen.METRICS),
        StageSpec("instruction_gen", Document, Instruction, "generator", instruction_gen.run,
                  metrics=instruction_gen.METRICS),
        StageSpec("relevance_filter", Instruction, Instruction, "generator", relevance_filter.run,
                  joins=(DOCUMENT_TEXT,), metrics=relevance_filter.METRICS),
        StageSpec("response_sampling", Instruction, Response, "policy", response_sampling.run,
                  accounting_key="instruction_id", metrics=response_sampling.METRICS),
        StageSpec("reward_scoring", Response, ScoredResponse, "judge", reward_scoring.run, shard_group="instruction_id",
                  joins=(DOCUMENT_TEXT, QUESTION), side_output="judge_outputs", metrics=reward_scoring.METRICS),
        StageSpec("preference_pairs", ScoredResponse, PreferencePair, None,
                  lambda rows, config, engine, **tables: preference_pairs.run(rows, config, **tables),
                  shard_group="instruction_id", joins=(QUESTION,), metrics=preference_pairs.METRICS,
                  select=preference_pairs.pair_limit),
    )
}


def spec_for(stage: str) -> StageSpec:
    """The spec of any stage the runner serves: the PUGC stages and the evaluation passes (pugc.evaluation)."""
    if stage in STAGE_SPECS:
        return STAGE_SPECS[stage]
    from pugc.stages.evaluate import EVALUATION_SPECS

    if stage in EVALUATION_SPECS:
        return EVALUATION_SPECS[stage]
    from pugc.stages.safety_eval import SAFETY_EVAL_SPEC

    if stage == SAFETY_EVAL_SPEC.name:
        return SAFETY_EVAL_SPEC
    raise KeyError(f"no stage named {stage!r}")
