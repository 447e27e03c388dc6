"""Cost accounting and estimates (pugc.cost): hand-checkable arithmetic, the summary's block, budgets, the CLI."""
import pytest

from pugc.config import recipe_from_dict
from pugc.cost import (BUDGETED_STAGES, BudgetExceededError, account, budget_plan, budget_stop, estimate,
                       estimate_stage, own_spending, plan_estimate)
from pugc.io import write_jsonl
from pugc.runner.stage import run_stage

SMALL = {
    "name": "small",
    "engines": {"judge": {"model": "pugc-tiny/judge", "backend": "openai"}},
    "ugc_filter": {"threshold": 4, "mode": "sampled", "n": 2, "max_tokens": 5, "max_document_tokens": 100},
    "instruction_gen": {"max_tokens": 10, "max_document_tokens": 100},
    "relevance_filter": {"mode": "expected", "max_document_tokens": 100},
    "response_sampling": {"k": 3, "max_tokens": 20},
    "reward_scoring": {"mode": "sampled", "n": 4, "max_tokens": 7, "max_document_tokens": 100},
    "dpo_training": {"num_train_epochs": 2, "max_length": 50},
    "evaluation": {"held_out_fraction": 0.2, "max_tokens": 6, "judge": {"mode": "sampled", "n": 1, "max_tokens": 3}},
    "cluster": {
        "resources": {"ugc_filter": {"accelerator_count": 2}, "response_sampling": {"accelerator_count": 1},
                      "dpo_training": {"accelerator_count": 4}},
        "gpu": {"node_selector": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}},
        "throughput": {"default": 100, "dpo_training": 1000},
        "estimate": {"document_tokens": 40, "keep": {"ugc_filter": 0.5, "relevance_filter": 0.5}},
        "prices": {"accelerator_hour": {"nvidia-h100-80gb": 3.6},
                   "tokens": {"pugc-tiny/judge": {"input_per_million": 1.0, "output_per_million": 2.0}}},
    },
}


def by_stage(recipe, documents):
    return {c.stage: c for c in estimate(recipe, documents)}


def test_estimate_follows_the_dag_with_hand_checked_figures():
    costs = by_stage(recipe_from_dict(SMALL), 100)
    f = costs["ugc_filter"]  # 100 documents x 40 tokens in; 2 samples x 5 tokens out
    assert (f.requests, f.tokens_in, f.tokens_out) == (100, 4000, 1000)
    assert f.task_seconds == pytest.approx(10.0)  # 1000 tokens / 100 tokens/s
    assert f.gpu_hours == pytest.approx(10 * 2 / 3600) and f.accelerator_type == "nvidia-h100-80gb"
    assert f.cost == pytest.approx(10 * 2 / 3600 * 3.6)
    assert "safety_screen" not in costs  # off in this recipe
    g = costs["instruction_gen"]  # 50 kept
    assert (g.requests, g.tokens_in, g.tokens_out) == (50, 2000, 500)
    r = costs["relevance_filter"]  # document + question (at most instruction_gen.max_tokens); expected: 1 token
    assert (r.requests, r.tokens_in, r.tokens_out) == (50, 50 * 50, 50)
    s = costs["response_sampling"]  # 25 relevant, 5 held out, 20 sampled x k 3 x 20 tokens
    assert (s.requests, s.tokens_in, s.tokens_out) == (20, 200, 1200)
    assert s.gpu_hours == pytest.approx(12 / 3600)
    j = costs["reward_scoring"]  # 60 responses x (40 + 10 + 20) in, x 4 x 7 out; served: priced per token
    assert (j.requests, j.tokens_in, j.tokens_out) == (60, 4200, 1680)
    assert j.gpu_hours == 0 and j.cost == pytest.approx((4200 * 1 + 1680 * 2) / 1e6)
    t = costs["dpo_training"]  # 20 pairs x 2 epochs x 50 tokens / 1000 per s x 4 GPUs
    assert t.task_seconds == pytest.approx(2.0) and t.gpu_hours == pytest.approx(8 / 3600)
    e = costs["evaluate"]  # 5 held out: two answers of 6 and one judgement of 3
    assert (e.requests, e.tokens_out) == (5, 5 * (2 * 6 + 3))


