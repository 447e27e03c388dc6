"""What a run costs and what it would cost: accelerator-hours, tokens and money per stage.

Two halves, one vocabulary:
- `account`: a finished run's figures from its stage accounting (wall seconds of every task, summed over
  shards; tokens in and out of the stage's engines), the accelerators the recipe gives each task, and prices.
- `estimate`: the same figures before anything runs, for a number of input documents, from the recipe's
  settings (documents x K x N x tokens) and throughput figures (the recipe's `cluster.throughput`, else the
  project's measurements below). Unless `cluster.estimate` says otherwise, every count is an upper bound.
- `budget_stop`: whether the next stage's estimate would take what was spent past `cluster.budget`.

Accelerator-hours = seconds x accelerators / 3600 for every task (each shard). A local run holds no
accelerator: its accounting says 0 and, apart, what the recipe's resources would have held for that long.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pugc.config import Recipe, ResourceSpec

# The project's own throughput measurements (bench/results/gpu-h200.json, `make bench-gpu`, 2026-11-27): a
# 1.1B-parameter model under transformers on one H200. They are NOT figures for a 7B or 70B model under vLLM:
# a real estimate needs `cluster.throughput` measured on the run's own models and accelerators.
MEASURED_GENERATION_TOKENS_PER_SECOND = 2106.5  # generation_batched_vs_sequential: 128 prompts, batched
MEASURED_TRAINING_TOKENS_PER_SECOND = round(8 * 1024 / 1.912, 1)  # dpo_steps: 8 pairs x 1024 tokens per 1.912 s step
THROUGHPUT_SOURCE = ("project measurement, bench/results/gpu-h200.json: a 1.1B model under transformers on one "
                     "H200 - set cluster.throughput for your models")

ESTIMATED_STAGES = ("ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "response_sampling",
                    "reward_scoring", "preference_pairs", "dpo_training", "evaluate")
ENGINE_ROLE = {"ugc_filter": "generator", "safety_screen": "generator", "instruction_gen": "generator",
               "relevance_filter": "generator", "response_sampling": "policy", "reward_scoring": "judge",
               "dpo_training": "policy", "evaluate": "grader", "safety_eval": "grader"}


@dataclass
class StageCost:
    stage: str
    requests: int = 0  # records the stage takes in
    tokens_in: int = 0
    tokens_out: int = 0
    task_seconds: float = 0.0  # summed over the stage's tasks (shards)
    accelerators: int = 0  # per task
    accelerator_type: str = ""
    gpu_hours: float = 0.0
    cost: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def as_dict(self) -> dict:
        return {"requests": self.requests, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "task_seconds": round(self.task_seconds, 3), "accelerators": self.accelerators,
                "accelerator_type": self.accelerator_type, "gpu_hours": round(self.gpu_hours, 6),
                "cost": None if self.cost is None else round(self.cost, 4), "notes": self.notes}


# ----------------------------------------------------------------------------------------- accelerators
def task_resources(recipe: Recipe, stage: str) -> ResourceSpec:
    return recipe.cluster.resources.get(stage) or ResourceSpec()


def accelerators_of(recipe: Recipe, stage: str) -> tuple[int, str]:
    """(accelerators one task of `stage` holds, its type as prices name it). dpo_training on a TrainJob holds
    nodes x accelerator_count."""
    spec = task_resources(recipe, stage)
    count = spec.accelerator_count * (spec.nodes if stage == "dpo_training" else 1)
    if not count:
        return 0, ""
    selector = {**recipe.cluster.gpu.node_selector, **spec.node_selector}
    kind = (selector.get("cloud.google.com/gke-accelerator") or spec.vertex_accelerator_type
            or recipe.cluster.gpu.vertex_accelerator_type)
    return count, kind


def accelerator_price(recipe: Recipe, kind: str, stage: str) -> float | None:
    price = recipe.cluster.prices.accelerator_hour
    if price is None or not kind:
        return None
    if isinstance(price, dict):
        if kind not in price:
            raise ValueError(f"cluster.prices.accelerator_hour has no price for {kind!r} (stage {stage}'s "
                             f"accelerators): add it, or give one number for every type")
        return float(price[kind])
    return float(price)


def engine_of(recipe: Recipe, stage: str):
    role = ENGINE_ROLE.get(stage)
    if role is None:
        return None
    return recipe.engines.grader if role == "grader" else getattr(recipe.engines, role)


def price_stage(recipe: Recipe, cost: StageCost) -> None:
    """GPU-hours from seconds x accelerators; the cost where the recipe has the prices it needs."""
    cost.accelerators, cost.accelerator_type = accelerators_of(recipe, cost.stage)
    cost.gpu_hours = cost.task_seconds * cost.accelerators / 3600
    parts = []
    hour = accelerator_price(recipe, cost.accelerator_type, cost.stage)
    if hour is not None:
        parts.append(cost.gpu_hours * hour)
    engine = engine_of(recipe, cost.stage)
    if engine is not None and engine.backend == "openai" and engine.model in recipe.cluster.prices.tokens:
        price = recipe.cluster.prices.tokens[engine.model]
        parts.append((cost.tokens_in * price.input_per_million + cost.tokens_out * price.output_per_million) / 1e6)
    cost.cost = sum(parts) if parts else None


def totals(costs: list[StageCost], pairs: int | None = None) -> dict:
    priced = [c.cost for c in costs if c.cost is not None]
    total = {"gpu_hours": round(sum(c.gpu_hours for c in costs), 6),
             "tokens_in": sum(c.tokens_in for c in costs), "tokens_out": sum(c.tokens_out for c in costs),
             "task_seconds": round(sum(c.task_seconds for c in costs), 3),
             "cost": round(sum(priced), 4) if priced else None}
    if pairs:
        total["per_preference_pair"] = {"gpu_hours": round(total["gpu_hours"] / pairs, 9),
                                        "tokens": round((total["tokens_in"] + total["tokens_out"]) / pairs, 1),
                                        "cost": None if total["cost"] is None else round(total["cost"] / pairs, 6)}
    return total


# ------------------------------------------------------------------------------------------- accounting
def account(recipe: Recipe, stages: dict, pairs: int, local: bool) -> dict:
    """The summary's `cost` block from its `stages` (each with `task_seconds` or `seconds`, `tokens_in`,
    `tokens_out`). `local`: the run held no accelerator, so its GPU-hours are 0 and `would_be_gpu_hours` says
    what the recipe's resources would have held for the same seconds (CPU seconds are not GPU seconds)."""
    costs = []
    for name, figures in stages.items():
        if name == "ingest_ugc" or figures.get("seconds") is None:
            continue
        seconds = float(figures.get("task_seconds") or figures.get("seconds") or 0.0)
        cost = StageCost(name, requests=int(figures.get("in") or 0), tokens_in=int(figures.get("tokens_in") or 0),
                         tokens_out=int(figures.get("tokens_out") or 0), task_seconds=seconds)
        price_stage(recipe, cost)
        costs.append(cost)
    block = {"where": "local" if local else "cluster", "currency": recipe.cluster.prices.currency,
             "stages": {}, "total": {}}
    for cost in costs:
        entry = cost.as_dict()
        entry.pop("notes")
        entry["throughput"] = round(cost.tokens_out / cost.task_seconds, 1) if cost.task_seconds and cost.tokens_out else None
        if local:
            entry["would_be_gpu_hours"], entry["would_be_accelerators"] = entry["gpu_hours"], entry["accelerators"]
            entry["gpu_hours"], entry["accelerators"] = 0.0, 0
            entry["cost"] = _token_cost_only(recipe, cost)
        block["stages"][cost.stage] = entry
    if local:
        for cost in costs:
            cost.gpu_hours, cost.cost = 0.0, block["stages"][cost.stage]["cost"]
    block["total"] = totals(costs, pairs)
    if local:
        block["note"] = ("a local run holds no accelerator: gpu_hours are 0; would_be_gpu_hours are the same "
                         "seconds on the recipe's cluster.resources")
    return block


