"""A scripted engine for unit tests of parsing and stage logic (never for end-to-end tests)."""
from __future__ import annotations

from typing import Callable, Sequence

from pugc.engines.base import Completion, EngineStats, Prompt, SamplingParams


def prompt_text(prompt: Prompt) -> str:
    return "\n".join(m["content"] for m in prompt.messages) + prompt.assistant_prefix


class FakeEngine:
    """`reply(prompt_text, sample_index) -> str` scripts generations; `probs(prompt_text) -> dict` verdicts."""

    model_id = "fake"
    revision = None

    def __init__(self, reply: Callable[[str, int], str] | None = None,
                 probs: Callable[[str], dict[str, float]] | None = None):
        self.reply = reply or (lambda text, i: "")
        self.probs = probs or (lambda text: {})
        self.stats = EngineStats()
        self.generate_calls: list[tuple[list[Prompt], SamplingParams]] = []
        self.prob_calls: list[list[Prompt]] = []

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        self.generate_calls.append((list(prompts), params))
        out = []
        for p in prompts:
            texts = [self.reply(prompt_text(p), i) for i in range(params.n)]
            out.append([Completion(t, len(t.split()) + 1, "stop") for t in texts])
        return out

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> list[dict[str, float]]:
        self.prob_calls.append(list(prompts))
        return [{c: self.probs(prompt_text(p)).get(c, 0.0) for c in candidates} for p in prompts]

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        words = text.split(" ")
        return (text, False) if len(words) <= max_tokens else (" ".join(words[:max_tokens]), True)

    def close(self) -> None:
        pass