def test_budget_stop_names_spent_estimate_and_budget():
    recipe = recipe_from_dict({**SMALL, "cluster": {**SMALL["cluster"], "budget": {"tokens": 5000}}})
    first = by_stage(recipe, 100)["ugc_filter"]  # 4,000 tokens in + 1,000 out
    assert budget_stop(recipe, {"tokens": 0}, first) is None  # exactly the budget still fits
    assert budget_stop(recipe, {"tokens": 1}, first) == (
        "budget: stopped before ugc_filter: spent 1 tokens, its estimate 5,000 tokens, budget "
        "cluster.budget.tokens 5,000 tokens")
    assert budget_stop(recipe_from_dict(SMALL), {"tokens": 10 ** 9}, first) is None  # no budget, no stop


def test_account_counts_shard_seconds_and_says_a_local_run_held_no_accelerator():
    recipe = recipe_from_dict(SMALL)
    stages = {"ingest_ugc": {"in": 10, "seconds": 1.0},
              "ugc_filter": {"in": 10, "seconds": 30.0, "task_seconds": 360.0, "tokens_in": 400, "tokens_out": 36},
              "reward_scoring": {"in": 9, "seconds": 2.0, "tokens_in": 1000, "tokens_out": 500}}
    cluster = account(recipe, stages, pairs=4, local=False)
    assert "ingest_ugc" not in cluster["stages"]
    entry = cluster["stages"]["ugc_filter"]
    assert entry["gpu_hours"] == pytest.approx(360 * 2 / 3600) and entry["throughput"] == 0.1
    assert cluster["total"]["tokens_in"] == 1400 and cluster["total"]["tokens_out"] == 536
    judge_cost = (1000 + 500 * 2) / 1e6
    assert cluster["total"]["cost"] == pytest.approx(0.2 * 3.6 + judge_cost, abs=1e-4)
    assert cluster["total"]["per_preference_pair"]["gpu_hours"] == pytest.approx(0.2 / 4)

    local = account(recipe, stages, pairs=4, local=True)
    assert local["where"] == "local" and local["total"]["gpu_hours"] == 0
    assert local["stages"]["ugc_filter"]["would_be_gpu_hours"] == pytest.approx(0.2)
    assert local["total"]["cost"] == pytest.approx(judge_cost, abs=1e-4)  # the served judge's tokens still cost


def test_price_missing_for_an_accelerator_type_names_the_key():
    data = {**SMALL, "cluster": {**SMALL["cluster"], "prices": {"accelerator_hour": {"nvidia-l4": 1.0}}}}
    with pytest.raises(ValueError, match="cluster.prices.accelerator_hour has no price for 'nvidia-h100-80gb'"):
        estimate(recipe_from_dict(data), 10)


