"""A count-exact, deterministic subsample of a stage's whole output (e.g. `preference_pairs.max_pairs` for the
paper's data-size sweep): the `limit` records whose ids hash lowest under a seed, in their original order.

Ranking by a hash of the id, not by position, makes the choice independent of input order and chunking, and
nests: with one seed the 10k-pair subsample lies inside the 20k one, so a sweep compares like with like.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

from pugc.records import Dropped


def id_rank(seed: int, record_id: str) -> tuple[str, str]:
    """A record's place in the subsample order: its seeded hash, then the id itself (never a tie)."""
    return hashlib.sha256(f"{seed}:{record_id}".encode("utf-8")).hexdigest(), record_id


@dataclass(frozen=True)
class Selection:
    limit: int
    rank: Callable[[Any], Any]  # smaller ranks are kept
    drop: Callable[[Any], Dropped]  # the drop record of one left out
