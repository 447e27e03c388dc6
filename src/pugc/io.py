"""Reading and writing records: JSONL from local paths or gs://, written atomically; input also as Parquet,
CSV or TSV, and gzipped text."""
from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

from pugc.records import from_row, to_row

T = TypeVar("T")
log = logging.getLogger(__name__)


def _local(uri: str | os.PathLike) -> Path:
    text = str(uri)
    if text.startswith("gs://"):
        raise ValueError(f"{text}: stage artifacts are local paths (KFP mounts or downloads them)")
    return Path(text)


def read_text(uri: str | os.PathLike) -> str:
    """A small text file (a list, a table) from a local path or gs://, as UTF-8."""
    from pugc import gcs

    text = str(uri)
    data = gcs.read_bytes(text) if gcs.is_gcs(text) else Path(text).read_bytes()
    return data.decode("utf-8")


# Input formats by file suffix; each text format may also come gzipped (`.jsonl.gz`, `.csv.gz`), read as a stream.
INPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".csv": "csv",
                 ".tsv": "tsv", ".tab": "tsv"}
GZIP = ".gz"
INPUT_KINDS = ".jsonl, .parquet, .csv, .tsv (text formats also .gz)"


def file_format(name: str, declared: str = "auto") -> str | None:
    """jsonl, parquet, csv or tsv: the recipe's `input.format`, else the file's suffix (under a `.gz`); None
    for a file that is not input (a folder's README, a _SUCCESS marker)."""
    base = name[: -len(GZIP)] if name.lower().endswith(GZIP) else name
    if declared != "auto":
        return declared
    fmt = INPUT_FORMATS.get(os.path.splitext(base)[1].lower())
    return None if fmt == "parquet" and base != name else fmt  # Parquet compresses inside; a .parquet.gz is not


def input_files(uri: str | os.PathLike) -> list[str]:
    """The files behind an input URI: a file, a local folder of shards, or a gs:// file or prefix. In a folder
    or prefix, files of no input format are skipped and named in the log (skipped_input_files)."""
    from pugc import gcs

    text = str(uri)
    if gcs.is_gcs(text):
        return gcs.input_files(text)
    path = Path(text)
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if p.is_file() and file_format(p.name))
        if not files:
            raise FileNotFoundError(f"{path}: a folder without input files ({INPUT_KINDS})")
        skipped = skipped_input_files(path)
        if skipped:
            log.warning("input %s: skipped %d file(s) of no input format: %s", path, len(skipped), ", ".join(skipped))
        return files
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file or folder")
    return [text]


def skipped_input_files(folder: Path) -> list[str]:
    """The names of a folder's files that input_files leaves out (hidden files aside)."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and not file_format(p.name))


def input_fingerprint(uri: str | os.PathLike) -> str:
    """A digest of what the input holds now: each file's name, size and version (the GCS generation and
    checksum, or the local modification time). New, changed or removed files under the same URI change it."""
    from pugc import gcs

    text = str(uri)
    files = input_files(text)
    versions = gcs.versions(files) if gcs.is_gcs(text) else [_local_version(f) for f in files]
    digest = hashlib.sha256(json.dumps(versions, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()[:16]


def _local_version(path: str) -> list:
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]


MAX_LINE_BYTES = 8 << 20  # input.max_line_bytes: a longer line is quarantined unread (memory stays bounded)
BOM = "\ufeff"


@contextlib.contextmanager
def open_input(uri: str):
    """A binary stream of an input file, local or gs://, decompressed as it is read when it ends in .gz."""
    from pugc import gcs

    with (gcs.open_binary(uri) if gcs.is_gcs(uri) else open(uri, "rb")) as raw:
        if not uri.lower().endswith(GZIP):
            yield raw
            return
        with gzip.GzipFile(fileobj=raw) as unzipped:
            yield unzipped


def _raw_lines(uri: str, max_line_bytes: int) -> Iterator[tuple[bytes, bool]]:
    with open_input(uri) as handle:
        yield from bounded_lines(handle, max_line_bytes)


def bounded_lines(handle, limit: int) -> Iterator[tuple[bytes, bool]]:
    """(line, whole) for each line of a binary file, never holding more than `limit` bytes of one line: a
    longer line yields its first `limit` bytes with whole=False, and the rest of it is skipped."""
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line, True
            continue
        rest = line
        while rest and not rest.endswith(b"\n"):
            rest = handle.readline(1 << 20)
        yield line[:limit], False


class LineError(str):
    """Why an input line did not become a row: the message, and its reason code as `.reason`."""

    reason: str

    def __new__(cls, reason: str, message: str) -> "LineError":
        error = super().__new__(cls, message)
        error.reason = reason
        return error


