from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def preference_pairs(scored_responses: Input[Dataset], instructions: Input[Dataset], config: dict, recipe_digest: str,
                     preference_pairs: Output[Dataset], dropped: Output[Dataset], metrics: Output[Metrics],
                     pairs_report: Output[HTML]):
    """Stage 6: chosen = highest mean score, rejected = lowest, per question; ties and thin margins dropped,
    an answer cut at max_tokens never chosen.
    The questions are joined by id from `instructions`; the pair file is self-contained."""
    from pugc.reports import write_pairs_report
    from pugc.stage_runner import publish, run_stage, upstream_spent

    report = run_stage("preference_pairs", scored_responses.path, preference_pairs.path, dropped.path, config,
                       tables={"instructions": instructions.path},
                       spent_before=upstream_spent(scored_responses, instructions))
    publish(report, [preference_pairs, dropped], metrics, recipe_digest)
    write_pairs_report(preference_pairs.path, report["counts"], pairs_report.path, report["metrics"])
