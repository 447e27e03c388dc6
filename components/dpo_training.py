from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from pugc.components import images


@dsl.component(base_image=images.TRAINER, install_kfp_package=False)
def dpo_training(preference_pairs: Input[Dataset], config: dict, engines: dict, runtime: dict, recipe_digest: str,
                 dpo_model: Output[Model], metrics: Output[Metrics], loss_curve: Output[HTML],
                 policy_model: Input[Model] = None):
    """Stage 7: DPO (or SimPO) of the policy on the preference pairs; saves a from_pretrained checkpoint.
    With `policy_model` (the previous round's checkpoint) training starts from it instead of engines.policy."""
    from pugc.checkpoint import task_scope
    from pugc.reports import write_loss_curve
    from pugc.rounds import with_policy_model
    from pugc.stage_runner import publish, run_training

    engines = with_policy_model(engines, policy_model.path if policy_model else None)
    report = run_training(preference_pairs.path, dpo_model.path, config, engines, runtime,
                          scope=task_scope(dpo_model.uri), pairs_uri=preference_pairs.uri, model_uri=dpo_model.uri)
    publish(report, [dpo_model], metrics, recipe_digest)
    write_loss_curve(dpo_model.path, loss_curve.path)
