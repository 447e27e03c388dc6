"""cluster.budget inside the tasks: the check before a stage's model loads, and each task's spending on its
lineage (pugc.cost). The plan (`pugc.cost.budget_plan`) arrives in the task's `runtime`; none, no check."""
from __future__ import annotations

import logging

from pugc.cost import add_spending, check_budget, own_spending

log = logging.getLogger(__name__)


def count_rows(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def check_stage_budget(runtime: dict | None, stage: str, input_path: str, spent_before: dict) -> None:
    """Raise BudgetExceededError before `stage` runs when what was spent upstream plus the stage's estimate for its
    whole input passes a limit. The whole input, also in a shard's task: the shards of a stage run side by side
    on the same upstream spending, so each checking only its share would let N shards each fit while the stage
    does not; on the whole stage every shard reaches the same verdict, and the stage runs whole or not at all."""
    plan = (runtime or {}).get("budget")
    if plan:
        records = count_rows(input_path)
        check_budget(plan, stage, records, spent_before)
        log.info("%s: budget: spent %s so far; estimate for %d input records fits", stage,
                 ", ".join(f"{key} {value:.4g}" for key, value in spent_before.items()), records)


def with_spending(report: dict, runtime: dict | None, stage: str, spent_before: dict) -> dict:
    """The report with `spent_before` and `spent` (upstream plus this task's own tokens, GPU-hours, cost)."""
    own = own_spending((runtime or {}).get("budget"), stage, float(report.get("task_seconds", report["seconds"])),
                       int(report.get("tokens_in") or 0), int(report.get("tokens_out") or 0))
    report["spent_before"], report["spent"] = add_spending(spent_before), add_spending(spent_before, own)
    return report
