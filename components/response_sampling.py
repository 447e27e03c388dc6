from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.INFERENCE, install_kfp_package=False)
def response_sampling(relevant_instructions: Input[Dataset], config: dict, engines: dict, runtime: dict, recipe_digest: str,
                      shard_index: int, shard_count: int,
                      responses: Output[Dataset], dropped: Output[Dataset], metrics: Output[Metrics]):
    """Stage 4: K policy responses per question.

    Runs shard `shard_index` of `shard_count`; with `runtime.checkpoint_root` a retried task resumes.
    """
    from pugc.stage_runner import publish, run_stage

    report = run_stage("response_sampling", relevant_instructions.path, responses.path, dropped.path, config, engines,
                       shard_index, shard_count, runtime)
    publish(report, [responses, dropped], metrics, recipe_digest)
