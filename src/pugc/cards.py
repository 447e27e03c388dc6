"""The model card and the dataset card: README.md files with the Hugging Face Hub's YAML metadata, built from
the run's summary (pugc.summary) and the recipe's training and hand-off sections.

The model card says what was trained from what (base model, method, hyper-parameters, data and its licences),
how it was judged (figures, the evaluator by name, whether the run graded itself) and what the gate decided;
the dataset card says how many pairs survived each stage, why the rest were dropped, who judged and under
which licences the source documents were used. The metadata is dumped by a YAML library, never formatted by
hand, so a model id with a colon or a licence with quotes stays one value; `huggingface_hub.ModelCard` and
`DatasetCard` read them back (tests/unit/test_cards.py).
"""
from __future__ import annotations

import re

import yaml

from pugc.summary import stage_table

# KFP output URIs: <root>/<pipeline>/<run id>/<task>/<uuid>/<output> on the backend, <root>/<run>/<task>/<output>
# in the local runner (pugc.checkpoint.task_scope reads the same layout).
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
TRAINING_FIGURES = ("method", "base_model", "base_revision", "lora", "strategy", "world_size", "master_dtype",
                    "compute_dtype", "steps", "pairs", "final_loss", "reward_accuracy", "reward_margin")
# TRL fields a reader of the card wants first; the rest of the recipe's trainer section follows them
HEADLINE_HYPERPARAMETERS = ("beta", "learning_rate", "num_train_epochs", "lr_scheduler_type", "warmup_ratio",
                            "per_device_train_batch_size", "gradient_accumulation_steps", "max_length",
                            "loss_type", "simpo_gamma", "bf16", "seed")


def run_id_of(output_uri: str) -> str:
    """The KFP run an output belongs to, read from its URI (the task's own run; a cached task's, its first)."""
    parts = [part for part in output_uri.rstrip("/").split("/") if part]
    if len(parts) >= 4 and _UUID.fullmatch(parts[-2]):
        return parts[-4]
    return parts[-3] if len(parts) >= 3 else ""


def _front_matter(metadata: dict) -> str:
    # sort_keys off: the Hub's keys first, then ours, as written; allow_unicode: licence names stay readable
    return "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)]


def _model_name(model: dict | None) -> str:
    if not model:
        return "-"
    return model["model"] + (f"@{model['revision']}" if model.get("revision") else "")


