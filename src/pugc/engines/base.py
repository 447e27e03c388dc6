"""The Engine protocol: what every inference backend offers the stages.

Stages speak in chat prompts and vLLM/OpenAI sampling names; each backend translates at its own edge, so a
recipe can switch a role between `hf`, `vllm` and `openai` without touching stage code.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol, Sequence, runtime_checkable

from pugc.engines.formats import CHAT_TEMPLATE, PROMETHEUS, has_system, is_jinja, merge_system, prometheus_prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    """Chat messages, optionally with the start of the assistant's reply already written.

    `assistant_prefix` lets a judge continue its own answer, e.g. score the token after "... [RESULT] ".
    `text`: a prompt already rendered (a request to a completions endpoint); engines send it as it is.
    """

    messages: tuple[dict, ...]
    assistant_prefix: str = ""
    text: str | None = None


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


def prompt_seed(seed: int, prompt: Prompt, sample_index: int = 0) -> int:
    """A seed for one prompt (and sample) derived from the recipe seed and the prompt's content.

    Seeding per prompt, not per batch, makes a sample depend only on its prompt: the same run sharded 1 or 4
    ways, batched or not, yields the same responses.
    """
    parts = [seed, sample_index, list(prompt.messages), prompt.assistant_prefix]
    key = json.dumps(parts if prompt.text is None else parts + [prompt.text], sort_keys=True)
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") >> 1


def verdict_position(encode: Callable[[str], list[int]], text: str, candidates: Sequence[str]) -> tuple[list[int], list[int]]:
    """Token ids up to where the candidates diverge, and each candidate's first distinct token id.

    Tokenising prompt+candidate (not the candidate alone) handles tokenizers that glue a leading space to the
    digit (" 4") or emit a separate space token first (SentencePiece's "▁", "4").
    """
    encoded = [encode(text + c) for c in candidates]
    shared = 0
    while all(len(e) > shared for e in encoded) and len({e[shared] for e in encoded}) == 1:
        shared += 1
    if any(len(e) <= shared for e in encoded):
        raise ValueError(f"verdict candidates {list(candidates)} cannot be told apart by one token")
    firsts = [e[shared] for e in encoded]
    if len(set(firsts)) != len(firsts):
        raise ValueError(f"verdict candidates {list(candidates)} share a first token")
    return encoded[0][:shared], firsts


def safe_messages(messages: Sequence[dict], special_tokens: Sequence[str]) -> list[dict]:
    """Message contents with the tokenizer's special-token strings defused (pugc.safety)."""
    from pugc.safety import neutralize_special_tokens

    return [{**m, "content": neutralize_special_tokens(m.get("content") or "", special_tokens)} for m in messages]


def tokenizer_special_tokens(tokenizer) -> list[str]:
    """Every special or added control token string a tokenizer would parse out of raw text."""
    tokens = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).values():
        if getattr(added, "special", False):
            tokens.add(str(added.content if hasattr(added, "content") else added))
    return sorted(tokens)


def once_if_greedy(params: SamplingParams) -> SamplingParams:
    """What to ask a backend for: greedy decoding yields the same output however often it is drawn, and vLLM
    (offline or behind its OpenAI server) refuses greedy sampling with n > 1, so greedy asks for one."""
    return replace(params, n=1) if params.greedy and params.n > 1 else params


def generate_n(run: Callable[[SamplingParams], list[list[Completion]]], params: SamplingParams,
               stats: EngineStats) -> list[list[Completion]]:
    """`run` (a backend's batched generate) under `once_if_greedy`, its output copied up to `params.n` samples.
    Generated tokens are counted as decoded: a greedy answer copied n times was generated once."""
    request = once_if_greedy(params)
    results = run(request)
    stats.prompts += len(results)
    stats.generated_tokens += sum(c.num_tokens for completions in results for c in completions)
    if request.n == params.n:
        return results
    return [[replace(completions[0]) for _ in range(params.n)] for completions in results]


