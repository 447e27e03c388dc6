"""The PUGC DAG. It reads like the method: filter UGC (and screen it for safety), ask questions, keep relevant ones (holding some out for
evaluation), sample, judge, pair, train; then evaluate against the baseline and export only past the gate, with
the model card, then hand the model on (Model Registry, the Hub, a KServe endpoint) as the recipe asks.

With `rounds: R` > 1 (online iterative training) the training questions are split into R parts and each round
samples with the previous round's model and trains on from it; every round is a sub-pipeline (`round-r`, its
own group in the UI), and the gate and export act on the last round's model.

The LLM stages fan out over shards (`fan_out`); everything else is one task. `build_pipeline(recipe)` bakes the recipe in as parameter defaults (each stage's section is one dict parameter)
and applies the recipe's per-stage resources to the tasks, so what `pugc compile` writes is what runs.
"""
# No `from __future__ import annotations` here: KFP reads the pipeline signature's real types.

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Model

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
from pugc.components.register_model import register_model
from pugc.components.relevance_filter import relevance_filter
from pugc.components.response_sampling import response_sampling
from pugc.components.round_report import round_report
from pugc.components.round_split import round_split
from pugc.components.reward_scoring import reward_scoring
from pugc.components.run_summary import run_summary
from pugc.components.safety_eval import safety_eval
from pugc.components.safety_screen import safety_screen
from pugc.components.serve_model import serve_model
from pugc.components.ugc_filter import ugc_filter
from pugc.components.upload_to_hub import upload_to_hub
from pugc.config import Recipe
from pugc.components import images
from pugc.pipelines.platform import (PREVIOUS_ROUND, apply_platform, custom_job_inputs, task_component,
                                     training_runtime)

PIPELINE_NAME = "pugc"


def budget_runtime(recipe: Recipe, local: bool) -> dict:
    """cluster.budget for the tasks that check it (pugc.runner.budget); nothing without a limit, so a recipe
    without a budget keeps its tasks' cache keys."""
    from pugc.cost import budget_plan

    plan = budget_plan(recipe, local)
    return {"budget": plan} if plan else {}

Outputs = NamedTuple("Outputs", summary=Artifact, preference_pairs=Dataset, dpo_model=Model, rejected=Dataset,
                     pairs_report=HTML, loss_curve=HTML, summary_report=HTML, evaluation=Artifact,
                     evaluation_report=HTML, judged=Dataset, model_card=Markdown, dataset_card=Markdown)


def fan_out(recipe: Recipe, target: str, stage: str, component, source: dict, output: str, tasks: dict,
            key: str = "", identity=None, **params):
    """Run an LLM stage as a ParallelFor over its shards (one GPU task each), then merge in shard order.

    The same path serves 1 shard and many, so both give the same records. Returns the merge task, whose
    `merged` and `dropped` outputs stand for the stage's. `key` names the tasks when a stage runs twice.
    """
    key = key or stage
    count = recipe.cluster.shards_for(stage)
    component = task_component(recipe.cluster, stage, component, target)
    with dsl.ParallelFor(items=list(range(count)), name=f"{key}-shards") as shard_index:
        shard_task = component(**source, **params, **custom_job_inputs(recipe.cluster, stage, target, identity),
                               shard_index=shard_index, shard_count=count)
    merge_task = merge_shards(parts=dsl.Collected(shard_task.outputs[output]),
                              dropped_parts=dsl.Collected(shard_task.outputs["dropped"]),
                              recipe_digest=params["recipe_digest"])
    tasks[key], tasks[f"{key}_merge"] = shard_task, merge_task
    return merge_task


ROUND_OUTPUTS = ("preference_pairs", "dpo_model", "pairs_report", "loss_curve", "judged")  # the last round's
RoundOutputs = NamedTuple("RoundOutputs", preference_pairs=Dataset, dpo_model=Model, model_uri=str,
                          training_report=Artifact, pairs_report=HTML,
                          loss_curve=HTML, evaluation=Artifact, evaluation_report=HTML, judged=Dataset,
                          response_sampling_dropped=Dataset, reward_scoring_dropped=Dataset,
                          preference_pairs_dropped=Dataset, evaluate_dropped=Dataset, rounds=Artifact,
                          rounds_dropped=Dataset, all_pairs=Dataset)


