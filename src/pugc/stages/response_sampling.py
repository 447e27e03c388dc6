"""Stage 4: sample K responses per question from the policy."""
from __future__ import annotations

from pugc.config import ResponseSamplingConfig
from typing import Iterable

from pugc.engines.base import Engine, Prompt
from pugc.metrics import MEAN, RECOMPUTED, MetricRules
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
                       "response_chars_mean": RECOMPUTED}, length_figures)


def run(instructions: list[Instruction], config: ResponseSamplingConfig, engine: Engine) -> StageResult:
    prompts = [policy_prompt(i.instruction) for i in instructions]
    outputs = generate_parsed(engine, prompts, config.sampling_params(n=config.k), str.strip)
    kept, dropped = [], []
    for item, samples in zip(instructions, outputs):
        responses = [
            Response(
                id=f"{item.id}-{k}", instruction_id=item.id, doc_id=item.doc_id, response=s.value, sample_index=k,
                num_tokens=s.completion.num_tokens, finish_reason=s.completion.finish_reason,
            )
            for k, s in enumerate(samples)
            if s.value
        ]
        if not responses:
            error = first_error(samples)
            dropped.append(engine_error_drop(STAGE, item, error) if error else
                           Dropped(STAGE, "empty_responses", item.id, f"all {config.k} samples empty", ids_of(item)))
        kept.extend(responses)
    return StageResult(
        STAGE, len(instructions), kept, dropped,
        metrics={"responses_per_instruction": len(kept) / len(instructions) if instructions else 0.0,
                 **length_figures(kept)},
    )
