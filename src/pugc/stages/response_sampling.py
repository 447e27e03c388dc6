"""Stage 4: sample K responses per question from the policy."""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from pugc.config import ResponseSamplingConfig

from pugc.engines.base import Engine, Prompt
from pugc.metrics import MEAN, RECOMPUTED, SUM, MetricRules
from pugc.personal_data import DROP_REASON, METRIC_NAMES, PersonalDataScreen, count_metrics
from pugc.records import Dropped, Instruction, Response, StageResult, ids_of
from pugc.stages.llm import engine_error_drop, first_error, generate_parsed


def policy_prompt(instruction: str) -> Prompt:
    """The policy sees the question alone, exactly as DPO will later see it (the pair's `prompt`)."""
    return Prompt(messages=({"role": "user", "content": instruction},))


STAGE = "response_sampling"


def length_figures(responses: Iterable[Response]) -> dict[str, float]:
    """The share of responses cut by max_tokens and their mean length (characters), over the whole output
    (chunks differ in size): across rounds, the length trend the pairs may be teaching."""
    total = truncated = chars = 0
    for response in responses:
        total += 1
        truncated += response.finish_reason == "length"
        chars += len(response.response)
    return {"truncated_fraction": truncated / total if total else 0.0,
            "response_chars_mean": chars / total if total else 0.0}


METRICS = MetricRules({"responses_per_instruction": MEAN, "truncated_fraction": RECOMPUTED,
                       "response_chars_mean": RECOMPUTED, **dict.fromkeys(METRIC_NAMES, SUM)}, length_figures)


def run(instructions: list[Instruction], config: ResponseSamplingConfig, engine: Engine) -> StageResult:
    prompts = [policy_prompt(i.instruction) for i in instructions]
    outputs = generate_parsed(engine, prompts, config.sampling_params(n=config.k), str.strip)
    screen = PersonalDataScreen.for_config(config.personal_data, f"{STAGE}.personal_data")
    kept, dropped, found = [], [], Counter()
    for item, samples in zip(instructions, outputs):
        screened = {k: screen.screen(s.value) for k, s in enumerate(samples) if s.value}
        for sample in screened.values():
            found.update(sample.found)
        responses = [
            Response(
                id=f"{item.id}-{k}", instruction_id=item.id, doc_id=item.doc_id, response=screened[k].text,
                sample_index=k, num_tokens=s.completion.num_tokens, finish_reason=s.completion.finish_reason,
            )
            for k, s in enumerate(samples)
            if k in screened and not screened[k].drop  # a sample holding a type to drop is left out
        ]
        if not responses:
            dropped.append(_no_responses(item, samples, screened, config.k))
        kept.extend(responses)
    return StageResult(
        STAGE, len(instructions), kept, dropped,
        metrics={"responses_per_instruction": len(kept) / len(instructions) if instructions else 0.0,
                 **length_figures(kept), **count_metrics(found)},
    )


def _no_responses(item: Instruction, samples, screened: dict, k: int) -> Dropped:
    """Why a question kept no response: an engine error, every sample empty, or personal data in the rest."""
    error = first_error(samples)
    if error:
        return engine_error_drop(STAGE, item, error)
    if screened:
        found = Counter()
        for sample in screened.values():
            found.update({kind: sample.found[kind] for kind in sample.drop})
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(found.items()))
        return Dropped(STAGE, DROP_REASON, item.id, f"every non-empty sample holds personal data to drop ({detail})",
                       ids_of(item))
    return Dropped(STAGE, "empty_responses", item.id, f"all {k} samples empty", ids_of(item))
