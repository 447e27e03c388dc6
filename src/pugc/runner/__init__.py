"""The runner behind every task, one job per module (none imports kfp; none names a stage):

- `sharding`: which input rows a shard owns (counted first, then streamed), and group-whole chunks.
- `chunks`: a stage over its shard in engine batches, each checkpointed when it completes (`pugc.checkpoint`).
- `tally`: accounting checks, counts and stage figures summed or averaged over chunks and shards.
- `merge`: a stage's shard outputs concatenated by streaming copy.
- `artifacts`: the KFP artifact boundary (paths, URIs, flat lineage metadata, Metrics).
- `ingest`, `training`: the two tasks that are not record-to-record stages.

`pugc.stage_runner` keeps the thin entry points the components and the CLI call.
"""
