"""Joins by id: a stage that needs text another stage wrote (a document, a question) reads it from that
stage's table, streaming the table and keeping only the rows its current chunk names.

A stage declares its joins on its `StageSpec`; the runner hands each chunk's lookups to the stage as keyword
arguments named after the tables. Memory holds the chunk's rows, not the table.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from pugc.io import iter_rows


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
        raise JoinError(f"{path}: the {join.table} table has no row for {join.key} "
                        f"{', '.join(repr(m) for m in sorted(missing)[:3])}"
                        + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""))
    return found


def check_tables(stage: str, joins: tuple[Join, ...], paths: dict[str, str]) -> None:
    """Before any work: every table the stage joins is given."""
    for join in joins:
        if join.table not in paths:
            raise JoinError(f"{stage} joins the {join.table} table (by {join.key}), but no {join.table} input "
                            f"was given (pugc stage: --table {join.table}=PATH)")


def join_chunk(joins: tuple[Join, ...], paths: dict[str, str], chunk: list) -> dict[str, dict]:
    """The lookups one chunk needs, by table name."""
    lookups = {}
    for join in joins:
        lookups[join.table] = lookup(paths[join.table], join, {getattr(record, join.key) for record in chunk})
    return lookups
