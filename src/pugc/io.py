"""Reading and writing records: JSONL (and Parquet for input), local paths, written atomically."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

from pugc.records import from_row, to_row

T = TypeVar("T")


def _local(uri: str | os.PathLike) -> Path:
    text = str(uri)
    if text.startswith("gs://"):
        raise NotImplementedError(f"{text}: gs:// paths are read by the cluster I/O layer, not yet available")
    return Path(text)


def iter_input_rows(uri: str | os.PathLike, fmt: str = "auto") -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line_number, parsed_row_or_None, error_or_None) for every line (or Parquet row) of the input.

    Lines that are not JSON are reported, not raised: the caller quarantines them and the run goes on.
    """
    path = _local(uri)
    if fmt == "parquet" or (fmt == "auto" and path.suffix == ".parquet"):
        import pyarrow.parquet as pq

        for number, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield number, row, None
        return
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, None, f"not valid UTF-8: {exc.reason} at byte {exc.start}"
                continue
            if not line.strip():
                yield number, None, "blank line"
                continue
            try:
                yield number, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield number, None, f"not JSON: {exc.msg} (column {exc.colno})"


def read_records(uri: str | os.PathLike, cls: type[T]) -> list[T]:
    """Read a stage artifact; a row that does not fit names the file, the line and the missing key."""
    path = _local(uri)
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not JSON: {exc.msg}") from None
                records.append(from_row(cls, row, f"{path}:{number}"))
    return records


def write_jsonl(uri: str | os.PathLike, rows: Iterable[Any]) -> int:
    """Write rows (records or dicts) as JSONL via a temporary file and a rename: readers never see half."""
    path = _local(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                data = row if isinstance(row, dict) else to_row(row)
                handle.write(json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def write_json(uri: str | os.PathLike, data: Any) -> None:
    path = _local(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
