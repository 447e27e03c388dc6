"""A stage over its shard in engine batches, each checkpointed as it completes.

Engine calls are sized apart from the wish to save progress often: the first batch is `checkpoint_every`
records, and each later one grows (at most doubling) toward `checkpoint_seconds` of work, up to
`engine_batch` records. A GPU engine thus sees a few large batches (vLLM drains to its longest sample once
per call, not once per 512 prompts), while a preemption loses at most about `checkpoint_seconds`. Each chunk's
checkpoint records the input range it covers, so a resumed try continues after the last finished chunk
whatever sizes the earlier try chose. Outputs are appended as chunks finish: memory holds one chunk.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from pugc.checkpoint import ChunkCheckpoints
from pugc.io import JsonlWriter
from pugc.records import StageResult
from pugc.runner.sharding import group_chunks
from pugc.runner.tally import Tally, check_accounting

log = logging.getLogger(__name__)
CPU_CHUNK = 2048  # records per call of a CPU stage: bounds its memory
ENGINE_BATCH = 16384  # the most records one engine call gets, unless the recipe's runtime says otherwise
CHECKPOINT_SECONDS = 600  # about how much work a preemption may lose


class BatchPacer:
    """Sizes of successive batches: `first`, then grown toward `target_seconds` per batch (at most doubling
    each time, never above `most`). Without a target the size stays `first`."""

    def __init__(self, first: int, most: int, target_seconds: float | None = None):
        self.size, self.most, self.target = max(1, first), max(1, most), target_seconds

    def sizes(self) -> Iterator[int]:
        while True:
            yield self.size

    def finished(self, records: int, seconds: float) -> None:
        if not self.target or records < self.size:
            return
        rate = records / max(seconds, 1e-3)
        self.size = int(min(self.most, 2 * self.size, max(self.size, rate * self.target)))


@dataclass
class Outputs:
    """Where a stage's chunks go: kept records, drops, and its side artifact's rows (if it has one)."""

    kept: JsonlWriter
    dropped: JsonlWriter
    side: JsonlWriter | None = None

    def append(self, result: StageResult) -> None:
        self.kept.write_all(result.kept)
        self.dropped.write_all(result.dropped)
        if self.side is not None:
            self.side.write_all(result.side)


@dataclass
class Progress:
    chunks_resumed: int = 0
    records_resumed: int = 0


def resume(checkpoints: ChunkCheckpoints, outputs: Outputs, tally: Tally) -> Progress:
    """Copy the finished chunks of an earlier try into the outputs, in order; returns how far they reached."""
    progress = Progress()
    for chunk in checkpoints.finished():
        outputs.kept.copy_from(chunk["folder"] / "kept.jsonl")
        outputs.dropped.copy_from(chunk["folder"] / "dropped.jsonl")
        if outputs.side is not None and (chunk["folder"] / "side.jsonl").is_file():
            outputs.side.copy_from(chunk["folder"] / "side.jsonl")
        tally.add(chunk["n_in"], chunk["n_out"], chunk["dropped"], chunk["metrics"])
        progress.chunks_resumed += 1
        progress.records_resumed = chunk["end"]
    return progress


def run_in_chunks(run: Callable[[list], StageResult], records: Iterable, group_key: str | None,
                  accounting_key: str | None, pacer: BatchPacer, outputs: Outputs, tally: Tally, checkpoints: ChunkCheckpoints | None = None, progress: Progress | None = None) -> None:
    """`run` over consecutive group-whole chunks of `records`; each result is checked, checkpointed, appended."""
    key = (lambda record: getattr(record, group_key)) if group_key else None
    progress = progress or Progress()
    index, position = progress.chunks_resumed, progress.records_resumed
    for chunk in group_chunks(records, key, pacer.sizes()):
        started = time.monotonic()
        result = run(chunk)
        pacer.finished(len(chunk), time.monotonic() - started)
        check_accounting(result, accounting_key)
        if checkpoints:
            checkpoints.save(index, result, position, position + len(chunk))
            log.info("%s: chunk %d saved (records %d-%d)", result.stage, index + 1, position + 1, position + len(chunk))
        outputs.append(result)
        tally.add_result(result)
        index, position = index + 1, position + len(chunk)
        del chunk, result  # the next chunk is read before the loop rebinds them: hold one chunk, not two
