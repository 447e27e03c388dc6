"""Adapters: how each benchmarked task is called on files. The one place that knows the project's entry
points and record formats; when those change, retarget these functions (each a few lines).

A task is `prepare(size, folder) -> inputs` (in the parent, not measured; the synthetic data and files in
the format the entry point reads) and `run(inputs, folder) -> {"records": n, ...}` (in a child process of
its own, measured). Tasks run in TASKS order and may read what earlier tasks wrote into `folder` (run_summary
reads every task's report).
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import synthetic

SHARDS = 2
CHECKPOINT_EVERY = 5000
FORMAT = "records-v2"  # the stream files' format: records by id, documents and questions in their tables


# ---------------------------------------------------------------- ingest (with near-duplicate detection)

def prepare_ingest(size: int, folder: Path) -> dict:
    return {"input": str(synthetic.cached_ugc(size))}


def run_ingest(inputs: dict, folder: Path) -> dict:
    from pugc.stage_runner import run_ingest as ingest

    report = ingest(inputs["input"], {}, str(folder / "ugc.jsonl"), str(folder / "quarantine.jsonl"),
                    str(folder / "ingest_dropped.jsonl"))
    _save_report(folder, "ingest", report)
    return {"records": report["input_lines"], "unit": "docs", "kept": report["counts"]["out"],
            "dropped": report["counts"]["dropped"], "quarantined": report["quarantined"]}


# ---------------------------------------------------------------- the near-duplicate index alone

def prepare_near_duplicate_index(size: int, folder: Path) -> dict:
    return prepare_ingest(size, folder)


def run_near_duplicate_index(inputs: dict, folder: Path) -> dict:
    """Texts streamed from the file into the index (nothing else kept): signature rate on one core, and the
    index's memory as the growth of resident memory per document."""
    index = _near_duplicate_index(0.8)
    before = _current_rss_bytes()
    documents = matched = 0
    with open(inputs["input"], encoding="utf-8") as lines:
        for line in lines:
            try:
                row = json.loads(line)
                text = row["text"].strip()
            except (ValueError, TypeError, KeyError, AttributeError):
                continue
            if not text:
                continue
            documents += 1
            matched += index.match(row["id"], text) is not None
    grown = _current_rss_bytes() - before
    return {"records": documents, "unit": "docs", "near_duplicates": matched,
            "index_bytes_per_doc": round(grown / max(1, documents - matched))}


def _near_duplicate_index(threshold: float):
    from pugc.stages import ingest

    if hasattr(ingest, "NearDuplicates"):  # the code before near-duplicates had a module of their own
        return ingest.NearDuplicates(threshold)
    from pugc.near_duplicates import NearDuplicateIndex

    return NearDuplicateIndex(threshold)


def _current_rss_bytes() -> int:
    import os

    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- the response/score stream (K x N per question)

def _stream_files(size: int) -> dict:
    """Responses (the judge's input) and the scored responses in SHARDS shard files, cached by size/format."""
    from pugc.records import Document, Instruction, Response, ScoredResponse, to_row

    folder = synthetic.CACHE / f"stream-{FORMAT}-v{synthetic.VERSION}-{size}"
    files = {"responses": str(folder / "responses.jsonl"),
             "scored": [str(folder / f"scored-{i}.jsonl") for i in range(SHARDS)],
             "tables": {"documents": str(folder / "documents.jsonl"), "instructions": str(folder / "instructions.jsonl")}}
    if (folder / "done").exists():
        return {**files, "counts": json.loads((folder / "done").read_text())}
    folder.mkdir(parents=True, exist_ok=True)
    counts = [0] * SHARDS
    outputs = [open(path, "w", encoding="utf-8") for path in [files["responses"], *files["scored"]]]
    tables = {name: open(path, "w", encoding="utf-8") for name, path in files["tables"].items()}
    line = lambda record: json.dumps(to_row(record), ensure_ascii=False, sort_keys=True) + "\n"  # noqa: E731
    for number, question in enumerate(synthetic.questions(size)):
        shard = number * SHARDS // size
        tables["documents"].write(line(Document(question["doc_id"], question["document"])))
        tables["instructions"].write(line(Instruction(question["id"], question["doc_id"], question["instruction"])))
        for k, answer in enumerate(question["responses"]):
            response = Response(f"{question['id']}-{k}", question["id"], question["doc_id"], answer["text"], k,
                                num_tokens=100)
            outputs[0].write(line(response))
            votes = [None if v is None else float(v) for v in answer["verdicts"]]
            parsed = [v for v in votes if v is not None]
            outputs[1 + shard].write(line(ScoredResponse(
                **vars(response), score=round(sum(parsed) / len(parsed), 4) if parsed else None,
                judge_scores=votes)))
            counts[shard] += 1
    for output in [*outputs, *tables.values()]:
        output.close()
    (folder / "done").write_text(json.dumps(counts))
    return {**files, "counts": counts}


