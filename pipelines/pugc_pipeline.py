"""The PUGC DAG. It reads like the method: filter UGC, ask questions, keep relevant ones (holding some out for
evaluation), sample, judge, pair, train; then evaluate against the baseline and export only past the gate.

The LLM stages fan out over shards (`fan_out`); everything else is one task. `build_pipeline(recipe)` bakes the recipe in as parameter defaults (each stage's section is one dict parameter)
and applies the recipe's per-stage resources to the tasks, so what `pugc compile` writes is what runs.
"""
# No `from __future__ import annotations` here: KFP reads the pipeline signature's real types.

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Model

from pugc.components.dpo_training import dpo_training
from pugc.components.evaluate import evaluate
from pugc.components.evaluation_gate import evaluation_gate
from pugc.components.export_model import export_model
from pugc.components.held_out_split import held_out_split
from pugc.components.ingest_ugc import ingest_ugc
from pugc.components.input_fingerprint import input_fingerprint
from pugc.components.merge_shards import merge_shards
from pugc.components.instruction_gen import instruction_gen
from pugc.components.preference_pairs import preference_pairs
from pugc.components.relevance_filter import relevance_filter
from pugc.components.response_sampling import response_sampling
from pugc.components.reward_scoring import reward_scoring
from pugc.components.run_summary import run_summary
from pugc.components.ugc_filter import ugc_filter
from pugc.config import Recipe
from pugc.components import images
from pugc.pipelines.platform import apply_platform, task_component, training_runtime

PIPELINE_NAME = "pugc"

Outputs = NamedTuple("Outputs", summary=Artifact, preference_pairs=Dataset, dpo_model=Model, rejected=Dataset,
                     pairs_report=HTML, loss_curve=HTML, summary_report=HTML, evaluation=Artifact,
                     evaluation_report=HTML, judged=Dataset)


def fan_out(recipe: Recipe, target: str, stage: str, component, source: dict, output: str, tasks: dict, **params):
    """Run an LLM stage as a ParallelFor over its shards (one GPU task each), then merge in shard order.

    The same path serves 1 shard and many, so both give the same records. Returns the merge task, whose
    `merged` and `dropped` outputs stand for the stage's.
    """
    count = recipe.cluster.shards_for(stage)
    component = task_component(recipe.cluster, stage, component, target)
    with dsl.ParallelFor(items=list(range(count)), name=f"{stage}-shards") as shard_index:
        shard_task = component(**source, **params, shard_index=shard_index, shard_count=count)
    merge_task = merge_shards(parts=dsl.Collected(shard_task.outputs[output]),
                              dropped_parts=dsl.Collected(shard_task.outputs["dropped"]),
                              recipe_digest=params["recipe_digest"])
    tasks[stage], tasks[f"{stage}_merge"] = shard_task, merge_task
    return merge_task


