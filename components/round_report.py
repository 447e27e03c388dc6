from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def round_report(round_index: int, response_sampling_dropped: Input[Dataset], reward_scoring_dropped: Input[Dataset],
                 preference_pairs_dropped: Input[Dataset], dpo_model: Input[Model], evaluate_dropped: Input[Dataset],
                 evaluation: Input[Artifact], rounds: Output[Artifact], dropped: Output[Dataset],
                 previous_rounds: Input[Artifact] = None, previous_dropped: Input[Dataset] = None):
    """This round's figures (questions, pairs, final loss, win rate against the base policy, mean length)
    appended to the earlier rounds', and its dropped records to theirs: the last round's report holds all."""
    from pugc.rounds import write_round_report

    write_round_report(
        round_index,
        {"response_sampling": response_sampling_dropped, "reward_scoring": reward_scoring_dropped,
         "preference_pairs": preference_pairs_dropped, "dpo_training": dpo_model, "evaluate": evaluate_dropped},
        evaluation.path, previous_rounds.path if previous_rounds else None,
        previous_dropped.path if previous_dropped else None, rounds.path, dropped.path)
