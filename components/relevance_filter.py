from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.INFERENCE, install_kfp_package=False)
def relevance_filter(instructions: Input[Dataset], documents: Input[Dataset], config: dict, engines: dict, runtime: dict, recipe_digest: str,
                     shard_index: int, shard_count: int,
                     relevant_instructions: Output[Dataset], dropped: Output[Dataset], metrics: Output[Metrics]):
    """Stage 3: keep questions whose document (joined by id from `documents`, ingest's table) holds enough
    information to answer them.

    Runs shard `shard_index` of `shard_count`; with `runtime.checkpoint_root` a retried try of this task
    (same run, same task: its output URI says which) resumes.
    """
    from pugc.checkpoint import task_scope
    from pugc.stage_runner import publish, run_stage, upstream_spent

    report = run_stage("relevance_filter", instructions.path, relevant_instructions.path, dropped.path, config, engines,
                       shard_index, shard_count, runtime, scope=task_scope(relevant_instructions.uri),
                       tables={"documents": documents.path},
                       spent_before=upstream_spent(instructions, documents))
    publish(report, [relevant_instructions, dropped], metrics, recipe_digest)
