from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Output

from pugc.components import images


@dsl.component(base_image=images.BASE, install_kfp_package=False)
def run_summary(quarantine: Input[Dataset], duplicates: Input[Dataset], ugc_filter_dropped: Input[Dataset],
                safety_screen_dropped: Input[Dataset],
                instruction_gen_dropped: Input[Dataset], relevance_filter_dropped: Input[Dataset],
                held_out_split_dropped: Input[Dataset], response_sampling_dropped: Input[Dataset],
                reward_scoring_dropped: Input[Dataset], preference_pairs_dropped: Input[Dataset],
                training_report: Input[Artifact], evaluate_dropped: Input[Dataset], evaluation: Input[Artifact],
                recipe_digest: str, dpo_training_config: dict, handoff_config: dict,
                summary: Output[Artifact], rejected: Output[Dataset], report: Output[Markdown],
                summary_report: Output[HTML], model_card: Output[Markdown], dataset_card: Output[Markdown],
                rounds: Input[Artifact] = None,
                rounds_dropped: Input[Dataset] = None, safety: Input[Artifact] = None,
                safety_eval_dropped: Input[Dataset] = None, cost_settings: dict = {},
                preference_pairs: Input[Dataset] = None, documents: Input[Dataset] = None, license_field: str = ""):
    """Where every input line went: the run's accounting, one file of every drop, and a readable report
    (Markdown, and the HTML page a local run's reports/run_summary.html shows), with the evaluation and gate.
    With several rounds, `rounds` and `rounds_dropped` (the last round's report) hold every round's figures and
    drops; the round stages' own inputs are then the last round's. `cost_settings`: the recipe's cluster and
    engines sections, for the summary's GPU-hours, tokens and cost; `preference_pairs`, `documents` and
    `license_field`: the pairs per source licence. It also writes the model card and the
    pairs' dataset card (README.md with the Hub's metadata): this task alone sees every stage's drops, the
    licences, the training and the evaluation with its gate; export_model puts the model card in the export."""
    from pugc.cards import write_cards
    from pugc.summary import write_run_summary

    figures = write_run_summary(
        stage_artifacts=[duplicates, ugc_filter_dropped, safety_screen_dropped, instruction_gen_dropped, relevance_filter_dropped,
                         held_out_split_dropped, response_sampling_dropped, reward_scoring_dropped,
                         preference_pairs_dropped, training_report, evaluate_dropped],
        quarantine=quarantine, recipe_digest=recipe_digest, evaluation_path=evaluation.path,
        summary_path=summary.path, rejected_path=rejected.path, report_path=report.path, html_path=summary_report.path,
        rounds_path=rounds.path if rounds else None, rounds_dropped_path=rounds_dropped.path if rounds_dropped else None,
        safety_path=safety.path if safety else None, safety_artifacts=[safety_eval_dropped] if safety_eval_dropped else [],
        cost_settings=cost_settings,
        pair_sources=(preference_pairs.path, documents.path, license_field) if preference_pairs and documents else None,
    )
    write_cards(figures, dpo_training_config, handoff_config, model_card.uri, model_card.path, dataset_card.path)
