from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.INFERENCE, install_kfp_package=False)
def instruction_gen(filtered_ugc: Input[Dataset], config: dict, engines: dict, runtime: dict, recipe_digest: str,
                    shard_index: int, shard_count: int,
                    instructions: Output[Dataset], dropped: Output[Dataset], metrics: Output[Metrics]):
    """Stage 2: the one self-contained question a reader might ask that each document answers.

    Runs shard `shard_index` of `shard_count`; with `runtime.checkpoint_root` a retried try of this task
    (same run, same task: its output URI says which) resumes.
    """
    from pugc.checkpoint import task_scope
    from pugc.stage_runner import publish, run_stage, upstream_spent

    report = run_stage("instruction_gen", filtered_ugc.path, instructions.path, dropped.path, config, engines,
                       shard_index, shard_count, runtime, scope=task_scope(instructions.uri),
                       spent_before=upstream_spent(filtered_ugc))
    publish(report, [instructions, dropped], metrics, recipe_digest)