def _token_cost_only(recipe: Recipe, cost: StageCost) -> float | None:
    engine = engine_of(recipe, cost.stage)
    if engine is not None and engine.backend == "openai" and engine.model in recipe.cluster.prices.tokens:
        price = recipe.cluster.prices.tokens[engine.model]
        return round((cost.tokens_in * price.input_per_million + cost.tokens_out * price.output_per_million) / 1e6, 4)
    return None


# ------------------------------------------------------------------------------------------- estimates
def throughput_for(recipe: Recipe, stage: str) -> tuple[float, str]:
    figures = recipe.cluster.throughput
    if stage in figures:
        return float(figures[stage]), f"cluster.throughput.{stage}"
    if "default" in figures and stage != "dpo_training":
        return float(figures["default"]), "cluster.throughput.default"
    if stage == "dpo_training":
        return MEASURED_TRAINING_TOKENS_PER_SECOND, THROUGHPUT_SOURCE
    return MEASURED_GENERATION_TOKENS_PER_SECOND, THROUGHPUT_SOURCE


def _verdict_out(config) -> int:
    """Generated tokens of one verdict: sampled, n x max_tokens; expected, one scored position."""
    return config.n * config.max_tokens if config.mode == "sampled" else 1


def estimate(recipe: Recipe, documents: int) -> list[StageCost]:
    """Every stage's requests, tokens, GPU-hours and cost for `documents` input documents. The counts follow
    the DAG: each filter passes on `cluster.estimate.keep[stage]` of its input (1 unless set)."""
    settings = recipe.cluster.estimate
    keep = lambda stage, n: int(round(n * settings.keep.get(stage, 1.0)))  # noqa: E731
    doc_tokens = lambda config: min(settings.document_tokens or config.max_document_tokens,  # noqa: E731
                                    config.max_document_tokens)
    question_tokens = recipe.instruction_gen.max_tokens  # a question is at most what instruction_gen may write
    costs: list[StageCost] = []
    n = int(documents)

    filt = recipe.ugc_filter
    if filt.threshold is not None:
        costs.append(StageCost("ugc_filter", n, n * doc_tokens(filt), n * _verdict_out(filt)))
        n = keep("ugc_filter", n)
    screen = recipe.safety_screen
    if screen.enabled:
        costs.append(StageCost("safety_screen", n, n * doc_tokens(screen), n * _verdict_out(screen)))
        n = keep("safety_screen", n)
    gen = recipe.instruction_gen
    costs.append(StageCost("instruction_gen", n, n * doc_tokens(gen), n * gen.max_tokens))
    rel = recipe.relevance_filter
    costs.append(StageCost("relevance_filter", n, n * (doc_tokens(rel) + question_tokens), n * _verdict_out(rel)))
    questions = keep("relevance_filter", n)
    held_out = int(round(questions * recipe.evaluation.held_out_fraction))
    training = questions - held_out
    sampling = recipe.response_sampling
    costs.append(StageCost("response_sampling", training, training * question_tokens,
                           training * sampling.k * sampling.max_tokens))
    responses = training * sampling.k
    judge = recipe.reward_scoring
    judged_out = _verdict_out(judge) if judge.mode == "sampled" else judge.feedback_max_tokens + 1
    reference = doc_tokens(judge) if judge.reference else 0
    costs.append(StageCost("reward_scoring", responses, responses * (reference + question_tokens + sampling.max_tokens),
                           responses * judged_out))
    pairs = keep("preference_pairs", training)
    if recipe.preference_pairs.max_pairs is not None:
        pairs = min(pairs, recipe.preference_pairs.max_pairs * recipe.rounds)
    costs.append(StageCost("preference_pairs", responses))
    trainer = recipe.dpo_training.trainer
    epochs = float(trainer.get("num_train_epochs", 1) or 1)
    max_length = int(trainer.get("max_length") or 1024)
    training_cost = StageCost("dpo_training", pairs)
    training_cost.notes.append(f"{pairs} pairs x {epochs:g} epoch(s) x max_length {max_length}")
    costs.append(training_cost)
    ev = recipe.evaluation
    passes = 2 * recipe.rounds - 1  # every round against the baseline, later rounds also against the previous one
    judge_tokens = ev.judge.n * ev.judge.max_tokens if ev.judge.mode == "sampled" else ev.judge.feedback_max_tokens + 1
    evaluated = held_out * passes
    costs.append(StageCost("evaluate", evaluated, evaluated * (question_tokens * 3 + 2 * ev.max_tokens),
                           evaluated * (2 * ev.max_tokens + judge_tokens)))
    if ev.prompt_sets or ev.safety.prompts:
        costs[-1].notes.append("evaluation.prompt_sets and safety prompts not counted")

    for cost in costs:
        if cost.stage == "preference_pairs":
            continue  # CPU only
        rate, source = throughput_for(recipe, cost.stage)
        work = pairs * epochs * max_length if cost.stage == "dpo_training" else cost.tokens_out
        cost.task_seconds = work / rate
        cost.notes.append(f"{rate:g} tokens/s per task ({source})")
        price_stage(recipe, cost)
    return costs


