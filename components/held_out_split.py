from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def held_out_split(relevant_instructions: Input[Dataset], documents: Input[Dataset], config: dict,
                   recipe_digest: str, training_questions: Output[Dataset], evaluation_questions: Output[Dataset],
                   dropped: Output[Dataset], metrics: Output[Metrics]):
    """A fixed share of the relevant questions (by a hash of their id) is held out: never sampled or trained
    on, it is the evaluation set. Held-out questions are accounted as dropped with reason `held_out`; training
    questions whose text or document contains an evaluation prompt (a prompt set's, or a held-out question)
    are dropped as `contaminated` (evaluation.decontamination)."""
    from pugc.evaluation import run_held_out_split
    from pugc.stage_runner import publish, upstream_spent

    report = run_held_out_split(relevant_instructions.path, config, training_questions.path,
                                evaluation_questions.path, dropped.path, documents.path,
                                spent_before=upstream_spent(relevant_instructions, documents))
    publish(report, [training_questions, evaluation_questions, dropped], metrics, recipe_digest)
