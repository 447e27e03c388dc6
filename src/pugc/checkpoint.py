"""Partial progress that survives a killed task: finished chunks of a stage, saved on a durable path.

A task retried after preemption finds the chunks its earlier try finished and computes only the rest, so
nothing is done twice, nothing is lost, and the output is the same as an uninterrupted run's. Folders are
per run and per task (`checkpoint_folder`, scoped by `task_scope`): two runs of the same recipe on the same
input (a schedule and a push-triggered run) never share, and one run's clean-up never deletes another's
progress. Inside, the key
covers the stage, its input's content, its config and its shard, so changed inputs never reuse stale chunks.

On a cluster the root is a shared volume (the model-cache PVC) or a GCS FUSE path (/gcs/... on Vertex).
gcsfuse renames a folder only object by object (and not at all without --rename-dir-limit), so a chunk is
written in place and made whole by its marker, `result.json`, written last; a file rename is all it needs.

`PUGC_FAIL_AFTER_CHUNKS=N` makes a task exit abruptly after saving N chunks, counted over every stage the
process runs (a task of several passes, such as evaluate, can be killed in any of them: fault-injection tests).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from pugc.io import write_json, write_jsonl
from pugc.records import StageResult

log = logging.getLogger(__name__)
FAULT_ENV = "PUGC_FAIL_AFTER_CHUNKS"
FAULT_EXIT_CODE = 75


def checkpoint_key(*parts: object, files: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for path in files:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:20]


def task_scope(output_uri: str) -> str:
    """Which run and task a task's checkpoints belong to, read from what the backend hands the task at run time:
    the URI of one of its outputs. On Kubeflow Pipelines that is `<root>/<pipeline>/<run id>/<task>/<uuid>/<output>`
    (backend/src/v2/component/launcher_v2.go, the output URIs of the executor input; the driver draws the uuid
    once and every retry of the task runs with the same executor input, so a retry finds its checkpoints), and
    the scope is the four parts before the output's name. Nothing run-specific becomes an input parameter, so
    the cache key (every input parameter's value) is the same for every run of the same inputs."""
    parts = [part for part in output_uri.rstrip("/").split("/") if part]
    return "/".join(_safe_name(part) for part in parts[-5:-1])


def checkpoint_folder(root: str | os.PathLike, scope: str, key: str) -> Path:
    """<root>/<scope>/<key>: per run and task (`task_scope`). Without a scope (`pugc stage`, tests) progress is
    keyed by content alone."""
    return Path(root).joinpath(*(scope or "no-run").split("/"), key)


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "_"


_saved_in_process = 0


def _fault_injection() -> None:
    global _saved_in_process
    _saved_in_process += 1
    limit = os.environ.get(FAULT_ENV)
    if limit and _saved_in_process >= int(limit):
        log.warning("fault injection: exiting after %d saved chunks", _saved_in_process)
        os._exit(FAULT_EXIT_CODE)


class ChunkCheckpoints:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _chunk(self, index: int) -> Path:
        return self.folder / f"chunk-{index:06d}"

    def done(self) -> set[int]:
        return {int(p.name.split("-")[1]) for p in self.folder.glob("chunk-*") if (p / "result.json").is_file()}

    def save(self, index: int, result: StageResult, start: int = 0, end: int | None = None) -> None:
        """The records first, the marker last (each file written atomically): a chunk is whole or not done.
        The marker holds the input range the chunk covers, so resuming needs no fixed chunk size."""
        chunk = self._chunk(index)
        chunk.mkdir(exist_ok=True)
        (chunk / "result.json").unlink(missing_ok=True)
        write_jsonl(chunk / "kept.jsonl", result.kept)
        write_jsonl(chunk / "dropped.jsonl", result.dropped)
        write_jsonl(chunk / "side.jsonl", result.side)
        write_json(chunk / "result.json", {
            "start": start, "end": start + result.n_in if end is None else end, "n_in": result.n_in,
            "n_out": len(result.kept), "dropped": result.counts["dropped"], "metrics": result.metrics})
        _fault_injection()

    def finished(self) -> list[dict]:
        """The done chunks that follow on from the start without a gap, in order, each with its `folder`."""
        chunks, reached = [], 0
        for index in sorted(self.done()):
            meta = json.loads((self._chunk(index) / "result.json").read_text())
            if index != len(chunks) or meta.get("start", reached) != reached:
                break
            reached = meta.get("end", reached + meta["n_in"])
            chunks.append({**meta, "end": reached, "folder": self._chunk(index)})
        return chunks

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