def train_round(recipe: Recipe, target: str, tasks: dict, index: int, training_questions, evaluation_questions,
                documents, questions, response_sampling_config, reward_scoring_config, preference_pairs_config,
                dpo_training_config, evaluation_config, engines, runtime, recipe_digest, vertex_service_account,
                policy_model=None, previous_rounds=None, previous_dropped=None, previous_pairs=None) -> dict:
    """Sample, judge, pair, train, evaluate: one round. With several rounds it samples and trains only its part
    of the questions, starting from `policy_model` (the previous round's model; None = engines.policy), is
    judged against the starting policy and that model, and appends its figures to the previous rounds' report. Returns the round's outputs by RoundOutputs name."""
    llm = dict(engines=engines, runtime=runtime, recipe_digest=recipe_digest, identity=vertex_service_account)
    policy = {"policy_model": policy_model} if policy_model is not None else {}
    if recipe.rounds > 1:
        tasks["round_split"] = round_split(training_questions=training_questions, round_index=index,
                                           round_count=recipe.rounds, recipe_digest=recipe_digest)
        training_questions = tasks["round_split"].outputs["questions"]
    response_sampling_task = fan_out(
        recipe, target, "response_sampling", response_sampling, {"relevant_instructions": training_questions},
        "responses", tasks, config=response_sampling_config, **llm, **policy)
    reward_scoring_task = fan_out(
        recipe, target, "reward_scoring", reward_scoring,
        {"responses": response_sampling_task.outputs["merged"], "documents": documents, "instructions": questions},
        "scored_responses", tasks, config=reward_scoring_config, **llm)
    preference_pairs_task = tasks["preference_pairs"] = preference_pairs(
        scored_responses=reward_scoring_task.outputs["merged"], instructions=questions, config=preference_pairs_config,
        recipe_digest=recipe_digest)
    dpo_training_task = tasks["dpo_training"] = task_component(recipe.cluster, "dpo_training", dpo_training, target)(
        preference_pairs=preference_pairs_task.outputs["preference_pairs"], config=dpo_training_config,
        engines=engines, runtime=runtime, recipe_digest=recipe_digest, **policy,
        **custom_job_inputs(recipe.cluster, "dpo_training", target, vertex_service_account))
    evaluate_task = fan_out(  # against the base policy (or evaluation.baseline), every round alike
        recipe, target, "evaluate", evaluate,
        {"evaluation_questions": evaluation_questions, "ugc": documents,
         "dpo_model": dpo_training_task.outputs["dpo_model"]},
        "judged", tasks, config=evaluation_config, **llm)
    gate_task = tasks["evaluation_gate"] = evaluation_gate(judged=evaluate_task.outputs["merged"],
                                                           config=evaluation_config, engines=engines)
    if policy_model is not None:  # and against the previous round's model: did this round improve on it?
        previous_task = fan_out(
            recipe, target, "evaluate", evaluate,
            {"evaluation_questions": evaluation_questions, "ugc": documents,
             "dpo_model": dpo_training_task.outputs["dpo_model"]},
            "judged", tasks, key=f"evaluate{PREVIOUS_ROUND}", config=evaluation_config, **llm, **policy)
        tasks[f"evaluation_gate{PREVIOUS_ROUND}"] = previous_gate = evaluation_gate(
            judged=previous_task.outputs["merged"], config=evaluation_config, engines=engines)
    outputs = dict(
        preference_pairs=preference_pairs_task.outputs["preference_pairs"],
        dpo_model=dpo_training_task.outputs["dpo_model"], model_uri=dpo_training_task.outputs["Output"],
        training_report=dpo_training_task.outputs["training_report"],
        pairs_report=preference_pairs_task.outputs["pairs_report"],
        loss_curve=dpo_training_task.outputs["loss_curve"], evaluation=gate_task.outputs["evaluation"],
        evaluation_report=gate_task.outputs["evaluation_report"], judged=evaluate_task.outputs["merged"],
        response_sampling_dropped=response_sampling_task.outputs["dropped"],
        reward_scoring_dropped=reward_scoring_task.outputs["dropped"],
        preference_pairs_dropped=preference_pairs_task.outputs["dropped"],
        evaluate_dropped=evaluate_task.outputs["dropped"])
    if recipe.rounds > 1:
        previous = {"previous_rounds": previous_rounds, "previous_dropped": previous_dropped,
                    "previous_pairs": previous_pairs,
                    "previous_evaluation": previous_gate.outputs["evaluation"],
                    "previous_evaluate_dropped": previous_task.outputs["dropped"]} if policy_model is not None else {}
        report_task = tasks["round_report"] = round_report(
            round_index=index, training_report=outputs["training_report"], evaluation=outputs["evaluation"],
            preference_pairs=outputs["preference_pairs"],
            **{key: outputs[key] for key in ("response_sampling_dropped", "reward_scoring_dropped",
                                              "preference_pairs_dropped", "evaluate_dropped")}, **previous)
        outputs.update(rounds=report_task.outputs["rounds"], rounds_dropped=report_task.outputs["dropped"],
                       all_pairs=report_task.outputs["pairs"])
    return outputs


