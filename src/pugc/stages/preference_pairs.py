"""Stage 6: per question, chosen = highest mean judge score, rejected = lowest (no model involved).
A response cut at max_tokens is never chosen (unless the recipe allows it): a truncated answer that pleases the
judge would teach the policy to run long (PUGC's answers grew from 1,676 to 2,587 characters over online rounds)."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from pugc.config import PreferencePairsConfig
from pugc.metrics import RECOMPUTED, SUM, MetricRules
from pugc.records import Dropped, PreferencePair, ScoredResponse, StageResult
from pugc.safety import neutralize_special_tokens
from pugc.selection import Selection, id_rank
from pugc.stages.response_sampling import policy_prompt

STAGE = "preference_pairs"


def pair_figures(pairs: Iterable[PreferencePair]) -> dict[str, float]:
    """Margin and the chosen and rejected answers' mean lengths (characters), over the whole output."""
    count, margins, chosen_chars, rejected_chars = 0, 0.0, 0, 0
    for pair in pairs:
        count, margins = count + 1, margins + pair.margin
        chosen_chars += len(pair.chosen[-1]["content"])
        rejected_chars += len(pair.rejected[-1]["content"])
    mean = lambda total: total / count if count else 0.0  # noqa: E731
    return {"margin_mean": mean(margins), "chosen_chars_mean": mean(chosen_chars),
            "rejected_chars_mean": mean(rejected_chars)}


METRICS = MetricRules({"margin_mean": RECOMPUTED, "chosen_chars_mean": RECOMPUTED, "rejected_chars_mean": RECOMPUTED,
                       "responses": SUM, "cut_responses": SUM, "cut_chosen": SUM, "cut_rejected": SUM},
                      pair_figures)
# Scores are means of verdicts, so differences carry float noise (4.1 - 4.0 = 0.0999...): margins are
# compared at this many decimals, far finer than any meaningful score difference.
MARGIN_DECIMALS = 9


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": neutralize_special_tokens(text)}]


def _is_cut(response: ScoredResponse) -> bool:
    return response.finish_reason == "length"


def _candidates(group: list[ScoredResponse], cut_responses: str) -> tuple[list, list]:
    """(may be chosen, may be rejected): a cut response is chosen only when "allowed", rejected unless "drop"."""
    complete = [r for r in group if not _is_cut(r)]
    return (group if cut_responses == "allowed" else complete), (complete if cut_responses == "drop" else group)


def run(scored: list[ScoredResponse], config: PreferencePairsConfig, instructions: dict[str, str]) -> StageResult:
    """`in` counts questions (groups of responses); every question ends as a pair or a drop reason. Pairs come
    in the order questions first appear, so a stream of chunks gives the same file as the whole input.
    `instructions`: instruction_id -> question, joined from the instruction table."""
    groups: dict[str, list[ScoredResponse]] = defaultdict(list)
    for response in scored:
        groups[response.instruction_id].append(response)
    pairs, dropped, cut_chosen, cut_rejected = [], [], 0, 0
    for instruction_id in groups:
        # Ties break by sample order, so the same scores always give the same pair.
        group = sorted(groups[instruction_id], key=lambda r: r.sample_index)
        first = group[0]
        ids = {"instruction_id": instruction_id, "doc_id": first.doc_id}
        scores = ", ".join(str(r.score) for r in group)
        if len(group) < config.min_scored_responses:
            dropped.append(Dropped(STAGE, "too_few_responses", instruction_id, f"{len(group)} scored", ids))
            continue
        choosable, rejectable = _candidates(group, config.cut_responses)
        if not choosable or len(rejectable) < config.min_scored_responses:
            cut = sum(map(_is_cut, group))
            dropped.append(Dropped(STAGE, "cut_at_max_tokens", instruction_id,
                                   f"{cut} of {len(group)} responses cut at max_tokens "
                                   f"(cut_responses: {config.cut_responses})", ids))
            continue
        chosen = max(choosable, key=lambda r: r.score)
        rejected = min(rejectable, key=lambda r: r.score)
        margin = round(chosen.score - rejected.score, MARGIN_DECIMALS)
        if margin <= 0:
            dropped.append(Dropped(STAGE, "all_tied", instruction_id, f"no answer scores above {rejected.score}"
                                   f" (scores {scores})", ids))
            continue
        if margin < config.min_margin:
            dropped.append(Dropped(STAGE, "below_margin", instruction_id, f"margin {margin:.3f} < {config.min_margin} (scores {scores})", ids))
            continue
        cut_chosen, cut_rejected = cut_chosen + _is_cut(chosen), cut_rejected + _is_cut(rejected)
        pairs.append(
            PreferencePair(
                prompt=list(policy_prompt(neutralize_special_tokens(instructions[instruction_id])).messages),
                chosen=_assistant(chosen.response), rejected=_assistant(rejected.response),
                score_chosen=chosen.score, score_rejected=rejected.score, margin=round(margin, 4),
                instruction_id=instruction_id, doc_id=first.doc_id, chosen_id=chosen.id, rejected_id=rejected.id,
            )
        )
    figures = {"responses": float(len(scored)), "cut_responses": float(sum(map(_is_cut, scored))),
               "cut_chosen": float(cut_chosen), "cut_rejected": float(cut_rejected)}
    return StageResult(STAGE, len(groups), pairs, dropped, metrics={**pair_figures(pairs), **figures})


def pair_limit(config: PreferencePairsConfig) -> Selection | None:
    """`max_pairs`: the pairs of the questions whose ids hash lowest under `subsample_seed` (nested across limits)."""
    if config.max_pairs is None:
        return None

    def drop(pair: PreferencePair) -> Dropped:
        return Dropped(STAGE, "over_max_pairs", pair.instruction_id,
                       f"not among the {config.max_pairs} pairs kept (max_pairs, subsample_seed {config.subsample_seed})",
                       {"instruction_id": pair.instruction_id, "doc_id": pair.doc_id})

    return Selection(config.max_pairs, lambda pair: id_rank(config.subsample_seed, pair.instruction_id), drop)
