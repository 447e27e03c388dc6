"""Which rows a shard owns, and how a shard is cut into chunks, never splitting a group of equal keys."""
from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from pugc.io import iter_rows

T = TypeVar("T")


def shard_bounds(keys: list, index: int, count: int) -> tuple[int, int]:
    """[start, end) of shard `index` of `count`: contiguous, near-equal, never splitting a run of equal keys."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside 0..{count - 1}")

    def boundary(k: int) -> int:
        cut = round(len(keys) * k / count)
        while 0 < cut < len(keys) and keys[cut] == keys[cut - 1]:
            cut += 1
        return cut

    return boundary(index), boundary(index + 1)


def row_keys(path: str | os.PathLike, key: str | None) -> Sequence:
    """One streaming pass: each row's group key (its position when the stage has none). Only keys are kept."""
    if key is None:  # positions only: count the rows without parsing them
        with open(path, encoding="utf-8") as handle:
            return range(sum(1 for line in handle if line.strip()))
    keys = []
    for number, row in iter_rows(path):
        if key not in row:
            raise ValueError(f"{path}:{number}: row lacks its group key {key!r}")
        keys.append(row[key])
    return keys


def group_chunks(records: Iterable[T], key: Callable[[T], object] | None, sizes: Iterator[int]) -> Iterator[list[T]]:
    """Consecutive chunks of at least the next size from `sizes` (the last may be shorter), each extended to the
    end of its group so equal keys stay together. A key that comes back after its group ended is an error:
    the input must be grouped (stage outputs are, as sharding keeps groups whole)."""
    chunk: list[T] = []
    size = next(sizes)
    closed: set = set()
    for record in records:
        current = key(record) if key else None
        if chunk and len(chunk) >= size and (key is None or current != key(chunk[-1])):
            if key:
                closed.add(key(chunk[-1]))
            yield chunk
            chunk, size = [], next(sizes)
        if key and chunk and current != key(chunk[-1]):
            closed.add(key(chunk[-1]))
        if key and current in closed:
            raise ValueError(f"input is not grouped: key {current!r} appears again after its group ended")
        chunk.append(record)
    if chunk:
        yield chunk
