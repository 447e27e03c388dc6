"""A stage's shard outputs joined in shard order by streaming copy; counts summed, figures combined."""
from __future__ import annotations

import logging
import shutil

from pugc import __version__
from pugc.cost import merged_spending
from pugc.io import JsonlWriter, iter_records
from pugc.runner.tally import Tally, format_dropped

log = logging.getLogger(__name__)


def merge_shards(parts: list[tuple[str, dict]], dropped_parts: list[tuple[str, dict]], merged_path: str,
                 dropped_path: str) -> dict:
    """`parts`/`dropped_parts`: (path, lineage) of each shard's outputs, in any order. Figures combine by the
    stage's declared rules; the recomputed ones are computed again over the merged records."""
    from pugc.stages import spec_for

    by_shard = lambda part: int(part[1]["shard_index"])  # noqa: E731
    parts, dropped_parts = sorted(parts, key=by_shard), sorted(dropped_parts, key=by_shard)
    concatenate([path for path, _ in parts], merged_path)
    concatenate([path for path, _ in dropped_parts], dropped_path)
    lineages = [lineage for _, lineage in parts]
    spec = spec_for(lineages[0]["stage"])
    tally = Tally(spec.metrics)
    for lineage in lineages:
        tally.add(lineage["rows_in"], lineage["rows_out"], lineage["dropped"], lineage["metrics"])
    report = {
        "stage": spec.name, "counts": tally.counts,
        "metrics": tally.final_metrics(lambda: iter_records(merged_path, spec.output_type)),
        "model": next((m["model"] for m in lineages if m.get("model")), None),
        "model_revision": next((m["model_revision"] for m in lineages if m.get("model_revision")), None),
        "seconds": round(max(float(m["seconds"]) for m in lineages), 3), "pugc_version": __version__,
        "shards": len(parts),
        # what the shards held their accelerators for, together, and their engines' tokens (pugc.cost)
        "task_seconds": round(sum(float(m.get("task_seconds", m["seconds"])) for m in lineages), 3),
        "tokens_in": sum(int(m.get("tokens_in", 0)) for m in lineages),
        "tokens_out": sum(int(m.get("tokens_out", 0)) for m in lineages),
    }
    if any("spent" in m for m in lineages):  # the shards' shared upstream once, plus what each spent
        report["spent_before"], report["spent"] = merged_spending(lineages)
    log.info("%s: merged %d shards: in %d, out %d, dropped %s", report["stage"], len(parts), tally.n_in,
             tally.n_out, format_dropped(report["counts"]["dropped"]))
    return report


def concatenate(paths: list[str], target: str) -> None:
    """Files appended byte for byte, a block at a time, into a file that appears whole or not at all."""
    with JsonlWriter(target) as writer:
        writer.handle.flush()
        for path in paths:
            with open(path, encoding="utf-8") as source:
                shutil.copyfileobj(source, writer.handle, 1 << 20)