def parse_line(raw: bytes) -> tuple[Any, LineError | None]:
    """One input line: (parsed JSON, None), or (the raw text, why it is no row). A byte-order mark at the start
    of a line is removed first (Windows tools write one; concatenated files carry one per part)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8", errors="replace"), LineError(
            "not_utf8", f"not valid UTF-8: {exc.reason} at byte {exc.start}")
    line = line.removeprefix(BOM)
    if not line.strip():
        return line, LineError("blank_line", "blank line")
    try:
        return json.loads(line, parse_constant=_refuse_constant, parse_float=_finite_float), None
    except json.JSONDecodeError as exc:
        return line.rstrip("\r\n"), LineError("not_json", f"not JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return line.rstrip("\r\n"), LineError("too_deep", "JSON nested too deeply to read")
    except ValueError as exc:  # valid JSON Python will not convert, e.g. an integer of over 4,300 digits
        return line.rstrip("\r\n"), LineError("not_json", f"not JSON: {exc}")


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON value")  # Python reads NaN and Infinity; JSON and other readers do not


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _parquet_rows(uri: str) -> list:
    import pyarrow.parquet as pq

    from pugc import gcs

    if gcs.is_gcs(uri):
        import pyarrow as pa

        return pq.read_table(pa.BufferReader(gcs.read_bytes(uri))).to_pylist()
    return pq.read_table(uri).to_pylist()


def iter_input_rows(uri: str | os.PathLike, fmt: str = "auto", max_line_bytes: int = MAX_LINE_BYTES,
                    ) -> Iterator[tuple[str, int, Any, LineError | None]]:
    """Yield (file, line_number, parsed_row, None) for every line (or Parquet row) that parses, and
    (file, line_number, raw_text, error) for one that does not (`LineError`: its `.reason` is a code).

    Lines that are not JSON (or not UTF-8, or too long, or nested too deeply) are reported, not raised: the
    caller quarantines them, raw text kept, and the run goes on. A prefix or folder of shards is read file by
    file, in name order.
    """
    for source in input_files(uri):
        kind = file_format(source, fmt) or "jsonl"  # a single file is read as JSONL whatever its name
        if kind == "parquet":
            for number, row in enumerate(_parquet_rows(source), start=1):
                yield source, number, row, None
            continue
        if kind in ("csv", "tsv"):
            for number, row, error in _delimited_rows(source, "\t" if kind == "tsv" else ",", max_line_bytes):
                yield source, number, row, error
            continue
        for number, (raw, whole) in enumerate(_raw_lines(source, max_line_bytes), start=1):
            if not whole:
                yield source, number, raw[:1000].decode("utf-8", errors="replace"), LineError(
                    "too_long", f"line over {max_line_bytes} bytes (input.max_line_bytes)")
                continue
            row, error = parse_line(raw)
            yield source, number, row, error


def _delimited_rows(uri: str, delimiter: str, max_line_bytes: int) -> Iterator[tuple[int, Any, LineError | None]]:
    """(line, row, error) for each record of a CSV/TSV file with a header line, read by the csv module (quoted
    fields may span lines; the line is where the record ends). Values stay strings; a row with more fields than
    the header, or one the csv module cannot read, is reported, not raised. Bytes that are not UTF-8 become
    U+FFFD, as at ingest."""
    csv.field_size_limit(max_line_bytes)
    with open_input(uri) as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.DictReader(text, delimiter=delimiter)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield reader.line_num, "", LineError("not_csv", f"not a {_KIND[delimiter]} record: {exc}")
                continue
            if None in row:
                yield reader.line_num, delimiter.join(row.pop(None)), LineError(
                    "not_csv", f"more fields than the header's {len(reader.fieldnames)}")
                continue
            yield reader.line_num, row, None


_KIND = {",": "CSV", "\t": "TSV"}


def iter_records(uri: str | os.PathLike, cls: type[T], start: int = 0, end: int | None = None) -> Iterator[T]:
    """Records `start` to `end` (0-based, blank lines not counted) of a stage artifact, read one line at a time;
    a row that does not fit names the file, the line and the missing key."""
    for number, row in iter_rows(uri, start, end):
        yield from_row(cls, row, f"{uri}:{number}")


def iter_rows(uri: str | os.PathLike, start: int = 0, end: int | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, parsed row) for rows `start` to `end` of a JSONL artifact, streamed."""
    path = _local(uri)
    index = 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if end is not None and index >= end:
                return
            if index >= start:
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not JSON: {exc.msg}") from None
            index += 1


def read_records(uri: str | os.PathLike, cls: type[T]) -> list[T]:
    """A whole stage artifact in memory: for small files (tests, reports); stages stream with `iter_records`."""
    return list(iter_records(uri, cls))


class JsonlWriter:
    """Rows appended one at a time to a temporary file, renamed into place on a clean exit: readers never see
    half a file, and a killed task leaves no output behind."""

    def __init__(self, uri: str | os.PathLike):
        self.path = _local(uri)
        self.count = 0

    def __enter__(self) -> "JsonlWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        # backslashreplace: a lone surrogate that reached a record anyway is written as its JSON escape
        # ("\\ud83d"), which reads back as the same string, instead of failing the task (UTF-8 cannot encode it).
        self.handle = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace")
        return self

    def write(self, row: Any) -> None:
        data = row if isinstance(row, dict) else to_row(row)
        self.handle.write(json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n")
        self.count += 1

    def write_all(self, rows: Iterable[Any]) -> None:
        for row in rows:
            self.write(row)

    def copy_from(self, uri: str | os.PathLike) -> None:
        """Append another JSONL file as is (a streaming copy), counting its rows."""
        self.handle.flush()
        with open(_local(uri), encoding="utf-8") as source:
            for line in source:
                if line.strip():
                    self.handle.write(line if line.endswith("\n") else line + "\n")
                    self.count += 1

    def __exit__(self, kind, error, trace) -> None:
        self.handle.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            Path(self.tmp).unlink(missing_ok=True)


def write_jsonl(uri: str | os.PathLike, rows: Iterable[Any]) -> int:
    """Write rows (records or dicts) as JSONL via a temporary file and a rename: readers never see half."""
    with JsonlWriter(uri) as writer:
        writer.write_all(rows)
    return writer.count


def write_json(uri: str | os.PathLike, data: Any) -> None:
    path = _local(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8",
                   errors="backslashreplace")  # as JsonlWriter: a lone surrogate is written as its JSON escape
    os.replace(tmp, path)


def make_world_readable(folder: str | os.PathLike) -> None:
    """Files 0644 and folders 0755 under `folder`: a saved model is read by other users and by serving images
    with another uid, as from_pretrained users expect (safetensors writes its file 0600)."""
    root = Path(folder)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
