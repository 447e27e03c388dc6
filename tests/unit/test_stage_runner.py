"""Shard slicing and merging: contiguous, complete, groups kept whole, counts summed."""
import pytest

from pugc.io import write_jsonl
from pugc.lineage import encode
from pugc.runner.sharding import shard_bounds
from pugc.stage_runner import merge_shards


@pytest.mark.parametrize("n, count", [(10, 1), (10, 3), (10, 4), (3, 4), (0, 2), (97, 8)])
def test_shards_cover_every_row_once_in_order(n, count):
    keys = list(range(n))
    covered = []
    for index in range(count):
        start, end = shard_bounds(keys, index, count)
        covered += keys[start:end]
    assert covered == keys


def test_shards_never_split_a_group():
    keys = ["a"] * 4 + ["b"] * 4 + ["c"] * 4  # 12 rows, 3 groups; naive 4-way cuts fall inside groups
    slices = [keys[slice(*shard_bounds(keys, i, 4))] for i in range(4)]
    assert sum(slices, []) == keys
    for piece in slices:
        assert not piece or all(k not in other for other in slices if other is not piece for k in piece)


def test_shard_index_out_of_range():
    with pytest.raises(ValueError):
        shard_bounds([1, 2], 2, 2)


class Part:
    def __init__(self, path, metadata):
        self.path, self.metadata = str(path), metadata


def test_merge_concatenates_in_shard_order_and_sums(tmp_path):
    parts, dropped = [], []
    for index, rows in [(1, [{"id": "c"}]), (0, [{"id": "a"}, {"id": "b"}])]:  # arrive out of order
        meta = encode({"stage": "ugc_filter", "shard_index": index, "shard_count": 2, "rows_in": len(rows) + 1,
                       "rows_out": len(rows), "dropped": {"low_quality": 1},
                       "metrics": {"quality_mean": 2.0 + index * 3, "pass_rate": 0.5}, "seconds": 1.0 + index,
                       "model": "m"})
        write_jsonl(tmp_path / f"p{index}", rows)
        write_jsonl(tmp_path / f"d{index}", [{"id": f"x{index}"}])
        parts.append(Part(tmp_path / f"p{index}", meta))
        dropped.append(Part(tmp_path / f"d{index}", meta))
    report = merge_shards(parts, dropped, str(tmp_path / "merged"), str(tmp_path / "dropped"))
    assert (tmp_path / "merged").read_text().splitlines() == ['{"id": "a"}', '{"id": "b"}', '{"id": "c"}']
    assert (tmp_path / "dropped").read_text().splitlines() == ['{"id": "x0"}', '{"id": "x1"}']
    assert report["counts"] == {"in": 5, "out": 3, "dropped": {"low_quality": 2}}
    assert report["metrics"]["quality_mean"] == pytest.approx((2.0 * 3 + 5.0 * 2) / 5)
    assert report["stage"] == "ugc_filter" and report["shards"] == 2


def test_a_merge_carries_the_upstream_spending_once_and_every_shards_own(tmp_path):
    """Spending travels on lineage: shards share what was spent upstream; the merge adds it once, the next task
    reads the most any input says (the chain's, not the document table's)."""
    from pugc.runner.artifacts import publish
    from pugc.stage_runner import upstream_spent

    upstream = {"gpu_hours": 1.0, "tokens": 100.0, "cost": 2.0}
    parts = []
    for index, own_tokens in [(0, 30.0), (1, 50.0)]:
        meta = encode({"stage": "instruction_gen", "shard_index": index, "shard_count": 2, "rows_in": 1, "rows_out": 1,
                       "dropped": {}, "metrics": {}, "seconds": 1.0, "model": "m", "spent_before": upstream,
                       "spent": {"gpu_hours": 1.25, "tokens": 100.0 + own_tokens, "cost": 2.5}})
        write_jsonl(tmp_path / f"p{index}", [{"id": f"q{index}", "doc_id": "d", "instruction": "Q?"}])
        parts.append(Part(tmp_path / f"p{index}", meta))
    report = merge_shards(parts, parts, str(tmp_path / "merged"), str(tmp_path / "dropped"))
    assert report["spent_before"] == upstream
    assert report["spent"] == {"gpu_hours": 1.5, "tokens": 180.0, "cost": 3.0}
    merged, documents = Part(tmp_path / "merged", {}), Part(tmp_path / "docs", encode({"stage": "ingest_ugc"}))
    publish(report, [merged])
    assert upstream_spent(merged, documents, None) == {"gpu_hours": 1.5, "tokens": 180.0, "cost": 3.0}
    assert upstream_spent(documents) == {"gpu_hours": 0.0, "tokens": 0.0, "cost": 0.0}
