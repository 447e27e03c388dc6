"""A scripted engine for unit tests of parsing and stage logic (never for end-to-end tests)."""
from __future__ import annotations

from typing import Callable, Sequence

from pugc.engines.base import Completion, EngineError, EngineStats, Prompt, SamplingParams, failed_completions


def prompt_text(prompt: Prompt) -> str:
    return "\n".join(m["content"] for m in prompt.messages) + prompt.assistant_prefix


class FakeEngine:
    """`reply(prompt_text, sample_index) -> str` scripts generations; `probs(prompt_text) -> dict` verdicts;
    `error(prompt_text, params) -> str | None` a served engine's failed request (params None for verdicts);
    `finish_reason(prompt_text) -> str` whether a generation ended ("stop") or was cut ("length")."""

    model_id = "fake"
    revision = None

    def __init__(self, reply: Callable[[str, int], str] | None = None,
                 probs: Callable[[str], dict[str, float]] | None = None,
                 error: Callable[[str, SamplingParams | None], str | None] | None = None):
        self.reply = reply or (lambda text, i: "")
        self.error = error or (lambda text, params: None)
        self.probs = probs or (lambda text: {})
        self.finish_reason: Callable[[str], str] = lambda text: "stop"
        self.stats = EngineStats()
        self.generate_calls: list[tuple[list[Prompt], SamplingParams]] = []
        self.prob_calls: list[list[Prompt]] = []

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        self.generate_calls.append((list(prompts), params))
        out = []
        for p in prompts:
            error = self.error(prompt_text(p), params)
            if error:
                out.append(failed_completions(error, params.n))
                continue
            texts = [self.reply(prompt_text(p), i) for i in range(params.n)]
            out.append([Completion(t, len(t.split()) + 1, self.finish_reason(prompt_text(p))) for t in texts])
        return out

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> list[dict[str, float] | EngineError]:
        self.prob_calls.append(list(prompts))
        return [EngineError(self.error(prompt_text(p), None)) if self.error(prompt_text(p), None) else
                {c: self.probs(prompt_text(p)).get(c, 0.0) for c in candidates} for p in prompts]

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        words = text.split(" ")
        return (text, False) if len(words) <= max_tokens else (" ".join(words[:max_tokens]), True)

    def close(self) -> None:
        pass
