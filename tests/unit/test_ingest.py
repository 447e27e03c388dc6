import json

import pytest

from pugc.config import InputConfig
from pugc.io import iter_input_rows, read_records, write_jsonl
from pugc.records import Document, RecordError
from pugc.stages import ingest


def write_lines(path, lines):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_every_line_is_a_document_a_quarantine_or_a_duplicate(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [
        json.dumps({"id": "a", "text": "First post.", "source": "forum"}).encode(),
        b"this is not json",
        json.dumps({"body": "no text field"}).encode(),
        json.dumps({"text": "   "}).encode(),
        json.dumps({"text": 42}).encode(),
        json.dumps(["an", "array"]).encode(),
        b'{"text": "cut off',
        json.dumps({"text": "Second post."}).encode(),
        json.dumps({"text": "First post."}).encode(),  # exact duplicate of line 1
        b"\xff\xfe not utf-8",
        json.dumps({"id": "a", "text": "Other text, same id."}).encode(),
    ])
    outcome = ingest.run(iter_input_rows(path), InputConfig(max_malformed_fraction=1.0))
    result = outcome.result
    assert outcome.input_lines == 11
    assert [q.reason for q in outcome.quarantined] == [
        "not_json", "missing_text", "empty", "not_string", "not_object", "not_json", "not_utf8"]
    assert [q.line for q in outcome.quarantined] == [2, 3, 4, 5, 6, 7, 10]
    assert "not JSON" in outcome.quarantined[0].error
    assert "missing text field 'text'" in outcome.quarantined[1].error
    assert "not valid UTF-8" in outcome.quarantined[-1].error
    assert [d.id for d in result.kept] == ["a", result.kept[1].id]
    assert result.kept[0].meta == {"source": "forum", "source_file": str(path), "source_line": 1}
    assert result.counts["dropped"] == {"duplicate": 1, "duplicate_id": 1}
    assert len(result.kept) + len(result.dropped) + len(outcome.quarantined) == outcome.input_lines


def test_ids_are_content_hashes_when_absent(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [json.dumps({"text": "Same words."}).encode()])
    first = ingest.run(iter_input_rows(path), InputConfig()).result.kept[0].id
    again = ingest.run(iter_input_rows(path), InputConfig()).result.kept[0].id
    assert first == again and len(first) == 16


def test_configurable_text_field_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"body": ["One.", "Two.", None], "rating": [1, 2, 3]}), path)
    outcome = ingest.run(iter_input_rows(path), InputConfig(text_field="body"))
    assert [d.text for d in outcome.result.kept] == ["One.", "Two."]
    assert outcome.result.kept[1].meta["rating"] == 2
    assert [q.line for q in outcome.quarantined] == [3]


def test_read_records_names_file_line_and_key(tmp_path):
    path = tmp_path / "docs.jsonl"
    write_jsonl(path, [Document(id="x", text="t")])
    with open(path, "a") as handle:
        handle.write(json.dumps({"id": "y"}) + "\n")
    with pytest.raises(RecordError, match=r"docs.jsonl:2: Document record lacks key\(s\) text"):
        read_records(path, Document)


def test_write_jsonl_leaves_no_temporary_files(tmp_path):
    write_jsonl(tmp_path / "out.jsonl", [{"a": 1}, {"a": 2}])
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_a_folder_of_shards_is_read_file_by_file(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    write_lines(folder / "part-0.jsonl", [json.dumps({"text": "A."}).encode(), b"oops"])
    write_lines(folder / "part-1.jsonl", [json.dumps({"text": "B."}).encode()])
    (folder / "README.txt").write_text("not input")
    outcome = ingest.run(iter_input_rows(folder), InputConfig())
    assert [d.text for d in outcome.result.kept] == ["A.", "B."]
    assert [(q.source.endswith("part-0.jsonl"), q.line) for q in outcome.quarantined] == [(True, 2)]
    assert outcome.input_lines == 3


def test_missing_input_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        list(iter_input_rows(tmp_path / "nope.jsonl"))


def test_all_invalid_input_stops_naming_the_input_and_the_reasons(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [b"nope", json.dumps({"text": ""}).encode(), b"[1]"])
    with pytest.raises(ingest.InputError) as info:
        ingest.run(iter_input_rows(path), InputConfig())
    message = str(info.value)
    assert str(path) in message and "no valid records in 3 lines" in message
    assert "empty 1" in message and "not_json 1" in message and "not_object 1" in message


def test_too_many_malformed_lines_stop_the_run(tmp_path):
    path = write_lines(tmp_path / "mostly-bad.jsonl", [json.dumps({"text": "fine"}).encode(), b"x", b"y", b"z"])
    with pytest.raises(ingest.InputError, match=r"3 of 4 lines malformed \(75% > input.max_malformed_fraction=50%\)"):
        ingest.run(iter_input_rows(path), InputConfig())
    assert len(ingest.run(iter_input_rows(path), InputConfig(max_malformed_fraction=0.8)).result.kept) == 1


def test_overlong_documents_are_quarantined(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [json.dumps({"text": "x" * 101}).encode(), json.dumps({"text": "ok"}).encode()])
    outcome = ingest.run(iter_input_rows(path), InputConfig(max_chars=100))
    assert [(q.line, q.reason) for q in outcome.quarantined] == [(1, "too_long")]


def test_near_duplicates_are_dropped_as_duplicates(tmp_path):
    base = ("I descaled my kettle with a cup of white vinegar and a cup of water, boiled it twice, "
            "left it for an hour, then rinsed three times and the taste was gone completely.")
    near = base.replace("three times", "four times")
    other = "Our tent leaked at the seams until we sealed them with silicone seam grip on a dry afternoon."
    path = write_lines(tmp_path / "in.jsonl", [json.dumps({"id": k, "text": t}).encode()
                                               for k, t in (("a", base), ("b", near), ("c", other))])
    outcome = ingest.run(iter_input_rows(path), InputConfig())
    assert [d.id for d in outcome.result.kept] == ["a", "c"]
    (drop,) = outcome.result.dropped
    assert (drop.reason, drop.record_id) == ("duplicate", "b") and "near-duplicates a" in drop.detail
    assert len(ingest.run(iter_input_rows(path), InputConfig(near_duplicates=False)).result.kept) == 3