def prepare_judge_stage(size: int, folder: Path) -> dict:
    return _stream_files(size)


def run_judge_stage(inputs: dict, folder: Path) -> dict:
    """reward_scoring, sampled N=8, through the stage runner: shard 1 of SHARDS, checkpointed in chunks."""
    import instant_engine

    from pugc.stage_runner import run_stage

    instant_engine.install()
    report = run_stage("reward_scoring", inputs["responses"], str(folder / "scored-shard0.jsonl"),
                       str(folder / "scoring_dropped.jsonl"), {"mode": "sampled", "n": synthetic.N_JUDGE_SAMPLES},
                       engines={"judge": {"model": "bench/instant"}}, shard_index=0, shard_count=SHARDS,
                       runtime={"checkpoint_root": str(folder / "checkpoints"), "checkpoint_every": CHECKPOINT_EVERY},
                       scope="bench/reward_scoring", tables=inputs["tables"])
    return {"records": report["counts"]["in"], "unit": "responses", "kept": report["counts"]["out"]}


def prepare_merge_shards(size: int, folder: Path) -> dict:
    return _stream_files(size)


def run_merge_shards(inputs: dict, folder: Path) -> dict:
    from pugc.stage_runner import merge_shards

    parts, dropped = [], []
    for index, (path, count) in enumerate(zip(inputs["scored"], inputs["counts"])):
        lineage = {"stage": "reward_scoring", "rows_in": count, "rows_out": count, "dropped": {}, "metrics": {"score_mean": 3.0},
                   "seconds": 1.0, "model": "bench/instant", "shard_index": index, "shard_count": len(inputs["scored"])}
        empty = folder / f"shard{index}_dropped.jsonl"
        empty.write_text("")
        parts.append(_artifact(path, lineage))
        dropped.append(_artifact(str(empty), lineage))
    report = merge_shards(parts, dropped, str(folder / "scored.jsonl"), str(folder / "scored_dropped.jsonl"))
    _save_report(folder, "reward_scoring", report)
    return {"records": sum(1 for _ in open(folder / "scored.jsonl", encoding="utf-8")), "unit": "responses"}


def prepare_preference_pairs(size: int, folder: Path) -> dict:
    return {"scored": str(folder / "scored.jsonl"), "tables": {"instructions": _stream_files(size)["tables"]["instructions"]}}


def run_preference_pairs(inputs: dict, folder: Path) -> dict:
    from pugc.stage_runner import run_stage

    report = run_stage("preference_pairs", inputs["scored"], str(folder / "pairs.jsonl"),
                       str(folder / "pairs_dropped.jsonl"), {}, tables=inputs["tables"])
    _save_report(folder, "preference_pairs", report)
    return {"records": int(report["metrics"]["responses"]), "unit": "responses", "pairs": report["counts"]["out"]}


def prepare_run_summary(size: int, folder: Path) -> dict:
    return {}


def run_run_summary(inputs: dict, folder: Path) -> dict:
    """The run summary over the reports and dropped files the tasks above wrote."""
    from pugc.summary import write_run_summary

    quarantine = _published(folder, "ingest", folder / "quarantine.jsonl")
    stages = [_published(folder, "ingest", folder / "ingest_dropped.jsonl"),
              _published(folder, "reward_scoring", folder / "scored_dropped.jsonl"),
              _published(folder, "preference_pairs", folder / "pairs_dropped.jsonl")]
    summary = write_run_summary(stages, quarantine, "bench", str(folder / "summary.json"),
                                str(folder / "rejected.jsonl"), str(folder / "report.md"))
    rejected = sum(1 for _ in open(folder / "rejected.jsonl", encoding="utf-8"))
    return {"records": rejected, "unit": "rejected records", "input_lines": summary["input_lines"]}


# ---------------------------------------------------------------- plumbing shared by the adapters

def _artifact(path: str, lineage: dict) -> SimpleNamespace:
    """What a KFP artifact is to the project's code: a path and metadata."""
    from pugc.lineage import encode

    return SimpleNamespace(path=path, uri=path, metadata=encode(lineage))


def _save_report(folder: Path, name: str, report: dict) -> None:
    (folder / f"report-{name}.json").write_text(json.dumps(report))


def _published(folder: Path, name: str, path: Path) -> SimpleNamespace:
    from pugc.stage_runner import publish

    artifact = SimpleNamespace(path=str(path), uri=str(path), metadata={})
    publish(json.loads((folder / f"report-{name}.json").read_text()), [artifact], recipe_digest="bench")
    return artifact


# imported before the clock starts (those absent from the code measured are skipped)
PRELOAD = ("numpy", "pugc.stage_runner", "pugc.stages", "pugc.stages.ingest", "pugc.near_duplicates",
           "pugc.summary", "pugc.reports", "instant_engine")
TASKS = ("near_duplicate_index", "ingest", "judge_stage", "merge_shards", "preference_pairs", "run_summary")
