"""The entry points KFP components and `pugc stage` call; each hands over to its module in `pugc.runner`.

Nothing here or there imports kfp: artifacts are read and written only in `pugc.runner.artifacts`.
"""
from __future__ import annotations

from pugc.logs import setup_logging
from pugc.runner.artifacts import path_and_lineage, publish, read_lineage, upstream_spent  # noqa: F401  (components import these)
from pugc.runner.ingest import run_ingest  # noqa: F401
from pugc.runner.stage import run_stage  # noqa: F401
from pugc.runner.training import run_training, write_training_report  # noqa: F401


def merge_shards(parts: list, dropped_parts: list, merged_path: str, dropped_path: str) -> dict:
    """Concatenate a stage's shard outputs (KFP artifacts carrying each shard's lineage) in shard order."""
    from pugc.runner import merge

    setup_logging()
    return merge.merge_shards([path_and_lineage(p) for p in parts], [path_and_lineage(p) for p in dropped_parts],
                              merged_path, dropped_path)