def round_pipeline(recipe: Recipe, target: str, index: int, tasks: dict):
    """Round `index` as a sub-pipeline: one group in the UI. Round 1 starts from engines.policy; a later
    round takes the previous round's model and report. `tasks` receives the round's tasks by key."""

    def body(inputs: dict) -> RoundOutputs:  # inputs: the sub-pipeline's locals(), its parameters and `body`
        outputs = train_round(recipe, target, tasks, index, **{k: v for k, v in inputs.items() if k != "body"})
        apply_platform(recipe.cluster, tasks, target, recipe.engines)
        return RoundOutputs(**outputs)

    if index == 1:
        @dsl.pipeline(name=f"round-{index}")
        def first_round(training_questions: Input[Dataset], evaluation_questions: Input[Dataset],
                        documents: Input[Dataset], questions: Input[Dataset], response_sampling_config: dict,
                        reward_scoring_config: dict, preference_pairs_config: dict, dpo_training_config: dict,
                        evaluation_config: dict, engines: dict, runtime: dict, recipe_digest: str,
                        vertex_service_account: str) -> RoundOutputs:
            return body(locals())
        return first_round

    @dsl.pipeline(name=f"round-{index}")
    def later_round(training_questions: Input[Dataset], evaluation_questions: Input[Dataset],
                    documents: Input[Dataset], questions: Input[Dataset], response_sampling_config: dict,
                    reward_scoring_config: dict, preference_pairs_config: dict, dpo_training_config: dict,
                    evaluation_config: dict, engines: dict, runtime: dict, recipe_digest: str,
                    vertex_service_account: str, policy_model: Input[Model], previous_rounds: Input[Artifact], previous_dropped: Input[Dataset],
                    previous_pairs: Input[Dataset]) -> RoundOutputs:
        return body(locals())
    return later_round


