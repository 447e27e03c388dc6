from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def round_split(training_questions: Input[Dataset], round_index: int, round_count: int, recipe_digest: str,
                questions: Output[Dataset], metrics: Output[Metrics]):
    """Round `round_index`'s part of the training questions (by a hash of their id): each question is sampled
    and trained on in exactly one round."""
    from pugc.rounds import run_round_split
    from pugc.stage_runner import publish, upstream_spent

    report = run_round_split(training_questions.path, round_index, round_count, questions.path,
                             spent_before=upstream_spent(training_questions))
    publish(report, [questions], metrics, recipe_digest)