class LocalTokenizer:
    """Prompt rendering for engines that hold the model's tokenizer (hf, vllm): the role's prompt format
    (pugc.engines.formats) applied to messages whose special-token strings are defused, token ids, truncation.
    Subclasses set `self.tokenizer`, then call `self.use_tokenizer(tokenizer, prompt_format)`."""

    tokenizer = None
    special_tokens: list[str] = []
    prompt_format = CHAT_TEMPLATE
    merge_system = False  # the chat template refused a system message: merged into the first user turn since

    def use_tokenizer(self, tokenizer, prompt_format: str = CHAT_TEMPLATE) -> None:
        self.tokenizer = tokenizer
        self.special_tokens = tokenizer_special_tokens(tokenizer)
        self.prompt_format = prompt_format

    def render(self, prompt: Prompt) -> str:
        if prompt.text is not None:
            return prompt.text + prompt.assistant_prefix
        messages = safe_messages(prompt.messages, self.special_tokens)
        if self.prompt_format == PROMETHEUS:
            return prometheus_prompt(messages) + prompt.assistant_prefix
        return self._apply_template(messages) + prompt.assistant_prefix

    def _apply_template(self, messages: list[dict], generation_prompt: bool = True) -> str:
        from jinja2.exceptions import TemplateError

        template = self.prompt_format if is_jinja(self.prompt_format) else None
        try:
            return self.tokenizer.apply_chat_template(merge_system(messages) if self.merge_system else messages,
                                                      chat_template=template, tokenize=False,
                                                      add_generation_prompt=generation_prompt)
        except TemplateError as exc:
            if self.merge_system or not has_system(messages):
                raise
            log.warning("%s: the chat template refuses a system message (%s): merged into the first user turn "
                        "from now on", getattr(self, "model_id", "model"), exc)
            self.merge_system = True
            return self._apply_template(messages, generation_prompt)

    def _adds_specials(self, prompt: Prompt) -> bool:
        """A chat template writes BOS itself; a text prompt gets it from the tokenizer (as vLLM's server does)."""
        return prompt.text is not None or self.prompt_format == PROMETHEUS

    def _encode(self, text: str, specials: bool = False) -> list[int]:
        return self.tokenizer(text, add_special_tokens=specials)["input_ids"]

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        return self._encode(self.render(prompt), self._adds_specials(prompt))

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        ids = self._encode(text)
        if len(ids) <= max_tokens:
            return text, False
        # A cut inside a character decodes to U+FFFD: dropped (the openai engine's /detokenize cut does the same).
        return self.tokenizer.decode(ids[:max_tokens], skip_special_tokens=True).rstrip("\ufffd"), True

    def verdict_position(self, prompt: Prompt, candidates: Sequence[str]) -> tuple[list[int], list[int]]:
        specials = self._adds_specials(prompt)
        return verdict_position(lambda text: self._encode(text, specials), self.render(prompt), candidates)


@dataclass
class Completion:
    text: str
    num_tokens: int
    finish_reason: str  # "stop" (end of sequence), "length" (cut at max_tokens) or "error"
    error: str | None = None  # why the request failed after its retries; then text is empty


@dataclass(frozen=True)
class EngineError:
    """A prompt whose request failed after the engine's retries, in place of its result: stages drop that
    record as `engine_error` instead of losing the whole batch."""

    message: str


def failed_completions(message: str, n: int) -> list[Completion]:
    """The n sample slots of a prompt whose request failed."""
    return [Completion("", 0, "error", error=message) for _ in range(n)]


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
    revision: str | None  # the hub revision the weights were loaded at; None: unpinned, local or remote
    stats: EngineStats

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for every prompt, in prompt order (with `error` set where a served engine's
        request failed after its retries; local engines raise instead)."""
        ...

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> list[dict[str, float] | EngineError]:
        """For each prompt, the probability that the next token is each candidate string's first token
        (an `EngineError` where a served engine's request failed)."""
        ...

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """`text` cut to at most `max_tokens` of this model's tokens, and whether it was cut."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ScalarRewardModel(Protocol):
    """A judge that gives each (question, answer) conversation one number (pugc.engines.reward_model)."""

    model_id: str

    def score(self, conversations: Sequence[Sequence[dict]]) -> list[float]: ...
