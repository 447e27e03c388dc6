"""CPU tasks stream: their peak memory follows the chunk, not the input (tracemalloc peaks at 2k vs 20k records)."""
import tracemalloc

import pytest

from pugc.io import write_jsonl
from pugc.lineage import encode
from pugc.records import Dropped, ScoredResponse
from pugc.stage_runner import merge_shards, run_stage
from pugc.summary import rejected_rows

K = 4
FILLER = "word " * 400  # ~2 KB of response text per record, so a record's size dominates its key's


def scored(n: int) -> list[ScoredResponse]:
    return [ScoredResponse(id=f"q{i // K}-{i % K}", instruction_id=f"q{i // K}", doc_id=f"d{i // K}",
                           response=f"{i % K} {FILLER}",
                           sample_index=i % K, score=float(1 + i % K), judge_scores=[float(1 + i % K)])
            for i in range(n)]


def peak_bytes(task) -> int:
    tracemalloc.start()
    try:
        task()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def preference_pairs_task(tmp_path, n, section=None, name="pairs"):
    source, questions = tmp_path / f"scored-{n}.jsonl", tmp_path / f"questions-{n}.jsonl"
    write_jsonl(source, scored(n))
    write_jsonl(questions, [{"id": f"q{q}", "doc_id": f"d{q}", "instruction": f"Question {q}?"} for q in range(n // K)])
    out = tmp_path / f"{name}-{n}.jsonl"
    return lambda: run_stage("preference_pairs", str(source), str(out), str(out) + ".dropped", section or {},
                             tables={"instructions": str(questions)})


class Part:
    def __init__(self, path, metadata):
        self.path, self.metadata = str(path), metadata


def merge_task(tmp_path, n):
    parts = []
    for index in range(2):
        path = tmp_path / f"part-{n}-{index}.jsonl"
        write_jsonl(path, scored(n // 2))
        parts.append(Part(path, encode({"stage": "reward_scoring", "shard_index": index, "rows_in": n // 2,
                                        "rows_out": n // 2, "dropped": {}, "metrics": {}, "seconds": 1.0})))
    return lambda: merge_shards(parts, parts, str(tmp_path / f"merged-{n}"), str(tmp_path / f"dropped-{n}"))


def rejected_task(tmp_path, n):
    dropped = tmp_path / f"dropped-{n}.jsonl"
    write_jsonl(dropped, [Dropped("reward_scoring", "unparsable_judgement", f"r{i}", FILLER) for i in range(n)])
    return lambda: write_jsonl(tmp_path / f"rejected-{n}.jsonl", rejected_rows(str(tmp_path / "none"), [str(dropped)]))


def capped_pairs_task(tmp_path, n):
    return preference_pairs_task(tmp_path, n, {"max_pairs": 100}, name="capped")


@pytest.mark.parametrize("task", [preference_pairs_task, capped_pairs_task, merge_task, rejected_task])
def test_peak_memory_does_not_grow_with_the_input(tmp_path, task):
    small, large = (peak_bytes(task(tmp_path, n)) for n in (2_000, 20_000))
    assert large < 1.5 * small + 1_000_000, f"peak {small:,} B at 2k records, {large:,} B at 20k"


def test_streamed_pairs_match_the_whole_input_at_once(tmp_path):
    """Chunks of the stream give the pairs the stage gives over the whole input in one call."""
    import json

    from pugc.config import PreferencePairsConfig
    from pugc.stages import preference_pairs

    rows = scored(5_000)  # over two CPU chunks
    preference_pairs_task(tmp_path, 5_000)()
    streamed = [json.loads(line) for line in (tmp_path / "pairs-5000.jsonl").read_text().splitlines()]
    whole = preference_pairs.run(rows, PreferencePairsConfig(), {f"q{q}": f"Question {q}?" for q in range(1250)}).kept
    assert [p["instruction_id"] for p in streamed] == [p.instruction_id for p in whole]
    assert [p["margin"] for p in streamed] == [p.margin for p in whole]
    assert streamed[7]["prompt"] == [{"role": "user", "content": "Question 7?"}]


def read(path):
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]


def test_max_pairs_keeps_an_exact_nested_subsample_in_order_and_accounts_for_the_rest(tmp_path):
    """The data-size sweep: max_pairs keeps exactly that many pairs (the questions whose ids hash lowest), in
    the stream's order; a smaller limit is a subset of a larger one; the rest are dropped as over_max_pairs."""
    every = preference_pairs_task(tmp_path, 5_000)()  # 1,250 questions over two CPU chunks
    all_ids = [p["instruction_id"] for p in read(tmp_path / "pairs-5000.jsonl")]
    kept = {}
    for limit in (100, 400, 2_000):
        report = preference_pairs_task(tmp_path, 5_000, {"max_pairs": limit}, name=f"max{limit}")()
        pairs = read(tmp_path / f"max{limit}-5000.jsonl")
        dropped = read(tmp_path / f"max{limit}-5000.jsonl.dropped")
        kept[limit] = [p["instruction_id"] for p in pairs]
        expected = min(limit, len(all_ids))
        assert len(pairs) == expected == report["counts"]["out"]
        assert kept[limit] == [i for i in all_ids if i in set(kept[limit])]  # the stream's order
        over = [d for d in dropped if d["reason"] == "over_max_pairs"]
        assert len(over) == report["counts"]["dropped"].get("over_max_pairs", 0) == len(all_ids) - expected
        assert {d["record_id"] for d in over} == set(all_ids) - set(kept[limit])
        assert report["counts"]["in"] == report["counts"]["out"] + sum(report["counts"]["dropped"].values())
        assert report["metrics"]["margin_mean"] == pytest.approx(
            sum(p["margin"] for p in pairs) / len(pairs))  # figures of the pairs kept
    assert set(kept[100]) < set(kept[400]) and kept[2_000] == all_ids
    assert every["counts"]["out"] == len(all_ids)
    again = preference_pairs_task(tmp_path, 5_000, {"max_pairs": 100, "subsample_seed": 1}, name="seed1")()
    other = [p["instruction_id"] for p in read(tmp_path / "seed1-5000.jsonl")]
    assert again["counts"]["out"] == 100 and set(other) != set(kept[100])  # another seed, another subsample
