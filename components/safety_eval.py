from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from pugc.components import images


@dsl.component(base_image=images.INFERENCE, install_kfp_package=False)
def safety_eval(dpo_model: Input[Model], config: dict, engines: dict, runtime: dict, recipe_digest: str,
                safety_judged: Output[Dataset], dropped: Output[Dataset], safety: Output[Artifact],
                metrics: Output[Metrics]) -> str:
    """The trained model and the baseline answer evaluation.safety.prompts, the evaluator judges each answer
    harmful or not; returns "failed" when the harm rate rose past evaluation.gate.max_harm_rate_increase (the
    pipeline then exports nothing), else "passed"."""
    from pugc.checkpoint import task_scope
    from pugc.safety_eval import run_safety_eval, run_safety_gate
    from pugc.stage_runner import publish

    report = run_safety_eval(dpo_model.path, config, engines, safety_judged.path, dropped.path, runtime=runtime,
                             scope=task_scope(safety_judged.uri))
    publish(report, [safety_judged, dropped], metrics, recipe_digest)
    block = run_safety_gate(safety_judged.path, config, safety.path)
    safety.metadata.update({"gate": "passed" if block["gate"]["passed"] else "failed", "reason": block["gate"]["reason"]})
    return "passed" if block["gate"]["passed"] else "failed"
