"""Stage 6: per question, chosen = highest mean judge score, rejected = lowest (no model involved)."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from pugc.config import PreferencePairsConfig
from pugc.metrics import RECOMPUTED, SUM, MetricRules
from pugc.records import Dropped, PreferencePair, ScoredResponse, StageResult
from pugc.safety import neutralize_special_tokens
from pugc.stages.response_sampling import policy_prompt

STAGE = "preference_pairs"


def margin_mean(pairs: Iterable[PreferencePair]) -> dict[str, float]:
    count, total = 0, 0.0
    for pair in pairs:
        count, total = count + 1, total + pair.margin
    return {"margin_mean": total / count if count else 0.0}


METRICS = MetricRules({"margin_mean": RECOMPUTED, "responses": SUM}, margin_mean)
# Scores are means of verdicts, so differences carry float noise (4.1 - 4.0 = 0.0999...): margins are
# compared at this many decimals, far finer than any meaningful score difference.
MARGIN_DECIMALS = 9


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": neutralize_special_tokens(text)}]


def run(scored: list[ScoredResponse], config: PreferencePairsConfig, instructions: dict[str, str]) -> StageResult:
    """`in` counts questions (groups of responses); every question ends as a pair or a drop reason. Pairs come
    in the order questions first appear, so a stream of chunks gives the same file as the whole input.
    `instructions`: instruction_id -> question, joined from the instruction table."""
    groups: dict[str, list[ScoredResponse]] = defaultdict(list)
    for response in scored:
        groups[response.instruction_id].append(response)
    pairs, dropped = [], []
    for instruction_id in groups:
        # Ties break by sample order, so the same scores always give the same pair.
        group = sorted(groups[instruction_id], key=lambda r: r.sample_index)
        first = group[0]
        ids = {"instruction_id": instruction_id, "doc_id": first.doc_id}
        scores = ", ".join(str(r.score) for r in group)
        if len(group) < config.min_scored_responses:
            dropped.append(Dropped(STAGE, "too_few_responses", instruction_id, f"{len(group)} scored", ids))
            continue
        chosen = max(group, key=lambda r: r.score)
        rejected = min(group, key=lambda r: r.score)
        margin = round(chosen.score - rejected.score, MARGIN_DECIMALS)
        if margin <= 0:
            dropped.append(Dropped(STAGE, "all_tied", instruction_id, f"all scores {chosen.score}", ids))
            continue
        if margin < config.min_margin:
            dropped.append(Dropped(STAGE, "below_margin", instruction_id, f"margin {margin:.3f} < {config.min_margin} (scores {scores})", ids))
            continue
        pairs.append(
            PreferencePair(
                prompt=list(policy_prompt(neutralize_special_tokens(instructions[instruction_id])).messages),
                chosen=_assistant(chosen.response), rejected=_assistant(rejected.response),
                score_chosen=chosen.score, score_rejected=rejected.score, margin=round(margin, 4),
                instruction_id=instruction_id, doc_id=first.doc_id, chosen_id=chosen.id, rejected_id=rejected.id,
            )
        )
    return StageResult(STAGE, len(groups), pairs, dropped, metrics={**margin_mean(pairs), "responses": float(len(scored))})
