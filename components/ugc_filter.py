from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.INFERENCE, install_kfp_package=False)
def ugc_filter(ugc: Input[Dataset], config: dict, engines: dict, runtime: dict, recipe_digest: str,
               shard_index: int, shard_count: int,
               filtered_ugc: Output[Dataset], dropped: Output[Dataset], metrics: Output[Metrics]):
    """Stage 1: rate each document's quality 1-5, keep those at or above the threshold.

    Runs shard `shard_index` of `shard_count`; with `runtime.checkpoint_root` a retried try of this task
    (same run, same task: its output URI says which) resumes.
    """
    from pugc.checkpoint import task_scope
    from pugc.stage_runner import publish, run_stage, upstream_spent

    report = run_stage("ugc_filter", ugc.path, filtered_ugc.path, dropped.path, config, engines,
                       shard_index, shard_count, runtime, scope=task_scope(filtered_ugc.uri),
                       spent_before=upstream_spent(ugc))
    publish(report, [filtered_ugc, dropped], metrics, recipe_digest)
