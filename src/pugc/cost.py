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
def settings_of(sections: dict):
    """What `account` reads of a recipe (its cluster and engines sections), built from those sections alone:
    run_summary runs in the base image, where the whole recipe cannot be validated (dpo_training's TRL fields
    need TRL)."""
    from types import SimpleNamespace

    from pugc.config import ClusterConfig, EnginesConfig, build

    return SimpleNamespace(cluster=build(ClusterConfig, sections.get("cluster") or {}, "cluster"),
                           engines=build(EnginesConfig, sections.get("engines") or {}, "engines"))


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


def estimate_stage(recipe: Recipe, stage: str, n: int) -> StageCost:
    """One stage's requests, tokens, GPU-hours and cost for `n` of its input records: documents for the
    filters and instruction_gen, questions for relevance_filter and response_sampling, responses for
    reward_scoring, pairs for dpo_training, and question x pass for evaluate (each pass compares the
    trained model with one baseline on a question)."""
    settings = recipe.cluster.estimate
    doc_tokens = lambda config: min(settings.document_tokens or config.max_document_tokens,  # noqa: E731
                                    config.max_document_tokens)
    question_tokens = recipe.instruction_gen.max_tokens  # a question is at most what instruction_gen may write
    n = int(n)
    if stage in ("ugc_filter", "safety_screen"):
        config = getattr(recipe, stage)
        cost = StageCost(stage, n, n * doc_tokens(config), n * _verdict_out(config))
    elif stage == "instruction_gen":
        gen = recipe.instruction_gen
        cost = StageCost(stage, n, n * doc_tokens(gen), n * gen.max_tokens)
    elif stage == "relevance_filter":
        rel = recipe.relevance_filter
        cost = StageCost(stage, n, n * (doc_tokens(rel) + question_tokens), n * _verdict_out(rel))
    elif stage == "response_sampling":
        sampling = recipe.response_sampling
        cost = StageCost(stage, n, n * question_tokens, n * sampling.k * sampling.max_tokens)
    elif stage == "reward_scoring":
        judge, answer_tokens = recipe.reward_scoring, recipe.response_sampling.max_tokens
        judged_out = _verdict_out(judge) if judge.mode == "sampled" else judge.feedback_max_tokens + 1
        reference = doc_tokens(judge) if judge.reference else 0
        cost = StageCost(stage, n, n * (reference + question_tokens + answer_tokens), n * judged_out)
    elif stage == "preference_pairs":
        return StageCost(stage, n)  # CPU only
    elif stage == "dpo_training":
        trainer = recipe.dpo_training.trainer
        epochs = float(trainer.get("num_train_epochs", 1) or 1)
        max_length = int(trainer.get("max_length") or 1024)
        cost = StageCost(stage, n)
        cost.notes.append(f"{n} pairs x {epochs:g} epoch(s) x max_length {max_length}")
    elif stage == "evaluate":
        ev = recipe.evaluation
        judge_tokens = ev.judge.n * ev.judge.max_tokens if ev.judge.mode == "sampled" else ev.judge.feedback_max_tokens + 1
        cost = StageCost(stage, n, n * (question_tokens * 3 + 2 * ev.max_tokens), n * (2 * ev.max_tokens + judge_tokens))
        if ev.prompt_sets or ev.safety.prompts:
            cost.notes.append("evaluation.prompt_sets and safety prompts not counted")
    else:
        raise KeyError(f"no estimate for stage {stage!r} (estimated: {', '.join(ESTIMATED_STAGES)})")
    rate, source = throughput_for(recipe, stage)
    work = n * epochs * max_length if stage == "dpo_training" else cost.tokens_out
    cost.task_seconds = work / rate
    cost.notes.append(f"{rate:g} tokens/s per task ({source})")
    price_stage(recipe, cost)
    return cost


