"""The runner's modules one by one: chunking, batch pacing, chunk checkpoints with ranges, tallies, artifacts."""
import json
import os

import pytest

from pugc.checkpoint import ChunkCheckpoints
from pugc.io import JsonlWriter, iter_records, write_jsonl
from pugc.metrics import MEAN, RECOMPUTED, SUM, MetricRules
from pugc.records import Dropped, Instruction, StageResult
from pugc.runner.artifacts import publish, read_lineage
from pugc.runner.chunks import BatchPacer, Outputs, resume, run_in_chunks
from pugc.runner.sharding import group_chunks, shard_bounds, shard_range
from pugc.runner.tally import Tally, check_accounting


def test_chunks_keep_groups_whole_and_cover_everything():
    keys = list("aaabbbbcdddde")
    chunks = list(group_chunks(keys, lambda k: k, iter([2, 2, 2, 2, 2, 2])))
    assert sum(chunks, []) == keys
    assert chunks == [list("aaa"), list("bbbb"), list("c") + list("dddd"), ["e"]]


def test_an_ungrouped_input_is_refused_with_the_key():
    with pytest.raises(ValueError, match="'a' appears again"):
        list(group_chunks(list("aabbbba"), lambda k: k, iter([2] * 9)))


def test_shard_range_names_the_line_without_its_key(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"instruction_id": "q1"}, {"other": 1}, {"instruction_id": "q3"}])
    with pytest.raises(ValueError, match=r"rows.jsonl:2: row lacks its group key 'instruction_id'"):
        shard_range(path, "instruction_id", 0, 2)
    assert shard_range(path, None, 1, 2) == (2, 3)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_shard_range_of_a_file_cuts_where_shard_bounds_cuts_a_list(tmp_path, count):
    keys = ["a", "a", "a", "b", "c", "c", "d", "d", "d", "d", "e", "f", "f"]
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"instruction_id": k} for k in keys])
    for index in range(count):
        assert shard_range(path, "instruction_id", index, count) == shard_bounds(keys, index, count)


