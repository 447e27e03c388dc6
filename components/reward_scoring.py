from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.INFERENCE, install_kfp_package=False)
def reward_scoring(responses: Input[Dataset], documents: Input[Dataset], instructions: Input[Dataset], config: dict, engines: dict, runtime: dict, recipe_digest: str,
                   shard_index: int, shard_count: int,
                   scored_responses: Output[Dataset], dropped: Output[Dataset], judge_outputs: Output[Dataset],
                   metrics: Output[Metrics]):
    """Stage 5: judge every response 1-5 against the UGC document as the reference answer (documents and
    questions joined by id from their tables); the judge's raw text goes to `judge_outputs` for inspection.

    Runs shard `shard_index` of `shard_count`; with `runtime.checkpoint_root` a retried try of this task
    (same run, same task: its output URI says which) resumes.
    """
    from pugc.checkpoint import task_scope
    from pugc.stage_runner import publish, run_stage, upstream_spent

    report = run_stage("reward_scoring", responses.path, scored_responses.path, dropped.path, config, engines,
                       shard_index, shard_count, runtime, scope=task_scope(scored_responses.uri),
                       tables={"documents": documents.path, "instructions": instructions.path},
                       side_path=judge_outputs.path,
                       spent_before=upstream_spent(responses, documents, instructions))
    publish(report, [scored_responses, dropped, judge_outputs], metrics, recipe_digest)
