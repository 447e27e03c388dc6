"""The Engine protocol: what every inference backend offers the stages.

Stages speak in chat prompts and vLLM/OpenAI sampling names; each backend translates at its own edge, so a
recipe can switch a role between `hf`, `vllm` and `openai` without touching stage code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class Prompt:
    """Chat messages, optionally with the start of the assistant's reply already written.

    `assistant_prefix` lets a judge continue its own answer, e.g. score the token after "... [RESULT] ".
    """

    messages: tuple[dict, ...]
    assistant_prefix: str = ""


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    repetition_penalty: float = 1.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class Completion:
    text: str
    num_tokens: int
    finish_reason: str  # "stop" (end of sequence) or "length" (cut at max_tokens)


@dataclass
class EngineStats:
    prompts: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    scored_prompts: int = 0
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """An LLM behind one interface. Load happens in the constructor; `close` frees the model."""

    model_id: str
    stats: EngineStats

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for every prompt, in prompt order."""
        ...

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> list[dict[str, float]]:
        """For each prompt, the probability that the next token is each candidate string's first token."""
        ...

    def close(self) -> None: ...
