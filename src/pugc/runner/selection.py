"""The whole-output pass of a stage that keeps at most `Selection.limit` records (pugc.selection): two streaming
reads of the output, holding only the `limit` smallest ranks; those left out are appended to the dropped file
with their reason, and the tally moves them from `out` to `dropped`."""
from __future__ import annotations

import heapq
from collections import Counter
import logging

from pugc.io import JsonlWriter, iter_records
from pugc.runner.tally import Tally
from pugc.selection import Selection

log = logging.getLogger(__name__)


def apply_selection(selection: Selection, output_path: str, dropped_path: str, record_type: type, tally: Tally) -> int:
    """Keep the output's `limit` lowest-ranked records, in order; returns how many were left out."""
    ranks = heapq.nsmallest(selection.limit, (selection.rank(r) for r in iter_records(output_path, record_type)))
    if len(ranks) < selection.limit:
        return 0
    cutoff, reasons = ranks[-1], Counter()
    with JsonlWriter(output_path) as kept, JsonlWriter(dropped_path) as dropped:
        dropped.copy_from(dropped_path)  # the stage's own drops first; both files are replaced on a clean exit
        for record in iter_records(output_path, record_type):
            if selection.rank(record) <= cutoff:
                kept.write(record)
                continue
            drop = selection.drop(record)
            dropped.write(drop)
            reasons[drop.reason] += 1
    left_out = sum(reasons.values())
    tally.dropped.update(reasons)
    tally.n_out -= left_out
    log.info("kept %d of %d records (limit %d)", kept.count, kept.count + left_out, selection.limit)
    return left_out
