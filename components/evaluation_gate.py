from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def evaluation_gate(judged: Input[Dataset], config: dict, engines: dict, evaluation: Output[Artifact],
                    metrics: Output[Metrics], evaluation_report: Output[HTML]) -> str:
    """Win / tie / lose, win rate and length-controlled win rate over every judged prompt, the side-by-side
    report, and the gate: returns "passed" or "failed" (the pipeline exports only under "passed"). `engines`
    names who graded (engines.evaluator, else the reward judge: then the run is self-judged)."""
    from pugc.evaluation import run_evaluation_gate

    summary = run_evaluation_gate(judged.path, config, evaluation.path, evaluation_report.path, engines)
    for name in ("prompts", "win", "tie", "lose", "win_rate", "lc_win_rate"):
        metrics.log_metric(name, summary[name])
    for model, lengths in summary["mean_length"].items():
        for unit, value in lengths.items():
            metrics.log_metric(f"{model}_mean_{unit}", value)
    evaluation.metadata.update({"gate": "passed" if summary["gate"]["passed"] else "failed",
                                "reason": summary["gate"]["reason"], "evaluator": summary["evaluator"]["model"],
                                "evaluator_revision": summary["evaluator"]["revision"] or "",
                                "self_judged": int(summary["self_judged"])})
    return "passed" if summary["gate"]["passed"] else "failed"