def estimate(recipe: Recipe, documents: int) -> list[StageCost]:
    """Every stage's requests, tokens, GPU-hours and cost for `documents` input documents. The counts follow
    the DAG: each filter passes on `cluster.estimate.keep[stage]` of its input (1 unless set)."""
    settings = recipe.cluster.estimate
    keep = lambda stage, n: int(round(n * settings.keep.get(stage, 1.0)))  # noqa: E731
    costs: list[StageCost] = []
    n = int(documents)
    if recipe.ugc_filter.threshold is not None:
        costs.append(estimate_stage(recipe, "ugc_filter", n))
        n = keep("ugc_filter", n)
    if recipe.safety_screen.enabled:
        costs.append(estimate_stage(recipe, "safety_screen", n))
        n = keep("safety_screen", n)
    costs.append(estimate_stage(recipe, "instruction_gen", n))
    costs.append(estimate_stage(recipe, "relevance_filter", n))
    questions = keep("relevance_filter", n)
    held_out = int(round(questions * recipe.evaluation.held_out_fraction))
    training = questions - held_out
    costs.append(estimate_stage(recipe, "response_sampling", training))
    responses = training * recipe.response_sampling.k
    costs.append(estimate_stage(recipe, "reward_scoring", responses))
    costs.append(estimate_stage(recipe, "preference_pairs", responses))
    pairs = keep("preference_pairs", training)
    if recipe.preference_pairs.max_pairs is not None:
        pairs = min(pairs, recipe.preference_pairs.max_pairs * recipe.rounds)
    costs.append(estimate_stage(recipe, "dpo_training", pairs))
    passes = 2 * recipe.rounds - 1  # every round against the baseline, later rounds also against the previous one
    costs.append(estimate_stage(recipe, "evaluate", held_out * passes))
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
# A run's spending travels with its data: every task's lineage carries `spent_before` (what the tasks upstream
# of it spent) and `spent` (that plus its own), in these figures. A task's upstream is the largest of its
# inputs' `spent`: the DAG is a chain with side tables (the document and question tables, spent less), so the
# input that carries the chain carries the most. Work in a parallel branch (an earlier round's evaluation while
# the next round samples) is counted where branches meet, so a check can see less than the run has spent.
SPENT_KEYS = ("gpu_hours", "tokens", "cost")
BUDGETED_STAGES = ("ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "response_sampling",
                   "reward_scoring", "dpo_training", "evaluate")


class BudgetExceededError(RuntimeError):
    """The next stage's estimate would take the run past cluster.budget: the task stops before its model loads."""


def budget_line(limits: dict, currency: str, spent: dict, next_stage: StageCost) -> str | None:
    """The one line that stops a run, or None: `spent` (gpu_hours, tokens, cost so far) plus the next stage's
    estimate against every limit in `limits` (cluster.budget's, nulls left out)."""
    checks = [("gpu_hours", next_stage.gpu_hours, "GPU-hours"), ("tokens", next_stage.tokens, "tokens"),
              ("cost", next_stage.cost or 0.0, currency)]
    for key, coming, unit in checks:
        limit = limits.get(key)
        if limit is None:
            continue
        so_far = float(spent.get(key) or 0.0)
        if so_far + coming > limit:
            return (f"budget: stopped before {next_stage.stage}: spent {_figure(so_far, key)} {unit}, its estimate "
                    f"{_figure(coming, key)} {unit}, budget cluster.budget.{key} {_figure(limit, key)} {unit}")
    return None


def _figure(value: float, key: str) -> str:
    """Tokens whole; GPU-hours and money to 4 significant digits, never in exponent form."""
    if key == "tokens" or abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:,.4g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.6f}"


def budget_stop(recipe: Recipe, spent: dict, next_stage: StageCost) -> str | None:
    """`budget_line` with the recipe's cluster.budget."""
    budget = recipe.cluster.budget
    limits = {"gpu_hours": budget.gpu_hours, "tokens": budget.tokens, "cost": budget.cost}
    return budget_line({k: v for k, v in limits.items() if v is not None}, recipe.cluster.prices.currency, spent,
                       next_stage)