def build_pipeline(recipe: Recipe, target: str = "kfp", pipeline_root: str | None = None, import_input: bool = True,
                   task_names: dict | None = None, local: bool = False):
    """The pipeline for one recipe and compile target (`kfp` or `vertex`, see pipelines/platform.py).

    With `import_input` the UGC enters through `dsl.importer`, so the UI's lineage starts at the data; the
    local runner cannot import, so local runs pass the path straight to ingest. `task_names`, when given,
    receives {task key: KFP task name} in DAG order (the local console and `pugc run --dry-run` read it); a
    round's tasks as {`round_2.dpo_training`: `round-2/dpo-training`}. `local`: a run on this machine, which
    holds no accelerator, so its budget (cluster.budget) counts no GPU-hours.
    """
    sections = recipe.pipeline_sections()
    round_tasks: dict[int, dict] = {index: {} for index in range(1, recipe.rounds + 1)} if recipe.rounds > 1 else {}
    round_pipelines = [round_pipeline(recipe, target, index, round_tasks[index]) for index in round_tasks]

    @dsl.pipeline(name=PIPELINE_NAME, description=f"PUGC preference data and DPO ({recipe.name} recipe)",
                  pipeline_root=pipeline_root or recipe.cluster.pipeline_root)
    def pugc_pipeline(
        input_uri: str = recipe.input.uri or "",
        input_config: dict = sections["input"],
        engines: dict = sections["engines"],
        ugc_filter_config: dict = sections["ugc_filter"],
        safety_screen_config: dict = sections["safety_screen"],
        instruction_gen_config: dict = sections["instruction_gen"],
        relevance_filter_config: dict = sections["relevance_filter"],
        response_sampling_config: dict = sections["response_sampling"],
        reward_scoring_config: dict = sections["reward_scoring"],
        preference_pairs_config: dict = sections["preference_pairs"],
        dpo_training_config: dict = recipe.training_section(),
        evaluation_config: dict = sections["evaluation"],
        handoff_config: dict = sections["handoff"],
        runtime: dict = {**recipe.cluster.runtime(target), **training_runtime(recipe.cluster, target, images.TRAINER),
                         **budget_runtime(recipe, local)},
        recipe_digest: str = recipe.digest(),
        # Vertex AI: the Google service account GPU tasks (custom jobs) run as; `pugc submit` passes the one the
        # job is submitted with. Empty: Vertex's default (the project's Custom Code Service Agent).
        vertex_service_account: str = "",
    ) -> Outputs:
        tasks: dict = {}
        # Nothing run-specific goes in as a parameter (the cache key holds every parameter's value): a task
        # scopes its checkpoints by its output URI at run time (pugc.checkpoint.task_scope).
        llm = dict(engines=engines, runtime=runtime, recipe_digest=recipe_digest, identity=vertex_service_account)
        fingerprint = tasks["input_fingerprint"] = input_fingerprint(input_uri=input_uri,
                                                                     opt_out_uri=recipe.input.opt_out or "")
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
        safety_screen_task = fan_out(
            recipe, target, "safety_screen", safety_screen, {"filtered_ugc": ugc_filter_task.outputs["merged"]},
            "screened_ugc", tasks, config=safety_screen_config, **llm)
        instruction_gen_task = fan_out(
            recipe, target, "instruction_gen", instruction_gen, {"filtered_ugc": safety_screen_task.outputs["merged"]},
            "instructions", tasks, config=instruction_gen_config, **llm)
        relevance_filter_task = fan_out(
            recipe, target, "relevance_filter", relevance_filter,
            {"instructions": instruction_gen_task.outputs["merged"], "documents": documents},
            "relevant_instructions", tasks, config=relevance_filter_config, **llm)
        questions = relevance_filter_task.outputs["merged"]  # the question table, joined by instruction_id
        held_out_split_task = tasks["held_out_split"] = held_out_split(
            relevant_instructions=relevance_filter_task.outputs["merged"], documents=documents,
            config=evaluation_config, recipe_digest=recipe_digest)
        data = dict(training_questions=held_out_split_task.outputs["training_questions"],
                    evaluation_questions=held_out_split_task.outputs["evaluation_questions"], documents=documents,
                    questions=questions)
        configs = dict(response_sampling_config=response_sampling_config, reward_scoring_config=reward_scoring_config,
                       preference_pairs_config=preference_pairs_config, dpo_training_config=dpo_training_config,
                       evaluation_config=evaluation_config, engines=engines, runtime=runtime,
                       recipe_digest=recipe_digest, vertex_service_account=vertex_service_account)
        if recipe.rounds == 1:
            last = train_round(recipe, target, tasks, 1, **data, **configs)
            gate, report = tasks["evaluation_gate"], {}
        else:
            last = previous = {}
            for index, round_component in enumerate(round_pipelines, start=1):
                round_task = tasks[f"round_{index}"] = round_component(**data, **configs, **previous)
                round_task.set_display_name(f"round-{index}")
                last = round_task.outputs
                previous = dict(policy_model=last["dpo_model"], previous_rounds=last["rounds"],
                                previous_dropped=last["rounds_dropped"], previous_pairs=last["all_pairs"])
            # The gate on the last round's model, here rather than inside its group: the condition below then
            # reads a task's output, which the local runner resolves (a sub-pipeline's output it does not).
            gate = tasks["evaluation_gate"] = evaluation_gate(judged=last["judged"], config=evaluation_config,
                                                              engines=engines)
            report = dict(rounds=last["rounds"], rounds_dropped=last["rounds_dropped"])
            last = {**last, "preference_pairs": last["all_pairs"]}  # the run's pairs: every round's
        safety = {}
        if recipe.evaluation.safety.prompts:  # the final model and the baseline on harmful requests
            safety_task = tasks["safety_eval"] = safety_eval(dpo_model=last["dpo_model"], config=evaluation_config,
                                                             engines=engines, runtime=runtime,
                                                             recipe_digest=recipe_digest)
            safety = dict(safety=safety_task.outputs["safety"], safety_eval_dropped=safety_task.outputs["dropped"])
        run_summary_task = tasks["run_summary"] = run_summary(
            quarantine=ingest_ugc_task.outputs["quarantine"], duplicates=ingest_ugc_task.outputs["dropped"],
            ugc_filter_dropped=ugc_filter_task.outputs["dropped"],
            safety_screen_dropped=safety_screen_task.outputs["dropped"],
            instruction_gen_dropped=instruction_gen_task.outputs["dropped"],
            relevance_filter_dropped=relevance_filter_task.outputs["dropped"],
            held_out_split_dropped=held_out_split_task.outputs["dropped"],
            response_sampling_dropped=last["response_sampling_dropped"],
            reward_scoring_dropped=last["reward_scoring_dropped"],
            preference_pairs_dropped=last["preference_pairs_dropped"],
            training_report=last["training_report"], evaluate_dropped=last["evaluate_dropped"],
            evaluation=gate.outputs["evaluation"], recipe_digest=recipe_digest,
            dpo_training_config=dpo_training_config, handoff_config=handoff_config, **report, **safety,
            cost_settings={"cluster": sections["cluster"], "engines": sections["engines"]},
            preference_pairs=last["preference_pairs"], documents=documents,
            license_field=recipe.input.license_field or "")
        cards = dict(model_card=run_summary_task.outputs["model_card"],
                     dataset_card=run_summary_task.outputs["dataset_card"])

        def export_and_hand_off():
            """The export, then the hand-off the recipe asks for (handoff:), each on the exported copy."""
            export = tasks["export_model"] = export_model(model_uri=last["model_uri"],
                                                          evaluation=gate.outputs["evaluation"],
                                                          model_card=cards["model_card"], config=dpo_training_config)
            exported = export.outputs["exported"]
            if recipe.handoff.model_registry is not None:
                tasks["register_model"] = register_model(exported=exported, config=handoff_config)
            if recipe.handoff.hub is not None:
                tasks["upload_to_hub"] = upload_to_hub(exported=exported, preference_pairs=last["preference_pairs"],
                                                       config=handoff_config, **cards)
            if recipe.handoff.kserve is not None:
                tasks["serve_model"] = serve_model(exported=exported, config=handoff_config)

        with dsl.If(gate.outputs["Output"] == "passed", name="gate-passed"):  # a model that loses is never exported
            if safety:  # nor one that got less safe
                with dsl.If(safety_task.outputs["Output"] == "passed", name="safety-passed"):
                    export_and_hand_off()
            else:
                export_and_hand_off()

        apply_platform(recipe.cluster, {k: t for k, t in tasks.items() if not k.startswith("round_")}, target,
                       recipe.engines, recipe.handoff)
        if task_names is not None:
            for key, task in tasks.items():  # a round's tasks by `round_<r>.<key>`, named `<round task>/<task>`
                inner = round_tasks.get(int(key.removeprefix("round_"))) if key.startswith("round_") else None
                task_names.update({f"{key}.{k}": f"{task.name}/{t.name}" for k, t in inner.items()} if inner
                                  else {key: task.name})
        return Outputs(summary=run_summary_task.outputs["summary"], rejected=run_summary_task.outputs["rejected"],
                       summary_report=run_summary_task.outputs["summary_report"],
                       evaluation=gate.outputs["evaluation"], evaluation_report=gate.outputs["evaluation_report"],
                       **cards, **{name: last[name] for name in ROUND_OUTPUTS})

    return pugc_pipeline
