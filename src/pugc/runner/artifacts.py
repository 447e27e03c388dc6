"""The KFP artifact boundary: the one module that touches KFP's artifact objects (`.path`, `.uri`, `.metadata`,
`.log_metric`), duck-typed so nothing here imports kfp. Lineage goes on as flat metadata (`pugc.lineage`),
the form the KFP backend hands back unchanged."""
from __future__ import annotations

from pugc.lineage import decode, encode

LINEAGE_EXTRAS = ("input_fingerprint", "input_lines", "quarantined", "training", "shard_index", "shard_count", "shards",
                  "join_index_bytes", "licenses", "input_unit", "tokens_in", "tokens_out", "task_seconds", "spent_before",
                  "spent")


def publish(report: dict, outputs: list, metrics=None, recipe_digest: str = "") -> None:
    """Lineage (row counts, drop reasons, recipe digest, model, version) on each output artifact; the counts
    and stage figures as Metrics."""
    counts = report["counts"]
    lineage = {
        "stage": report["stage"], "rows_in": counts["in"], "rows_out": counts["out"], "dropped": counts["dropped"],
        "metrics": report["metrics"], "seconds": report["seconds"], "model": report.get("model") or "",
        "model_revision": report.get("model_revision"),
        "recipe_digest": recipe_digest, "pugc_version": report["pugc_version"],
    }
    lineage.update({key: report[key] for key in LINEAGE_EXTRAS if key in report})
    for artifact in outputs:
        artifact.metadata.update(encode(lineage))
    if metrics is not None:
        metrics.log_metric("records_in", counts["in"])
        metrics.log_metric("records_out", counts["out"])
        for reason, count in counts["dropped"].items():
            metrics.log_metric(f"dropped_{reason}", count)
        for name, value in report["metrics"].items():
            metrics.log_metric(name, round(float(value), 6))
        metrics.log_metric("seconds", report["seconds"])
        # the task's share of the run's bill (pugc.cost): GPU-hours need the task's accelerators, which the
        # run summary takes from the recipe; here what the task itself measured
        metrics.log_metric("task_seconds", report.get("task_seconds", report["seconds"]))
        metrics.log_metric("tokens_in", report.get("tokens_in", 0))
        metrics.log_metric("tokens_out", report.get("tokens_out", 0))
        if "accelerators" in report:  # a shard's task: what the recipe gives it (a local runner ignores it)
            metrics.log_metric("gpu_hours", round(report["seconds"] * report["accelerators"] / 3600, 6))


def read_lineage(artifact) -> dict:
    """A task's lineage (see `publish`) from a KFP artifact's metadata."""
    return decode(artifact.metadata)


def upstream_spent(*artifacts) -> dict:
    """What the run spent before a task (pugc.cost.upstream_spending) from its input artifacts' lineage; absent
    inputs (an optional one) are skipped."""
    from pugc.cost import upstream_spending

    return upstream_spending([read_lineage(a) for a in artifacts if a is not None])


def path_and_lineage(artifact) -> tuple[str, dict]:
    return artifact.path, read_lineage(artifact)