def build_pipeline(recipe: Recipe, target: str = "kfp", pipeline_root: str | None = None, import_input: bool = True,
                   task_names: dict | None = None):
    """The pipeline for one recipe and compile target (`kfp` or `vertex`, see pipelines/platform.py).

    With `import_input` the UGC enters through `dsl.importer`, so the UI's lineage starts at the data; the
    local runner cannot import, so local runs pass the path straight to ingest. `task_names`, when given,
    receives {task key: KFP task name} in DAG order (the local console and `pugc run --dry-run` read it).
    """
    sections = recipe.pipeline_sections()

    @dsl.pipeline(name=PIPELINE_NAME, description=f"PUGC preference data and DPO ({recipe.name} recipe)",
                  pipeline_root=pipeline_root or recipe.cluster.pipeline_root)
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
        evaluation_config: dict = sections["evaluation"],
        runtime: dict = {**recipe.cluster.runtime(target), **training_runtime(recipe.cluster, target, images.TRAINER)},
        recipe_digest: str = recipe.digest(),
    ) -> Outputs:
        tasks: dict = {}
        # Checkpoints are per run and per task: the backend fills these placeholders at run time.
        per_task = dict(run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, task_name=dsl.PIPELINE_TASK_NAME_PLACEHOLDER)
        llm = dict(engines=engines, runtime=runtime, recipe_digest=recipe_digest, **per_task)
        fingerprint = tasks["input_fingerprint"] = input_fingerprint(input_uri=input_uri)
        ingest = dict(input_uri=input_uri, config=input_config, input_fingerprint=fingerprint.output)
        if import_input:
            ugc_source = dsl.importer(artifact_uri=input_uri, artifact_class=Dataset, reimport=False)
            ugc_source.set_display_name("ugc_source")
            ingest_ugc_task = ingest_ugc(**ingest, source=ugc_source.output)
        else:
            ingest_ugc_task = ingest_ugc(**ingest)
        tasks["ingest_ugc"] = ingest_ugc_task
        documents = ingest_ugc_task.outputs["ugc"]  # the document table: later stages join its text by doc_id
        ugc_filter_task = fan_out(
            recipe, target, "ugc_filter", ugc_filter, {"ugc": ingest_ugc_task.outputs["ugc"]}, "filtered_ugc", tasks,
            config=ugc_filter_config, **llm)
        instruction_gen_task = fan_out(
            recipe, target, "instruction_gen", instruction_gen, {"filtered_ugc": ugc_filter_task.outputs["merged"]},
            "instructions", tasks, config=instruction_gen_config, **llm)
        relevance_filter_task = fan_out(
            recipe, target, "relevance_filter", relevance_filter,
            {"instructions": instruction_gen_task.outputs["merged"], "documents": documents},
            "relevant_instructions", tasks, config=relevance_filter_config, **llm)
        questions = relevance_filter_task.outputs["merged"]  # the question table, joined by instruction_id
        held_out_split_task = tasks["held_out_split"] = held_out_split(
            relevant_instructions=relevance_filter_task.outputs["merged"], config=evaluation_config,
            recipe_digest=recipe_digest)
        response_sampling_task = fan_out(
            recipe, target, "response_sampling", response_sampling,
            {"relevant_instructions": held_out_split_task.outputs["training_questions"]}, "responses", tasks,
            config=response_sampling_config, **llm)
        reward_scoring_task = fan_out(
            recipe, target, "reward_scoring", reward_scoring,
            {"responses": response_sampling_task.outputs["merged"], "documents": documents, "instructions": questions},
            "scored_responses", tasks, config=reward_scoring_config, **llm)
        preference_pairs_task = tasks["preference_pairs"] = preference_pairs(
            scored_responses=reward_scoring_task.outputs["merged"], instructions=questions, config=preference_pairs_config,
            recipe_digest=recipe_digest)
        dpo_training_task = tasks["dpo_training"] = task_component(recipe.cluster, "dpo_training", dpo_training, target)(
            preference_pairs=preference_pairs_task.outputs["preference_pairs"], config=dpo_training_config,
            engines=engines, runtime=runtime, recipe_digest=recipe_digest, **per_task)
        evaluate_task = fan_out(
            recipe, target, "evaluate", evaluate,
            {"evaluation_questions": held_out_split_task.outputs["evaluation_questions"],
             "ugc": ingest_ugc_task.outputs["ugc"], "dpo_model": dpo_training_task.outputs["dpo_model"]},
            "judged", tasks, config=evaluation_config, **llm)
        gate_task = tasks["evaluation_gate"] = evaluation_gate(judged=evaluate_task.outputs["merged"],
                                                               config=evaluation_config)
        with dsl.If(gate_task.outputs["Output"] == "passed", name="gate-passed"):  # a model that loses is never exported
            tasks["export_model"] = export_model(dpo_model=dpo_training_task.outputs["dpo_model"],
                                                 evaluation=gate_task.outputs["evaluation"],
                                                 config=dpo_training_config)
        run_summary_task = tasks["run_summary"] = run_summary(
            quarantine=ingest_ugc_task.outputs["quarantine"], duplicates=ingest_ugc_task.outputs["dropped"],
            ugc_filter_dropped=ugc_filter_task.outputs["dropped"],
            instruction_gen_dropped=instruction_gen_task.outputs["dropped"],
            relevance_filter_dropped=relevance_filter_task.outputs["dropped"],
            held_out_split_dropped=held_out_split_task.outputs["dropped"],
            response_sampling_dropped=response_sampling_task.outputs["dropped"],
            reward_scoring_dropped=reward_scoring_task.outputs["dropped"],
            preference_pairs_dropped=preference_pairs_task.outputs["dropped"],
            dpo_model=dpo_training_task.outputs["dpo_model"], evaluate_dropped=evaluate_task.outputs["dropped"],
            evaluation=gate_task.outputs["evaluation"], recipe_digest=recipe_digest)

        apply_platform(recipe.cluster, tasks, target, recipe.engines)
        if task_names is not None:
            task_names.update({key: task.name for key, task in tasks.items()})
        return Outputs(
            summary=run_summary_task.outputs["summary"],
            preference_pairs=preference_pairs_task.outputs["preference_pairs"],
            dpo_model=dpo_training_task.outputs["dpo_model"],
            rejected=run_summary_task.outputs["rejected"],
            pairs_report=preference_pairs_task.outputs["pairs_report"],
            loss_curve=dpo_training_task.outputs["loss_curve"],
            summary_report=run_summary_task.outputs["summary_report"],
            evaluation=gate_task.outputs["evaluation"],
            evaluation_report=gate_task.outputs["evaluation_report"],
            judged=evaluate_task.outputs["merged"],
        )

    return pugc_pipeline