def assumptions(recipe: Recipe) -> list[str]:
    settings = recipe.cluster.estimate
    lines = [f"documents of {settings.document_tokens} tokens" if settings.document_tokens
             else "documents at each stage's max_document_tokens (upper bound)",
             "every generation runs to max_tokens (upper bound); prompt templates not counted; expected-mode "
             "verdicts count one token"]
    kept = ", ".join(f"{stage} keeps {settings.keep.get(stage, 1.0):g}" for stage in
                     ("ugc_filter", "safety_screen", "relevance_filter", "preference_pairs"))
    lines.append(f"{kept} (cluster.estimate.keep; 1 = upper bound)")
    lines.append("GPU-hours = tokens / throughput x accelerators per task; pod start, image pull and model "
                 "download not counted")
    return lines


def estimate_lines(recipe: Recipe, documents: int) -> list[str]:
    """The estimate as the CLI prints it: a line per stage, the total, and its assumptions."""
    costs = estimate(recipe, documents)
    currency = recipe.cluster.prices.currency
    money = lambda value: "-" if value is None else f"{value:,.2f} {currency}"  # noqa: E731
    lines = [f"estimate for {documents:,} documents (recipe {recipe.name}):",
             f"  {'stage':<18} {'requests':>10} {'tokens in':>14} {'tokens out':>14} {'GPUs/task':>9} "
             f"{'GPU-hours':>10} {'cost':>14}"]
    for c in costs:
        lines.append(f"  {c.stage:<18} {c.requests:>10,} {c.tokens_in:>14,} {c.tokens_out:>14,} "
                     f"{c.accelerators:>9} {c.gpu_hours:>10,.1f} {money(c.cost):>14}")
    total = totals(costs)
    lines.append(f"  {'total':<18} {'':>10} {total['tokens_in']:>14,} {total['tokens_out']:>14,} {'':>9} "
                 f"{total['gpu_hours']:>10,.1f} {money(total['cost']):>14}")
    sources = sorted({note for c in costs for note in c.notes if "tokens/s" in note})
    lines += [f"  throughput: {source}" for source in sources]
    lines += [f"  assumes: {line}" for line in assumptions(recipe)]
    return lines


# ---------------------------------------------------------------------------------------------- budgets
def budget_stop(recipe: Recipe, spent: dict, next_stage: StageCost) -> str | None:
    """The one line that stops a run, or None: `spent` (gpu_hours, tokens, cost so far) plus the next stage's
    estimate against every limit in cluster.budget."""
    budget = recipe.cluster.budget
    checks = [("gpu_hours", budget.gpu_hours, next_stage.gpu_hours, "GPU-hours"),
              ("tokens", budget.tokens, next_stage.tokens, "tokens"),
              ("cost", budget.cost, next_stage.cost or 0.0, recipe.cluster.prices.currency)]
    for key, limit, coming, unit in checks:
        if limit is None:
            continue
        so_far = float(spent.get(key) or 0.0)
        if so_far + coming > limit:
            return (f"budget: stopped before {next_stage.stage}: spent {so_far:,.4g} {unit}, its estimate "
                    f"{coming:,.4g} {unit}, budget cluster.budget.{key} {limit:,.4g} {unit}")
    return None
