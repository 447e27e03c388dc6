"""Input as users have it: gzipped JSONL, CSV and TSV read directly (Python's csv module), a folder's files
each read or named as skipped; hostile CSV reported record by record, never raised."""
import csv
import gzip
import json

import pytest
from hypothesis import given, settings, strategies as st

from pugc.checks import UserError, check_input
from pugc.config import InputConfig
from pugc.io import file_format, input_files, iter_input_rows, skipped_input_files

ROWS = [{"id": "a", "text": "Descale the kettle with citric acid."},
        {"id": "b", "text": "Quoted, with a comma\nand a second line"}, {"id": "", "text": "No id here."}]


def write_csv(path, rows, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text"], delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize("name, fmt", [("a.jsonl", "jsonl"), ("a.JSONL.GZ", "jsonl"), ("a.csv.gz", "csv"),
                                       ("a.tsv", "tsv"), ("a.parquet", "parquet"), ("a.parquet.gz", None),
                                       ("README.md", None), ("_SUCCESS", None)])
def test_formats_by_suffix(name, fmt):
    assert file_format(name) == fmt


def test_gzipped_jsonl_reads_as_its_jsonl(tmp_path):
    plain = tmp_path / "posts.jsonl"
    plain.write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "not json\n")
    with gzip.open(tmp_path / "posts.jsonl.gz", "wb") as handle:
        handle.write(plain.read_bytes())
    read = lambda path: [(n, row, error and error.reason) for _, n, row, error in iter_input_rows(str(path))]
    assert read(tmp_path / "posts.jsonl.gz") == read(plain)


@pytest.mark.parametrize("delimiter, suffix", [(",", ".csv"), ("\t", ".tsv")])
def test_csv_and_tsv_records_are_rows_with_the_line_they_end_on(tmp_path, delimiter, suffix):
    path = tmp_path / f"posts{suffix}"
    write_csv(path, ROWS, delimiter)
    read = [(n, row) for _, n, row, error in iter_input_rows(str(path)) if error is None]
    assert [row for _, row in read] == ROWS
    assert [n for n, _ in read] == [2, 4, 5]  # the quoted field spans lines 3-4


def test_a_csv_row_with_more_fields_than_the_header_is_reported_not_raised(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_bytes("\ufeffid,text\na,fine\nb,too,many\nc,\xe9t\xe9\n".encode("utf-8"))
    read = [(n, row, error and error.reason) for _, n, row, error in iter_input_rows(str(path))]
    assert read == [(2, {"id": "a", "text": "fine"}, None), (3, "many", "not_csv"),
                    (4, {"id": "c", "text": "\xe9t\xe9"}, None)]


def test_a_folder_reads_every_input_file_and_names_the_rest(tmp_path, caplog):
    write_csv(tmp_path / "b.csv", ROWS[:1])
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as handle:
        handle.write(json.dumps(ROWS[1]) + "\n")
    (tmp_path / "README.md").write_text("about this dump")
    assert [p.rsplit("/", 1)[1] for p in input_files(str(tmp_path))] == ["a.jsonl.gz", "b.csv"]
    assert skipped_input_files(tmp_path) == ["README.md"] and "README.md" in caplog.text
    summary = check_input(str(tmp_path), InputConfig())
    assert summary.sampled == 2 and "skipped (no input format): README.md" in summary.describe()


def test_a_folder_of_no_input_names_what_it_holds(tmp_path):
    (tmp_path / "dump.xlsx").write_text("x")
    with pytest.raises(UserError, match=r"a folder without input files .*it holds dump.xlsx"):
        check_input(str(tmp_path), InputConfig())


def test_a_jsonl_that_is_really_csv_says_how_to_read_it(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text("id,text\na,hello\n")
    with pytest.raises(UserError, match="looks like CSV: name it .csv or set input.format: csv"):
        check_input(str(path), InputConfig())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_as_csv_are_rows_or_reported_lines(data):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hostile.csv"
        path.write_bytes(data)
        for _, number, row, error in iter_input_rows(str(path)):
            assert (error is None and isinstance(row, dict)) or (error is not None and error.reason == "not_csv")
            assert number >= 1


def test_counts_say_records_for_parquet_and_csv_and_lines_for_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pugc.runner.ingest import quarantine_summary, input_unit
    from pugc.stages.ingest import IngestCounts

    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "posts.parquet")
    write_csv(tmp_path / "posts.csv", ROWS)
    (tmp_path / "posts.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    assert [input_unit(str(tmp_path / name), "auto") for name in ("posts.parquet", "posts.csv", "posts.jsonl")] == \
        ["records", "records", "lines"]
    assert input_unit(str(tmp_path), "auto") == "records"  # a folder mixing them
    counts = IngestCounts()
    counts.unit, counts.input_lines, counts.quarantined["not_csv"] = "records", 3, 1
    assert quarantine_summary(counts).startswith("quarantined 1 of 3 records (not_csv 1)")
