"""A bench-only engine that answers at once, so an LLM stage's own cost (runner, sharding, checkpoints,
prompt building, parsing, writing) is what gets measured. Never for tests: they use real tiny models, or
tests/fakes.py for stage logic."""
from __future__ import annotations

import zlib
from typing import Sequence

from pugc.engines.base import Completion, EngineStats, Prompt, SamplingParams


class InstantEngine:
    """Every generation is a short judge-style text ending in "[RESULT] v", v from a CRC of the prompt and
    the sample number (deterministic); verdict probabilities are uniform; nothing is truncated."""

    model_id = "bench/instant"

    def __init__(self, config=None):
        self.stats = EngineStats()

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        out = []
        for prompt in prompts:
            seed = zlib.crc32(prompt.messages[-1]["content"][-200:].encode("utf-8"))
            out.append([Completion(f"The answer covers the reference in part. [RESULT] {1 + (seed + i) % 5}", 12, "stop")
                        for i in range(params.n)])
        self.stats.prompts += len(prompts)
        self.stats.generated_tokens += 12 * params.n * len(prompts)
        return out

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> list[dict[str, float]]:
        self.stats.scored_prompts += len(prompts)
        return [{c: 1.0 / len(candidates) for c in candidates} for _ in prompts]

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        return text, False

    def close(self) -> None:
        pass


def install() -> None:
    """Every engine the runner makes from here on is an InstantEngine."""
    import pugc.engines

    pugc.engines.make_engine = InstantEngine
