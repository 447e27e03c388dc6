from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def round_report(round_index: int, response_sampling_dropped: Input[Dataset], reward_scoring_dropped: Input[Dataset],
                 preference_pairs_dropped: Input[Dataset], training_report: Input[Artifact],
                 evaluate_dropped: Input[Dataset],
                 evaluation: Input[Artifact], preference_pairs: Input[Dataset], rounds: Output[Artifact],
                 dropped: Output[Dataset], pairs: Output[Dataset], previous_rounds: Input[Artifact] = None,
                 previous_dropped: Input[Dataset] = None, previous_pairs: Input[Dataset] = None,
                 previous_evaluation: Input[Artifact] = None, previous_evaluate_dropped: Input[Dataset] = None):
    """This round's figures (questions, pairs, final loss, win rate against the base policy, mean length)
    (and against the previous round's model, `previous_evaluation`, whose drops are `previous_evaluate_dropped`)
    appended to the earlier rounds', its dropped records and preference pairs to theirs: the last round's report
    holds every round's."""
    from pugc.rounds import write_round_report

    write_round_report(
        round_index,
        {"response_sampling": response_sampling_dropped, "reward_scoring": reward_scoring_dropped,
         "preference_pairs": preference_pairs_dropped, "dpo_training": training_report, "evaluate": evaluate_dropped},
        evaluation.path, previous_rounds.path if previous_rounds else None, rounds.path,
        previous_evaluation_path=previous_evaluation.path if previous_evaluation else None,
        appended={dropped.path: [previous_dropped.path if previous_dropped else None, response_sampling_dropped.path,
                                 reward_scoring_dropped.path, preference_pairs_dropped.path, evaluate_dropped.path,
                                 previous_evaluate_dropped.path if previous_evaluate_dropped else None],
                  pairs.path: [previous_pairs.path if previous_pairs else None, preference_pairs.path]})
