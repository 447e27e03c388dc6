from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from pugc.components import images


@dsl.component(base_image=images.TRAINER, install_kfp_package=False)
def dpo_training(preference_pairs: Input[Dataset], config: dict, engines: dict, runtime: dict, recipe_digest: str,
                 dpo_model: Output[Model], training_report: Output[Artifact], metrics: Output[Metrics],
                 loss_curve: Output[HTML], policy_model: Input[Model] = None) -> str:
    """Stage 7: DPO (or SimPO) of the policy on the preference pairs; saves a from_pretrained checkpoint.
    With `policy_model` (the previous round's checkpoint) training starts from it instead of engines.policy.
    The training report is its own small artifact, and the model's URI the task's output: the tasks that only
    read figures or copy the model (run_summary, round_report, export_model) take those, since KFP's launcher
    downloads every input artifact to the pod's disk before a task starts (launcher_v2.go downloadArtifacts)."""
    from pugc.checkpoint import task_scope
    from pugc.reports import write_loss_curve
    from pugc.rounds import with_policy_model
    from pugc.stage_runner import publish, run_training, upstream_spent, write_training_report

    engines = with_policy_model(engines, policy_model.path if policy_model else None)
    report = run_training(preference_pairs.path, dpo_model.path, config, engines, runtime,
                          scope=task_scope(dpo_model.uri), pairs_uri=preference_pairs.uri, model_uri=dpo_model.uri,
                          spent_before=upstream_spent(preference_pairs, policy_model))
    publish(report, [dpo_model, training_report], metrics, recipe_digest)
    write_training_report(report, training_report.path)
    write_loss_curve(dpo_model.path, loss_curve.path)
    return dpo_model.uri
