from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from pugc.components import images


@dsl.component(base_image=images.INFERENCE, install_kfp_package=False)
def response_sampling(relevant_instructions: Input[Dataset], config: dict, engines: dict, runtime: dict, recipe_digest: str,
                      shard_index: int, shard_count: int,
                      responses: Output[Dataset], dropped: Output[Dataset], metrics: Output[Metrics],
                      policy_model: Input[Model] = None):
    """Stage 4: K policy responses per question.

    Runs shard `shard_index` of `shard_count`; with `runtime.checkpoint_root` a retried try of this task
    (same run, same task: its output URI says which) resumes. `policy_model` (a trained round's checkpoint) replaces
    engines.policy.model.
    """
    from pugc.rounds import with_policy_model
    from pugc.checkpoint import task_scope
    from pugc.stage_runner import publish, run_stage, upstream_spent

    engines = with_policy_model(engines, policy_model.path if policy_model else None)
    report = run_stage("response_sampling", relevant_instructions.path, responses.path, dropped.path, config, engines,
                       shard_index, shard_count, runtime, scope=task_scope(responses.uri),
                       spent_before=upstream_spent(relevant_instructions, policy_model))
    publish(report, [responses, dropped], metrics, recipe_digest)
