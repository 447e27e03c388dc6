"""Which rows a shard owns, and how a shard is cut into chunks, never splitting a group of equal keys."""
from __future__ import annotations

import os
from collections import deque
from typing import Callable, Iterable, Iterator, TypeVar

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


def shard_range(path: str | os.PathLike, key: str | None, index: int, count: int) -> tuple[int, int]:
    """`shard_bounds` of a file, in memory that does not grow with it: rows are counted without parsing, then
    each cut moves forward past the rest of its group (parsing only from the row before the cut)."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside 0..{count - 1}")
    with open(path, encoding="utf-8") as handle:
        rows = sum(1 for line in handle if line.strip())
    cuts = [round(rows * k / count) for k in (index, index + 1)]
    if key is None:
        return cuts[0], cuts[1]
    start, end = (_group_start(path, key, cut, rows) for cut in cuts)
    return start, end


def _group_start(path, key: str, cut: int, rows: int) -> int:
    """The first row at or after `cut` whose group key differs from the row before it."""
    if not 0 < cut < rows:
        return cut
    previous, position = None, cut - 1
    for number, row in iter_rows(path, start=cut - 1):
        if key not in row:
            raise ValueError(f"{path}:{number}: row lacks its group key {key!r}")
        if position >= cut and row[key] != previous:
            return position
        previous, position = row[key], position + 1
    return position


def group_chunks(records: Iterable[T], key: Callable[[T], object] | None, sizes: Iterator[int]) -> Iterator[list[T]]:
    """Consecutive chunks of at least the next size from `sizes` (the last may be shorter), each extended to the
    end of its group so equal keys stay together. A key that comes back after its group ended, in this chunk
    or the two before, is an error: the input must be grouped (stage outputs are, as sharding keeps groups
    whole). Only those chunks' keys are remembered, so memory follows the chunk size, not the input."""
    chunk: list[T] = []
    size = next(sizes)
    closed: set = set()
    earlier: deque = deque(maxlen=2)  # the groups of the two chunks before
    for record in records:
        current = key(record) if key else None
        if chunk and len(chunk) >= size and (key is None or current != key(chunk[-1])):
            if key:
                closed.add(key(chunk[-1]))
            yield chunk
            chunk, size = [], next(sizes)
            earlier.append(closed)
            closed = set()
        if key and chunk and current != key(chunk[-1]):
            closed.add(key(chunk[-1]))
        if key and (current in closed or any(current in groups for groups in earlier)):
            raise ValueError(f"input is not grouped: key {current!r} appears again after its group ended")
        chunk.append(record)
    if chunk:
        yield chunk
