from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def preference_pairs(scored_responses: Input[Dataset], config: dict, recipe_digest: str,
                     preference_pairs: Output[Dataset], dropped: Output[Dataset], metrics: Output[Metrics]):
    """Stage 6: chosen = highest mean score, rejected = lowest, per question; ties and thin margins dropped."""
    from pugc.stage_runner import publish, run_stage

    report = run_stage("preference_pairs", scored_responses.path, preference_pairs.path, dropped.path, config)
    publish(report, [preference_pairs, dropped], metrics, recipe_digest)
