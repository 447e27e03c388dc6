from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from pugc.components import images


@dsl.component(base_image=images.INFERENCE, install_kfp_package=False)
def evaluate(evaluation_questions: Input[Dataset], ugc: Input[Dataset], dpo_model: Input[Model], config: dict,
             engines: dict, runtime: dict, recipe_digest: str, shard_index: int, shard_count: int,
             judged: Output[Dataset], dropped: Output[Dataset], metrics: Output[Metrics],
             policy_model: Input[Model] = None):
    """Trained model vs baseline on shard `shard_index` of the evaluation prompts: both answer, then the judge
    compares them in both orders (Prometheus 2 relative grading, the UGC document as reference); three passes of
    the shared runner, checkpointed under runtime's checkpoint_root. With `policy_model` (the previous round's
    model) that model is the baseline, whatever evaluation.baseline says."""
    from pugc.checkpoint import task_scope
    from pugc.evaluation import run_evaluate
    from pugc.stage_runner import publish, upstream_spent

    if policy_model:
        config = {**config, "baseline": policy_model.path}
    report = run_evaluate(evaluation_questions.path, ugc.path, dpo_model.path, config, engines, shard_index,
                          shard_count, judged.path, dropped.path, runtime=runtime, scope=task_scope(judged.uri),
                          drop_stage="evaluate_previous" if policy_model else "evaluate",
                          spent_before=upstream_spent(evaluation_questions, ugc, dpo_model, policy_model))
    publish(report, [judged, dropped], metrics, recipe_digest)