def _size_category(count: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if count < limit:
            return name
    return "1M<n<10M" if count < 10_000_000 else "n>10M"


def hyperparameters(training_section: dict) -> dict:
    """The recipe's dpo_training section as a card states it: our switches and every TRL field, headline first."""
    trainer = {key: value for key, value in training_section.items()
               if key not in ("export_uri", "lora", "trainer") and value is not None}
    trainer.update(training_section.get("trainer") or {})
    ordered = {key: trainer.pop(key) for key in HEADLINE_HYPERPARAMETERS if key in trainer}
    if training_section.get("lora"):
        ordered["lora"] = training_section["lora"]
    return {**ordered, **dict(sorted(trainer.items()))}


def _gate(evaluation: dict) -> dict:
    gate = evaluation.get("gate") or {}
    return {"passed": bool(gate.get("passed")), "reason": gate.get("reason") or "no gate"}


def _eval_results(evaluation: dict, evaluator: str) -> list[dict]:
    """model-index results: the held-out win rates and, when run, the paper's benchmarks. Each metric names its
    evaluator in `args` (the Hub's `source` would need a URL, and a run's grading has none)."""
    graded = {"evaluator": evaluator, "self_judged": bool(evaluation.get("self_judged"))}

    def metrics(figures: dict, names: dict) -> list[dict]:
        return [{"type": kind, "name": f"{label} (graded by {evaluator})", "value": figures[key],
                 "args": dict(graded)}  # a copy each: no YAML anchors in the card
                for key, (kind, label) in names.items() if figures.get(key) is not None]

    results = [{"task": {"type": "text-generation", "name": "pairwise comparison with the baseline"},
                "dataset": {"name": "PUGC held-out questions", "type": "pugc-held-out"},
                "metrics": metrics(evaluation, {"win_rate": ("win_rate", "win rate"),
                                                "lc_win_rate": ("lc_win_rate", "length-controlled win rate")})}]
    benchmarks = evaluation.get("benchmarks") or {}
    results.append({"task": {"type": "text-generation"},
                    "dataset": {"name": "AlpacaEval 2", "type": "tatsu-lab/alpaca_eval"},
                    "metrics": metrics(benchmarks.get("alpaca_eval") or {},
                                       {"lc_win_rate": ("lc_win_rate", "AlpacaEval 2 LC win rate"),
                                        "win_rate": ("win_rate", "AlpacaEval 2 win rate")})})
    results.append({"task": {"type": "text-generation"}, "dataset": {"name": "MT-Bench", "type": "mt_bench"},
                    # the trained model's mean rating over both turns, 1-10
                    "metrics": metrics(benchmarks.get("mt_bench") or {},
                                       {"trained": ("mt_bench_score", "MT-Bench score")})})
    return [r for r in results if r["metrics"]]


def model_card(summary: dict, training_section: dict, handoff: dict, run_id: str) -> str:
    """README.md of the exported model. `summary`: the run's summary.json; `training_section`: the recipe's
    dpo_training section (its TRL fields); `handoff`: the recipe's handoff section (the model's licence, the
    Hub dataset repo holding the pairs)."""
    training = summary.get("training") or {}
    evaluation = summary.get("evaluation") or {}
    evaluator = _model_name(evaluation.get("evaluator"))
    gate = _gate(evaluation)
    method = training.get("method") or training_section.get("method") or "dpo"
    base_model = training.get("base_model") or ""
    dataset_repo = ((handoff.get("hub") or {}).get("dataset_repo_id")) or None
    name = ((handoff.get("hub") or {}).get("repo_id")) or f"pugc-{method}-{run_id}"
    metadata: dict = {
        "base_model": base_model,
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "license": handoff.get("license") or "other",
        "tags": ["pugc", method, "trl", "preference-alignment", "generated_from_trainer"],
    }
    if dataset_repo:
        metadata["datasets"] = [dataset_repo]
    results = _eval_results(evaluation, evaluator)
    if results:
        metadata["model-index"] = [{"name": name, "results": results}]
    metadata["pugc"] = {  # what the Hub does not define, for whoever reads the card by machine
        "run_id": run_id, "recipe_digest": summary.get("recipe_digest"),
        "gate": gate, "evaluator": evaluator, "self_judged": bool(evaluation.get("self_judged")),
        "preference_pairs": summary.get("preference_pairs"),
        "input_licenses": summary.get("input_licenses") or {},
        "hyperparameters": hyperparameters(training_section),
    }

    lines = [_front_matter(metadata), f"# {name}", "",
             f"{base_model or 'The policy'} aligned with {method.upper()} on preference pairs built by PUGC from "
             "user-generated content: questions written from the documents, answers sampled from the policy, "
             "graded by a judge with the document as the reference answer (Tan et al., ACL 2025, "
             "arXiv 2506.04463).", "",
             "## Gate", "",
             f"**{'passed' if gate['passed'] else 'failed'}**: {gate['reason']}", "",
             f"Run `{run_id}`, recipe digest `{summary.get('recipe_digest', '-')}`.", "",
             "## Evaluation", ""]
    if evaluation:
        lines += [f"Graded by **{evaluator}**"
                  + (" — the reward judge itself, whose scores made the training pairs (self-judged)."
                     if evaluation.get("self_judged") else "."), "",
                  *_table(["figure", "value"],
                          [["prompts", evaluation.get("prompts")], ["win", evaluation.get("win")],
                           ["tie", evaluation.get("tie")], ["lose", evaluation.get("lose")],
                           ["win rate", evaluation.get("win_rate")],
                           ["length-controlled win rate", evaluation.get("lc_win_rate")],
                           ["baseline", evaluation.get("baseline")]])]
        for result in results[1:]:
            lines += ["", f"{result['dataset']['name']}: " + ", ".join(
                f"{m['name']} {_cell(m['value'])}" for m in result["metrics"])]
    else:
        lines += ["No evaluation ran."]
    lines += ["", "## Training", "", *_table(["", "value"], [[k, training.get(k)] for k in TRAINING_FIGURES
                                                             if k in training]),
              "", "Hyper-parameters (the recipe's `dpo_training`):", "",
              *_table(["parameter", "value"], [[k, v] for k, v in hyperparameters(training_section).items()]),
              "", "## Data", "",
              f"{summary.get('preference_pairs', 0)} preference pairs from {summary.get('input_records', 0)} "
              f"documents ({summary.get('input_lines', 0)} input {summary.get('input_unit', 'lines')}, {summary.get('quarantined', 0)} "
              "quarantined)" + (f"; published as [{dataset_repo}](https://huggingface.co/datasets/{dataset_repo})"
                                if dataset_repo else "") + ".", "",
              *_licence_lines(summary)]
    return "\n".join(lines) + "\n"


def _licence_lines(summary: dict) -> list[str]:
    licences = summary.get("input_licenses") or {}
    if not licences:
        return ["Source licences: not recorded (the recipe sets no `input.license_field`)."]
    in_pairs = summary.get("pair_licenses") or {}
    rows = [(licence, documents, in_pairs.get(licence, 0)) for licence, documents in sorted(licences.items())]
    return ["Documents kept per source licence (`input.license_field`), and the preference pairs made from them:",
            "", *_table(["licence", "documents", "pairs"], rows)]


def dataset_license(summary: dict) -> str | list[str]:
    """The pairs' `license` metadata: the licences of the documents the pairs came from (one, or the list);
    `unknown` unrecorded."""
    licences = sorted(summary.get("pair_licenses") or summary.get("input_licenses") or {})
    if not licences:
        return "unknown"
    return licences[0] if len(licences) == 1 else licences


def dataset_card(summary: dict, run_id: str) -> str:
    """README.md of the preference pairs: sizes, every stage's drops by reason, the models that generated and
    judged them, and the source licences."""
    stages = summary.get("stages") or {}
    pairs = int(summary.get("preference_pairs") or 0)
    judge = stages.get("reward_scoring", {})
    models = {role: {"model": stages[stage]["model"], "revision": stages[stage].get("model_revision")}
              for role, stage in (("generator", "instruction_gen"), ("policy", "response_sampling"),
                                  ("judge", "reward_scoring")) if stages.get(stage, {}).get("model")}
    dropped = {stage: dict(counts["dropped"]) for stage, counts in stages.items() if counts.get("dropped")}
    metadata = {
        "license": dataset_license(summary),
        "task_categories": ["text-generation"],
        "tags": ["pugc", "dpo", "preference", "synthetic"],
        "size_categories": [_size_category(pairs)],
        "pretty_name": f"PUGC preference pairs ({run_id})",
        "pugc": {"run_id": run_id, "recipe_digest": summary.get("recipe_digest"), "preference_pairs": pairs,
                 "input_records": summary.get("input_records"), "quarantined": summary.get("quarantined"),
                 "dropped": dropped, "models": {role: _model_name(m) for role, m in models.items()},
                 "input_licenses": summary.get("input_licenses") or {}},
    }
    lines = [_front_matter(metadata), "# PUGC preference pairs", "",
             f"{pairs} preference pairs in TRL's conversational format (`prompt`, `chosen`, `rejected` as message "
             "lists, with the judge's scores, the margin and the source ids), built by PUGC from "
             f"{summary.get('input_records', 0)} user-generated documents: chosen is the answer the judge scored "
             "highest, rejected the lowest; ties and thin margins are dropped.", "",
             f"Run `{run_id}`, recipe digest `{summary.get('recipe_digest', '-')}`.", "",
             "## Models", "",
             *(_table(["role", "model"], [[role, _model_name(m)] for role, m in models.items()]) if models
               else ["Not recorded."]),
             "", f"The judge ({_model_name(models.get('judge'))}) graded every answer 1-5 with the source document "
             "as the reference answer." if judge else "",
             "", "## Sizes and drops", "",
             f"{summary.get('input_lines', 0)} input {summary.get('input_unit', 'lines')}, {summary.get('quarantined', 0)} quarantined as "
             "malformed.", "",
             *_table(["stage", "in", "out", "dropped"], [list(row) for row in stage_table(stages)]),
             "", "## Licences", "", *_licence_lines(summary)]
    return "\n".join(lines) + "\n"


def write_cards(summary: dict, training_section: dict, handoff: dict, output_uri: str, model_card_path: str,
                dataset_card_path: str) -> str:
    """Both cards as files (the run_summary task's Markdown outputs); `output_uri`: one of the task's output
    URIs, which names the run. Returns the run id."""
    from pathlib import Path

    run_id = run_id_of(output_uri)
    Path(model_card_path).write_text(model_card(summary, training_section, handoff, run_id), encoding="utf-8")
    Path(dataset_card_path).write_text(dataset_card(summary, run_id), encoding="utf-8")
    return run_id