def test_paper_dry_run_prints_an_estimate_per_stage_for_100k_documents(monkeypatch, tmp_path, capsys):
    import pugc.checks
    from pugc.cli import main

    monkeypatch.setattr(pugc.checks, "check_models", lambda engines, evaluation=None: {})  # no hub here
    ugc = tmp_path / "ugc.jsonl"
    ugc.write_text('{"text": "How to fix a bike chain: oil it."}\n' * 3)
    assert main(["run", "--recipe", "paper", "--input", str(ugc), "--dry-run", "--estimate-documents", "100000",
                 "--output", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "# estimate for 100,000 documents (recipe paper):" in out
    for stage in ("ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "response_sampling",
                  "reward_scoring", "dpo_training", "evaluate"):
        assert any(line.startswith(f"#   {stage} ") for line in out.splitlines()), stage
    assert any(line.split()[1:3] == ["reward_scoring", "475,000"] for line in out.splitlines())  # 95,000 x K 5
    assert "set cluster.throughput for your models" in out  # the default figures say what they are

    assert main(["run", "--recipe", "paper", "--input", str(ugc), "--dry-run",
                 "--output", str(tmp_path / "runs")]) == 0
    assert "# estimate for 3 documents" in capsys.readouterr().out  # the input's own lines by default


def with_budget(**limits):
    return recipe_from_dict({**SMALL, "cluster": {**SMALL["cluster"], "budget": limits}})


def test_a_tasks_plan_estimates_a_stage_as_the_recipe_does():
    """Every estimate is linear in a stage's input records, so a task can estimate from a per-record plan."""
    recipe = with_budget(tokens=10 ** 6, cost=100.0)
    plan = budget_plan(recipe)
    for stage in BUDGETED_STAGES:
        mine, recipes = plan_estimate(plan, stage, 37), estimate_stage(recipe, stage, 37)
        assert (mine.tokens_in, mine.tokens_out) == (recipes.tokens_in, recipes.tokens_out), stage
        assert mine.gpu_hours == pytest.approx(recipes.gpu_hours), stage
        assert (mine.cost or 0.0) == pytest.approx(recipes.cost or 0.0), stage
    assert budget_plan(recipe_from_dict(SMALL)) == {}  # no limit, nothing for the tasks to carry
    local = budget_plan(recipe, local=True)["stages"]["ugc_filter"]
    assert local["gpu_hours"] == 0.0 and local["accelerators"] == 0 and "cost" not in local


def write_documents(path, n):
    write_jsonl(path, [{"id": f"d{i}", "text": f"Document {i}."} for i in range(n)])


def test_a_stage_over_budget_stops_before_its_model_loads(tmp_path):
    runtime = {"budget": budget_plan(with_budget(tokens=5000))}
    write_documents(tmp_path / "ugc.jsonl", 3)  # ugc_filter: 3 x (40 in + 2 x 5 out) = 150 tokens
    engines = {"generator": {"model": "pugc-test/absent-model"}}  # loading it would fail otherwise
    section = SMALL["ugc_filter"]
    with pytest.raises(BudgetExceededError) as stopped:
        run_stage("ugc_filter", str(tmp_path / "ugc.jsonl"), str(tmp_path / "out"), str(tmp_path / "dropped"),
                  section, engines, shard_index=1, shard_count=2, runtime=runtime,
                  spent_before={"gpu_hours": 0.0, "tokens": 4900.0, "cost": 0.0})
    # the whole stage's estimate, also in a shard's task
    assert str(stopped.value) == ("budget: stopped before ugc_filter: spent 4,900 tokens, its estimate 150 tokens, "
                                  "budget cluster.budget.tokens 5,000 tokens")
    assert not (tmp_path / "out").exists()


def test_a_disabled_filter_is_not_checked_and_passes_the_spending_on(tmp_path):
    runtime = {"budget": budget_plan(with_budget(tokens=10))}
    write_documents(tmp_path / "ugc.jsonl", 3)
    report = run_stage("ugc_filter", str(tmp_path / "ugc.jsonl"), str(tmp_path / "out"), str(tmp_path / "dropped"),
                       {**SMALL["ugc_filter"], "threshold": None}, {}, runtime=runtime,
                       spent_before={"gpu_hours": 0.5, "tokens": 9.0, "cost": 1.0})
    assert report["counts"]["out"] == 3
    assert report["spent_before"] == {"gpu_hours": 0.5, "tokens": 9.0, "cost": 1.0}
    # no tokens; its task still held its 2 accelerators for its (few) seconds
    assert report["spent"] == {"gpu_hours": pytest.approx(0.5, abs=1e-3), "tokens": 9.0,
                               "cost": pytest.approx(1.0, abs=1e-2)}


def test_a_tasks_own_spending_is_its_tokens_and_its_accelerators_time_priced():
    plan = budget_plan(with_budget(cost=1000.0))
    own = own_spending(plan, "ugc_filter", seconds=1800, tokens_in=400, tokens_out=100)
    assert own == {"gpu_hours": pytest.approx(1.0), "tokens": 500, "cost": pytest.approx(3.6)}  # 2 GPUs, half an hour
    judged = own_spending(plan, "reward_scoring", seconds=60, tokens_in=10 ** 6, tokens_out=10 ** 6)
    assert judged == {"gpu_hours": 0.0, "tokens": 2 * 10 ** 6, "cost": pytest.approx(3.0)}  # the judge's API prices
    local = own_spending(budget_plan(with_budget(cost=1000.0), local=True), "ugc_filter", 1800, 400, 100)
    assert local["gpu_hours"] == 0.0 and local["cost"] == 0.0