def test_iter_records_reads_only_its_range(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": f"i{n}", "doc_id": "d", "instruction": "q"}) + "\n\n" for n in range(6)))
    assert [r.id for r in iter_records(path, Instruction, 2, 4)] == ["i2", "i3"]


def test_batches_grow_toward_the_checkpoint_interval_at_most_doubling():
    pacer = BatchPacer(first=10, most=100, target_seconds=60)
    sizes = []
    for _ in range(5):
        sizes.append(pacer.size)
        pacer.finished(pacer.size, seconds=1.0)  # fast: 60 s would hold far more
    assert sizes == [10, 20, 40, 80, 100]
    slow = BatchPacer(first=10, most=100, target_seconds=60)
    slow.finished(10, seconds=120.0)  # slower than the interval: never shrinks below the first size
    assert slow.size == 10
    fixed = BatchPacer(first=10, most=100)
    fixed.finished(10, seconds=0.1)
    assert fixed.size == 10


def echo(stage="relevance_filter"):
    """A stage that keeps even-numbered records and drops the others."""
    def run(chunk):
        kept = [r for r in chunk if int(r.id[1:]) % 2 == 0]
        dropped = [Dropped(stage, "odd", r.id) for r in chunk if int(r.id[1:]) % 2]
        return StageResult(stage, len(chunk), kept, dropped, {"pass_rate": len(kept) / len(chunk)})
    return run


def instructions(n):
    return [Instruction(id=f"i{k}", doc_id="d", instruction="q") for k in range(n)]


def test_a_resumed_run_continues_after_chunks_of_any_size(tmp_path):
    """An earlier try saved chunks of 3 and 5 records; the retry copies them and computes the rest."""
    checkpoints = ChunkCheckpoints(tmp_path / "ckpt")
    rows = instructions(12)
    checkpoints.save(0, echo()(rows[0:3]), 0, 3)
    checkpoints.save(1, echo()(rows[3:8]), 3, 8)
    tally, calls = Tally(MetricRules()), []
    with JsonlWriter(tmp_path / "kept") as kept, JsonlWriter(tmp_path / "dropped") as dropped:
        outputs = Outputs(kept, dropped)
        progress = resume(checkpoints, outputs, tally)
        assert (progress.chunks_resumed, progress.records_resumed) == (2, 8)
        run_in_chunks(lambda c: calls.append(len(c)) or echo()(c), rows[8:], None, None, BatchPacer(2, 2), outputs,
                      tally, checkpoints, progress)
    assert calls == [2, 2]
    assert [json.loads(line)["id"] for line in (tmp_path / "kept").read_text().splitlines()] == \
        [f"i{k}" for k in range(0, 12, 2)]
    assert tally.counts == {"in": 12, "out": 6, "dropped": {"odd": 6}}
    assert [c["start"] for c in checkpoints.finished()] == [0, 3, 8, 10]


def test_a_chunk_after_a_gap_is_not_resumed(tmp_path):
    checkpoints = ChunkCheckpoints(tmp_path / "ckpt")
    checkpoints.save(0, echo()(instructions(3)), 0, 3)
    checkpoints.save(2, echo()(instructions(3)), 6, 9)  # chunk 1 never finished
    assert [c["end"] for c in checkpoints.finished()] == [3]


def test_accounting_counts_one_to_k_stages_by_their_key():
    result = StageResult("response_sampling", 2, [Instruction("a-0", "a", "q"), Instruction("a-1", "a", "q")],
                         [Dropped("response_sampling", "empty_responses", "b")])
    with pytest.raises(RuntimeError, match="2 records in, but 3"):
        check_accounting(result)
    check_accounting(result, "doc_id")  # both outputs came from input "a"


def test_tally_combines_each_figure_by_its_declared_rule():
    recomputed = MetricRules({"pass_rate": MEAN, "documents_truncated": SUM, "longest": RECOMPUTED},
                             lambda records: {"longest": float(max(records))})
    tally = Tally(recomputed)
    tally.add(1, 1, {"x": 1}, {"pass_rate": 1.0, "documents_truncated": 2.0, "longest": 3.0})
    tally.add(3, 0, {"x": 2, "y": 1}, {"pass_rate": 0.0, "documents_truncated": 1.0, "longest": 9.0})
    assert tally.counts == {"in": 4, "out": 1, "dropped": {"x": 3, "y": 1}}
    assert tally.metrics == {"pass_rate": 0.25, "documents_truncated": 3.0}  # the recomputed one waits for the output
    assert tally.final_metrics(lambda: iter([4, 7, 5])) == {"pass_rate": 0.25, "documents_truncated": 3.0,
                                                            "longest": 7.0}


def test_a_figure_without_a_rule_is_an_error_not_a_guess():
    tally = Tally(MetricRules({"pass_rate": MEAN}))
    tally.add(1, 1, {}, {"trained_mean_tokens": 4.0})
    with pytest.raises(ValueError, match="figure 'trained_mean_tokens' has no merge rule"):
        tally.metrics


def test_every_stage_declares_every_figure_it_reports():
    from pugc.stages import STAGE_SPECS
    from pugc.stages.evaluate import EVALUATION_SPECS

    declared = {name: set(spec.metrics.rules) for name, spec in {**STAGE_SPECS, **EVALUATION_SPECS}.items()}
    assert declared["reward_scoring"] == {"score_mean", "score_stdev", "parse_rate", "judge_generated_tokens",
                                          "documents_truncated"}
    assert declared["evaluate"] >= {"win_rate", "lc_win_rate", "trained_mean_tokens", "trained_mean_chars"}
    assert {name for name, rule in EVALUATION_SPECS["evaluate"].metrics.rules.items() if rule != RECOMPUTED} == set()


class Artifact:
    def __init__(self):
        self.metadata, self.logged = {}, {}

    def log_metric(self, name, value):
        self.logged[name] = value


def test_published_lineage_is_flat_and_reads_back():
    out, metrics = Artifact(), Artifact()
    report = {"stage": "ugc_filter", "counts": {"in": 3, "out": 2, "dropped": {"low_quality": 1}},
              "metrics": {"pass_rate": 2 / 3}, "seconds": 1.5, "pugc_version": "0", "model": None, "shard_index": 0}
    publish(report, [out], metrics, "digest")
    assert all(isinstance(v, (str, int, float)) for v in out.metadata.values())
    assert read_lineage(out)["dropped"] == {"low_quality": 1}
    assert metrics.logged["dropped_low_quality"] == 1 and metrics.logged["records_in"] == 3


def test_a_join_names_the_table_and_the_missing_id(tmp_path):
    from pugc.tables import DOCUMENT_TEXT, JoinError, check_tables, join_chunk, lookup

    table = tmp_path / "ugc.jsonl"
    write_jsonl(table, [{"id": f"d{n}", "text": f"text {n}"} for n in range(5)])
    assert lookup(table, DOCUMENT_TEXT, {"d1", "d3"}) == {"d1": "text 1", "d3": "text 3"}  # only what is asked
    chunk = [Instruction("i0", "d1", "q"), Instruction("i1", "d9", "q")]
    with pytest.raises(JoinError, match=r"ugc.jsonl: the documents table has no row for doc_id 'd9'"):
        join_chunk((DOCUMENT_TEXT,), {"documents": str(table)}, chunk)
    with pytest.raises(JoinError, match="relevance_filter joins the documents table .* no documents input"):
        check_tables("relevance_filter", (DOCUMENT_TEXT,), {})


def test_joins_over_many_chunks_read_each_table_once_and_answer_as_the_streaming_lookup(tmp_path, monkeypatch):
    from pugc import tables
    from pugc.tables import DOCUMENT_TEXT, JoinError, TableJoiner

    table = tmp_path / "ugc.jsonl"
    write_jsonl(table, [{"id": f"d{n}", "text": f"text {n}"} for n in range(50)] + [{"id": "bare"}])
    passes = []
    real_iter_rows = tables.iter_rows
    monkeypatch.setattr(tables, "iter_rows", lambda path: passes.append(path) or real_iter_rows(path))
    joiner = TableJoiner((DOCUMENT_TEXT,), {"documents": str(table)})
    chunks = [[Instruction(f"i{n}", f"d{n}", "q") for n in range(start, start + 10)] for start in range(0, 50, 10)]
    try:
        for chunk in chunks:
            assert joiner.lookups(chunk)["documents"] == {r.doc_id: f"text {r.doc_id[1:]}" for r in chunk}
        assert len(passes) == 2  # the first chunk's streaming lookup, then the index built once for the rest
        with pytest.raises(JoinError, match=r"the documents table has no row for doc_id 'd99'"):
            joiner.lookups([Instruction("i99", "d99", "q")])
        with pytest.raises(JoinError, match=r"ugc.jsonl:51: documents row 'bare' lacks 'text'"):
            joiner.lookups([Instruction("ib", "bare", "q")])
        folder = joiner.indexes["documents"].folder
    finally:
        joiner.close()
    assert not os.path.exists(folder)  # the on-disk index goes with the stage


def test_stage_specs_declare_what_the_runner_needs():
    from pugc.stages import STAGE_SPECS

    assert [j.table for j in STAGE_SPECS["reward_scoring"].joins] == ["documents", "instructions"]
    assert STAGE_SPECS["reward_scoring"].side_output == "judge_outputs"
    assert STAGE_SPECS["response_sampling"].accounting_key == "instruction_id"
    assert STAGE_SPECS["preference_pairs"].shard_group == "instruction_id"


def test_the_generic_runner_names_no_stage():
    import inspect

    from pugc.runner import chunks, merge, sharding, stage, tally
    from pugc.stages import STAGE_SPECS

    for module in (chunks, merge, sharding, stage, tally):
        source = inspect.getsource(module)
        assert not [name for name in STAGE_SPECS if f'"{name}"' in source], module.__name__
