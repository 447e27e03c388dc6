"""Joins by id: a stage that needs text another stage wrote (a document, a question) reads it from that
stage's table, keeping only the rows its current chunk names.

A stage declares its joins on its `StageSpec`; the runner hands each chunk's lookups to the stage as keyword
arguments named after the tables. Memory holds the chunk's rows, not the table. A stage run over many chunks
reads each table once into an on-disk index (`TableJoiner`, SQLite), so its joins cost one pass over each
table rather than one pass per chunk.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass

from pugc.io import iter_rows
from pugc.scratch import folder_bytes, new_scratch_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Join:
    table: str  # the table's name: the stage's input of that name (e.g. "documents", ingest's ugc output)
    key: str  # the field of the stage's records that names a table row
    column: str  # the table column the stage needs
    table_key: str = "id"


DOCUMENT_TEXT = Join("documents", "doc_id", "text")
QUESTION = Join("instructions", "instruction_id", "instruction")


class JoinError(ValueError):
    """A record names a row its table does not have."""


def lookup(path: str | os.PathLike, join: Join, wanted: set) -> dict:
    """{id: column} for the `wanted` ids, from one streaming pass over the table."""
    found = {}
    for number, row in iter_rows(path):
        key = row.get(join.table_key)
        if key in wanted:
            if join.column not in row:
                raise JoinError(f"{path}:{number}: {join.table} row {key!r} lacks {join.column!r}")
            found[key] = row[join.column]
    missing = wanted - found.keys()
    if missing:
        raise missing_error(path, join, missing)
    return found


def check_tables(stage: str, joins: tuple[Join, ...], paths: dict[str, str]) -> None:
    """Before any work: every table the stage joins is given."""
    for join in joins:
        if join.table not in paths:
            raise JoinError(f"{stage} joins the {join.table} table (by {join.key}), but no {join.table} input "
                            f"was given (pugc stage: --table {join.table}=PATH)")


def join_chunk(joins: tuple[Join, ...], paths: dict[str, str], chunk: list) -> dict[str, dict]:
    """The lookups one chunk needs, by table name (one streaming pass per table: for a single chunk)."""
    return {join.table: lookup(paths[join.table], join, wanted_keys(join, chunk)) for join in joins}


def wanted_keys(join: Join, chunk: list) -> set:
    """The rows a chunk names; a record whose key is None (an evaluation prompt without a document) names none."""
    return {getattr(record, join.key) for record in chunk} - {None}


def missing_error(path, join: Join, missing: set) -> JoinError:
    return JoinError(f"{path}: the {join.table} table has no row for {join.key} "
                     f"{', '.join(repr(m) for m in sorted(missing)[:3])}"
                     + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""))


class TableIndex:
    """One table's column by id on disk: built in one streaming pass, then read per chunk. Memory stays at
    SQLite's page cache whatever the table's size; the file lives in the task's scratch folder (pugc.scratch),
    removed on close, and its size is logged (a 100k-document table takes about 200 MB)."""

    QUERY_IDS = 500  # ids per query, well under SQLite's bound on parameters

    def __init__(self, path: str | os.PathLike, join: Join):
        self.path, self.join = path, join
        self.folder = str(new_scratch_folder(join.table))
        self.db = sqlite3.connect(os.path.join(self.folder, "index.sqlite"))
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.execute("CREATE TABLE row (id TEXT PRIMARY KEY, value TEXT, line INTEGER)")
        rows = ((row.get(join.table_key), json.dumps(row[join.column]) if join.column in row else None, number)
                for number, row in iter_rows(path))
        self.db.executemany("INSERT OR REPLACE INTO row VALUES (?, ?, ?)", rows)  # a later row wins, as in lookup
        self.db.commit()
        self.bytes = folder_bytes(self.folder)
        log.info("%s table indexed for joins by %s: %.1f MB in %s", join.table, join.key, self.bytes / 1e6,
                 self.folder)

    def get(self, wanted: set) -> dict:
        found, ids = {}, sorted(wanted)
        for start in range(0, len(ids), self.QUERY_IDS):
            part = ids[start:start + self.QUERY_IDS]
            marks = ",".join("?" * len(part))
            for key, value, number in self.db.execute(f"SELECT id, value, line FROM row WHERE id IN ({marks})", part):
                if value is None:
                    raise JoinError(f"{self.path}:{number}: {self.join.table} row {key!r} lacks {self.join.column!r}")
                found[key] = json.loads(value)
        if len(found) < len(wanted):
            raise missing_error(self.path, self.join, wanted - found.keys())
        return found

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class TableJoiner:
    """A stage's joins over all its chunks: the first chunk streams the tables (enough for a one-chunk run);
    from the second on, each table is read once into a `TableIndex`."""

    def __init__(self, joins: tuple[Join, ...], paths: dict[str, str]):
        self.joins, self.paths = joins, paths
        self.indexes: dict[str, TableIndex] = {}
        self.chunks = 0

    def lookups(self, chunk: list) -> dict[str, dict]:
        self.chunks += 1
        if self.chunks == 1:
            return join_chunk(self.joins, self.paths, chunk)
        lookups = {}
        for join in self.joins:
            if join.table not in self.indexes:
                self.indexes[join.table] = TableIndex(self.paths[join.table], join)
            lookups[join.table] = self.indexes[join.table].get(wanted_keys(join, chunk))
        return lookups

    @property
    def index_bytes(self) -> int:
        """Scratch space the on-disk indexes took (0 for a one-chunk run, which streams its tables)."""
        return sum(index.bytes for index in self.indexes.values())

    def close(self) -> None:
        for index in self.indexes.values():
            index.close()