def budget_plan(recipe: Recipe, local: bool = False) -> dict:
    """What a task needs to check the budget and count its own spending, without the recipe: the limits, and
    per budgeted stage its estimate for one input record (every estimate is linear in its records) and its
    prices. Empty without a limit. `local`: the run holds no accelerator (0 GPU-hours, none priced).
    It goes into the tasks' `runtime` parameter, so a budget is part of the budgeted tasks' cache key."""
    budget = recipe.cluster.budget
    limits = {k: v for k, v in (("gpu_hours", budget.gpu_hours), ("tokens", budget.tokens), ("cost", budget.cost))
              if v is not None}
    if not limits:
        return {}
    stages = {}
    for stage in BUDGETED_STAGES:
        one = estimate_stage(recipe, stage, 1)
        count, kind = (0, "") if local else accelerators_of(recipe, stage)
        hour = accelerator_price(recipe, kind, stage) if count else None
        engine = engine_of(recipe, stage)
        tokens = (recipe.cluster.prices.tokens.get(engine.model)
                  if engine is not None and engine.backend == "openai" else None)
        token_prices = [tokens.input_per_million, tokens.output_per_million] if tokens else None
        token_cost = (one.tokens_in * token_prices[0] + one.tokens_out * token_prices[1]) / 1e6 if tokens else None
        entry = {"tokens_in": one.tokens_in, "tokens_out": one.tokens_out,
                 "gpu_hours": 0.0 if local else one.gpu_hours, "cost": token_cost if local else one.cost,
                 "accelerators": count, "accelerator_hour": hour, "token_prices": token_prices}
        stages[stage] = {k: v for k, v in entry.items() if v is not None}  # a pipeline parameter: no nulls
    return {"limits": limits, "currency": recipe.cluster.prices.currency, "stages": stages}


def plan_estimate(plan: dict, stage: str, records: int) -> StageCost:
    """A stage's estimate for `records` input records from a `budget_plan`."""
    one = plan["stages"][stage]
    cost = None if one.get("cost") is None else one["cost"] * records
    return StageCost(stage, records, one["tokens_in"] * records, one["tokens_out"] * records,
                     gpu_hours=one["gpu_hours"] * records, cost=cost)


def check_budget(plan: dict, stage: str, records: int, spent: dict) -> None:
    """Raise BudgetExceededError when `stage` on `records` input records would take `spent` past the plan's limits."""
    if not plan or stage not in plan.get("stages", {}):
        return
    line = budget_line(plan["limits"], plan["currency"], spent, plan_estimate(plan, stage, records))
    if line:
        raise BudgetExceededError(line)


def own_spending(plan: dict, stage: str, seconds: float, tokens_in: int, tokens_out: int) -> dict:
    """What one task spent: its tokens, its seconds on the stage's accelerators (per the plan; none without
    one, or locally), priced as the plan says."""
    one = (plan or {}).get("stages", {}).get(stage) or {}
    gpu_hours = float(seconds) * int(one.get("accelerators") or 0) / 3600
    cost = gpu_hours * float(one.get("accelerator_hour") or 0.0)
    if one.get("token_prices"):
        cost += (tokens_in * one["token_prices"][0] + tokens_out * one["token_prices"][1]) / 1e6
    return {"gpu_hours": gpu_hours, "tokens": int(tokens_in) + int(tokens_out), "cost": cost}


def add_spending(*figures: dict) -> dict:
    return {key: sum(float(f.get(key) or 0.0) for f in figures) for key in SPENT_KEYS}


def upstream_spending(lineages: list[dict]) -> dict:
    """A task's `spent_before`: the most any of its inputs' lineages says was spent, per figure."""
    spent = [lineage.get("spent") or {} for lineage in lineages]
    return {key: max([float(s.get(key) or 0.0) for s in spent], default=0.0) for key in SPENT_KEYS}


def merged_spending(lineages: list[dict]) -> tuple[dict, dict]:
    """(spent_before, spent) of a stage's shards merged: their shared upstream once, plus each shard's own."""
    before = upstream_spending([{"spent": m.get("spent_before")} for m in lineages])
    own = [{key: float((m.get("spent") or {}).get(key) or 0.0) - float((m.get("spent_before") or {}).get(key) or 0.0)
            for key in SPENT_KEYS} for m in lineages]
    return before, add_spending(before, *own)
