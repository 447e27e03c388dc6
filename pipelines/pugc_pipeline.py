"""The PUGC DAG. It reads like the method: filter UGC, ask questions, keep relevant ones, sample, judge, pair, train.

`build_pipeline(recipe)` bakes the recipe in as parameter defaults (each stage's section is one dict parameter)
and applies the recipe's per-stage resources to the tasks, so what `pugc compile` writes is what runs.
"""
# No `from __future__ import annotations` here: KFP reads the pipeline signature's real types.

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model

from pugc.components.dpo_training import dpo_training
from pugc.components.ingest_ugc import ingest_ugc
from pugc.components.instruction_gen import instruction_gen
from pugc.components.preference_pairs import preference_pairs
from pugc.components.relevance_filter import relevance_filter
from pugc.components.response_sampling import response_sampling
from pugc.components.reward_scoring import reward_scoring
from pugc.components.run_summary import run_summary
from pugc.components.ugc_filter import ugc_filter
from pugc.config import Recipe
from pugc.pipelines.resources import apply_resources

PIPELINE_NAME = "pugc"

Outputs = NamedTuple("Outputs", summary=Artifact, preference_pairs=Dataset, dpo_model=Model, rejected=Dataset)


def build_pipeline(recipe: Recipe):
    sections = recipe.pipeline_sections()

    @dsl.pipeline(name=PIPELINE_NAME, description=f"PUGC preference data and DPO ({recipe.name} recipe)")
    def pugc_pipeline(
        input_uri: str = recipe.input.uri or "",
        input_config: dict = sections["input"],
        engines: dict = sections["engines"],
        ugc_filter_config: dict = sections["ugc_filter"],
        instruction_gen_config: dict = sections["instruction_gen"],
        relevance_filter_config: dict = sections["relevance_filter"],
        response_sampling_config: dict = sections["response_sampling"],
        reward_scoring_config: dict = sections["reward_scoring"],
        preference_pairs_config: dict = sections["preference_pairs"],
        dpo_training_config: dict = sections["dpo_training"],
        recipe_digest: str = recipe.digest(),
    ) -> Outputs:
        ingest_ugc_task = ingest_ugc(input_uri=input_uri, config=input_config)
        ugc_filter_task = ugc_filter(
            ugc=ingest_ugc_task.outputs["ugc"], config=ugc_filter_config, engines=engines, recipe_digest=recipe_digest)
        instruction_gen_task = instruction_gen(
            filtered_ugc=ugc_filter_task.outputs["filtered_ugc"], config=instruction_gen_config, engines=engines,
            recipe_digest=recipe_digest)
        relevance_filter_task = relevance_filter(
            instructions=instruction_gen_task.outputs["instructions"], config=relevance_filter_config,
            engines=engines, recipe_digest=recipe_digest)
        response_sampling_task = response_sampling(
            relevant_instructions=relevance_filter_task.outputs["relevant_instructions"],
            config=response_sampling_config, engines=engines, recipe_digest=recipe_digest)
        reward_scoring_task = reward_scoring(
            responses=response_sampling_task.outputs["responses"], config=reward_scoring_config, engines=engines,
            recipe_digest=recipe_digest)
        preference_pairs_task = preference_pairs(
            scored_responses=reward_scoring_task.outputs["scored_responses"], config=preference_pairs_config,
            recipe_digest=recipe_digest)
        dpo_training_task = dpo_training(
            preference_pairs=preference_pairs_task.outputs["preference_pairs"], config=dpo_training_config,
            engines=engines, recipe_digest=recipe_digest)
        run_summary_task = run_summary(
            quarantine=ingest_ugc_task.outputs["quarantine"], duplicates=ingest_ugc_task.outputs["dropped"],
            ugc_filter_dropped=ugc_filter_task.outputs["dropped"],
            instruction_gen_dropped=instruction_gen_task.outputs["dropped"],
            relevance_filter_dropped=relevance_filter_task.outputs["dropped"],
            response_sampling_dropped=response_sampling_task.outputs["dropped"],
            reward_scoring_dropped=reward_scoring_task.outputs["dropped"],
            preference_pairs_dropped=preference_pairs_task.outputs["dropped"],
            dpo_model=dpo_training_task.outputs["dpo_model"], recipe_digest=recipe_digest)

        apply_resources(recipe.cluster, {
            "ingest_ugc": ingest_ugc_task, "ugc_filter": ugc_filter_task, "instruction_gen": instruction_gen_task,
            "relevance_filter": relevance_filter_task, "response_sampling": response_sampling_task,
            "reward_scoring": reward_scoring_task, "preference_pairs": preference_pairs_task,
            "dpo_training": dpo_training_task, "run_summary": run_summary_task,
        })
        return Outputs(
            summary=run_summary_task.outputs["summary"],
            preference_pairs=preference_pairs_task.outputs["preference_pairs"],
            dpo_model=dpo_training_task.outputs["dpo_model"],
            rejected=run_summary_task.outputs["rejected"],
        )

    return pugc_pipeline
