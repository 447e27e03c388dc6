"""The OpenAI-compatible engine: any server speaking /v1/chat/completions (e.g. a vLLM server on the cluster
serving the judge for many runs), through the official `openai` client.

A role whose `prompt_format` is not the server's own chat template (`prometheus`, a Jinja template) is
rendered here and sent to /v1/completions as text. With the server's template, a 400 that refuses the system
message (Mistral-family templates) makes the engine merge it into the first user turn and ask again.

Requests run concurrently (`AsyncOpenAI`, at most `max_concurrency` in flight); the client retries 408, 409,
429, 5xx, timeouts and dropped connections with exponential backoff, honouring Retry-After. A request that
still fails becomes that prompt's error (`Completion.error`, `EngineError`), not an exception: the stage drops
the record as `engine_error` and the rest of the batch is kept. The key comes from an environment variable,
never the recipe. `expected` verdicts ask for one token with top logprobs; a judge continuing its own answer
("[RESULT] ") uses vLLM's `continue_final_message` extension.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from dataclasses import replace
from typing import Any, Sequence

from pugc.config import EngineConfig
from pugc.text import without_lone_surrogates
from pugc.engines.base import (Completion, EngineError, EngineStats, Prompt, SamplingParams, failed_completions,
                               generate_n, prompt_seed)
from pugc.engines.formats import CHAT_TEMPLATE, SYSTEM_REFUSED, has_system, merge_system, render_text

log = logging.getLogger(__name__)

TOKENIZE_TIMEOUT_S = 60.0
OPTION_DEFAULTS = {
    "base_url": None,  # e.g. http://pugc-judge.kubeflow.svc:8000/v1 (manifests/, run namespace); else $OPENAI_BASE_URL
    "api_key_env": "OPENAI_API_KEY",  # name of the environment variable holding the key
    "max_concurrency": 16,  # requests in flight at once
    "max_retries": 6,  # the client's retries of one request (backoff 0.5 s doubling to 8 s, or Retry-After)
    "timeout_s": 300.0,  # per request try
    "verdict_top_logprobs": 20,
}
# Request fields the OpenAI API names; the rest of a body goes to the server as vLLM extensions (extra_body).
OPENAI_FIELDS = ("model", "messages", "prompt", "n", "max_tokens", "temperature", "top_p", "seed", "logprobs",
                 "top_logprobs")


class RequestFailed(RuntimeError):
    """A request that failed after its retries; the engine turns it into the prompt's error."""


def chat_body(model: str, prompt: Prompt, params: SamplingParams, seed: int | None) -> dict[str, Any]:
    """The /chat/completions request for one prompt: all n samples in one request, seeded per prompt."""
    messages = list(prompt.messages)
    body: dict[str, Any] = {"model": model, "n": params.n, "max_tokens": params.max_tokens,
                            "temperature": params.temperature, "top_p": params.top_p}
    if prompt.assistant_prefix:
        messages.append({"role": "assistant", "content": prompt.assistant_prefix})
        body.update(continue_final_message=True, add_generation_prompt=False)  # vLLM extension
    body["messages"] = messages
    if seed is not None and not params.greedy:
        body["seed"] = seed
    if params.repetition_penalty != 1.0:
        body["repetition_penalty"] = params.repetition_penalty  # vLLM extension
    return body


def text_body(model: str, text: str, params: SamplingParams, seed: int | None) -> dict[str, Any]:
    """The /completions request for a prompt rendered here (the server adds BOS, as vLLM does for text)."""
    body: dict[str, Any] = {"model": model, "prompt": text, "n": params.n, "max_tokens": params.max_tokens,
                            "temperature": params.temperature, "top_p": params.top_p}
    if seed is not None and not params.greedy:
        body["seed"] = seed
    if params.repetition_penalty != 1.0:
        body["repetition_penalty"] = params.repetition_penalty  # vLLM extension
    return body


def error_detail(body: bytes, limit: int = 1000) -> str:
    """What a server said about a failed request: the OpenAI-style `error.message` when there is one (vLLM's
    reasons for a 400, e.g. a refused sampling setting), else the start of the raw body."""
    text = body.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:limit]
    error = payload.get("error") if isinstance(payload, dict) else None
    message = (error if isinstance(error, dict) else payload if isinstance(payload, dict) else {}).get("message")
    return (message if isinstance(message, str) and message else text)[:limit]


def verdict_body(model: str, prompt: Prompt, top_logprobs: int) -> dict[str, Any]:
    body = chat_body(model, prompt, SamplingParams(max_tokens=1, temperature=0.0, n=1), None)
    body.update(logprobs=True, top_logprobs=top_logprobs)
    return body


def to_completions(response: dict) -> list[Completion]:
    """Chat (`message.content`) and text (`text`) choices alike."""
    choices = sorted(response["choices"], key=lambda c: c.get("index", 0))
    completions = []
    for choice in choices:
        content = choice["text"] if "text" in choice else choice["message"].get("content")
        # A server's JSON may carry a lone surrogate escape (a sample cut inside an emoji): U+FFFD, as at ingest.
        text = without_lone_surrogates(content or "")
        tokens = _choice_tokens(choice, response, len(choices))
        completions.append(Completion(text, tokens, "length" if choice.get("finish_reason") == "length" else "stop"))
    return completions


def _choice_tokens(choice: dict, response: dict, n: int) -> int:
    """Generated tokens of one choice: its logprob entries if present, else an even share of usage."""
    logprobs = choice.get("logprobs") or {}
    entries = logprobs.get("content") or logprobs.get("tokens")  # chat, text
    if entries:
        return len(entries)
    return int((response.get("usage") or {}).get("completion_tokens") or 0) // max(1, n)


def read_verdict_probs(response: dict, candidates: Sequence[str]) -> dict[str, float]:
    """Candidate probabilities from the first token's top logprobs, matched on token text (" 4" counts as "4").
    Chat replies list them as `content[0].top_logprobs` entries, text replies as `top_logprobs[0]`, a mapping."""
    logprobs = response["choices"][0].get("logprobs") or {}
    if logprobs.get("content"):
        top = [(e["token"], e["logprob"]) for e in logprobs["content"][0].get("top_logprobs", [])]
    else:
        top = list(((logprobs.get("top_logprobs") or [None])[0] or {}).items())
    probs = {c: 0.0 for c in candidates}
    for token, logprob in top:
        if token.strip() in probs:
            probs[token.strip()] += math.exp(logprob)
    return probs


def conservative_cut(text: str, max_tokens: int) -> tuple[str, bool]:
    """Without the server's tokenizer: a prefix that no common tokenizer makes longer than `max_tokens`.
    Every character outside ASCII counts as many tokens as its UTF-8 bytes (byte-fallback SentencePiece, such
    as Mistral's, spells a CJK character in three), and every two ASCII characters as one (English runs near
    four per token; digits and code near two). Text from the adversarial corner (ASCII punctuation, one token
    each) can still overflow: a served judge should be a server with /tokenize (vLLM)."""
    budget = 2 * max_tokens  # in half tokens
    for index, char in enumerate(text):
        budget -= 1 if char < "\x80" else 2 * len(char.encode("utf-8", "surrogatepass"))
        if budget < 0:
            return text[:index], True
    return text, False


def check_options(options: dict, key: str = "engines.<role>.options") -> None:
    """Refuse option names the engine does not read (a misspelt `max_retries` would silently not apply)."""
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise ValueError(f"{key}: unknown openai engine option(s) {', '.join(unknown)} "
                         f"(it takes {', '.join(OPTION_DEFAULTS)})")


class OpenAIEngine:
    def __init__(self, config: EngineConfig):
        check_options(config.options)
        self.config = config
        self.model_id = config.model
        self.stats = EngineStats()
        self.options = {**OPTION_DEFAULTS, **config.options}
        base_url = self.options["base_url"] or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ValueError(f"openai engine for {config.model}: set engines.<role>.options.base_url or OPENAI_BASE_URL")
        self.base_url = base_url.rstrip("/")
        self.prompt_format = config.prompt_format
        self.sends_text = config.prompt_format != CHAT_TEMPLATE  # rendered here, to /completions
        self.merge_system = False  # the server's template refused a system message: merged since
        self.url = self.base_url + ("/completions" if self.sends_text else "/chat/completions")
        self._key = os.environ.get(self.options["api_key_env"], "")
        self._no_tokenizer = False  # the server has no /tokenize (found out on first use)
        self.retries = 0  # request tries beyond the first, over the engine's life
        self.failed_requests = 0  # requests that still failed after their retries
        # The server decides which weights it serves; pin them where it starts (e.g. `vllm serve --revision`).
        self.revision = None
        if config.revision:
            log.info("openai engine: revision %r not sent: the server at %s serves its own weights",
                     config.revision, base_url)

    # ------------------------------------------------------------------------------------------ requests
    def _post_all(self, bodies: list[dict]) -> list[dict | RequestFailed]:
        """Every body sent (request order kept), each reply or the error it ended with."""
        started, retries_before = time.monotonic(), self.retries
        replies = asyncio.run(self._send_all(bodies))
        failed = [r for r in replies if isinstance(r, RequestFailed)]
        self.failed_requests += len(failed)
        self.stats.extra.update(retries=self.retries, failed_requests=self.failed_requests)
        log.info("%s: %d requests in %.1fs (%d retries, %d failed)", self.model_id, len(bodies),
                 time.monotonic() - started, self.retries - retries_before, len(failed))
        for reply in replies:
            if not isinstance(reply, RequestFailed):
                self.stats.prompt_tokens += int((reply.get("usage") or {}).get("prompt_tokens") or 0)
        return replies

    async def _send_all(self, bodies: list[dict]) -> list[dict | RequestFailed]:
        import openai

        tries = 0

        async def count_try(request) -> None:
            nonlocal tries
            tries += 1

        # A client per batch: its connection pool belongs to this event loop. The hook counts every try, so
        # the retries the client makes on its own show in the stats. A server without a key ignores the token.
        http_client = openai.DefaultAsyncHttpxClient(event_hooks={"request": [count_try]})
        async with openai.AsyncOpenAI(base_url=self.base_url, api_key=self._key or "unused",
                                      max_retries=int(self.options["max_retries"]),
                                      timeout=float(self.options["timeout_s"]), http_client=http_client) as client:
            slots = asyncio.Semaphore(max(1, int(self.options["max_concurrency"])))

            async def send(body: dict) -> dict | RequestFailed:
                async with slots:
                    return await self._send(client, body)

            replies = await asyncio.gather(*(send(b) for b in bodies))
        self.retries += max(0, tries - len(bodies))
        return list(replies)

    async def _send(self, client, body: dict) -> dict | RequestFailed:
        import openai

        standard = {k: v for k, v in body.items() if k in OPENAI_FIELDS}
        extensions = {k: v for k, v in body.items() if k not in OPENAI_FIELDS}
        try:
            # the raw reply, read as JSON: skips building and dumping the client's typed models (most of its cost)
            endpoint = client.completions if "prompt" in body else client.chat.completions
            reply = await endpoint.with_raw_response.create(**standard, extra_body=extensions or None)
        except openai.APIStatusError as exc:
            detail = error_detail(exc.response.content) if exc.response is not None else str(exc)
            return RequestFailed(f"{self.url} answered {exc.status_code} for {self.model_id}: {detail}")
        except openai.APITimeoutError:
            return RequestFailed(f"{self.url} timed out for {self.model_id} "
                                 f"(timeout_s {self.options['timeout_s']}, {self.options['max_retries']} retries)")
        except openai.APIConnectionError as exc:
            return RequestFailed(f"{self.url} unreachable for {self.model_id}: {exc.__cause__ or exc}")
        return json.loads(reply.content)

    # -------------------------------------------------------------------------------------------- API
    def _body(self, prompt: Prompt, params: SamplingParams, seed: int | None) -> dict[str, Any]:
        """The request for one prompt in the role's format: rendered text, or messages for the server's template."""
        if prompt.text is not None or self.sends_text:
            text = prompt.text if prompt.text is not None else render_text(self.prompt_format, prompt.messages)
            return text_body(self.model_id, text + prompt.assistant_prefix, params, seed)
        if self.merge_system:
            prompt = replace(prompt, messages=tuple(merge_system(prompt.messages)))
        return chat_body(self.model_id, prompt, params, seed)

    def _ask(self, prompts: Sequence[Prompt], body) -> list[dict | RequestFailed]:
        """Every prompt's reply (`body(prompt)` builds its request); prompts whose system message the server's
        chat template refused are asked again with it merged, as is every later prompt."""
        replies = self._post_all([body(p) for p in prompts])
        if self.sends_text or self.merge_system:
            return replies
        refused = [i for i, r in enumerate(replies)
                   if isinstance(r, RequestFailed) and SYSTEM_REFUSED.search(str(r)) and has_system(prompts[i].messages)]
        if refused:
            log.warning("%s: the server's chat template refuses a system message (%s): merged into the first user "
                        "turn from now on", self.model_id, replies[refused[0]])
            self.merge_system = True
            self.failed_requests -= len(refused)  # asked again: counted by how that ends
            for i, reply in zip(refused, self._post_all([body(prompts[i]) for i in refused])):
                replies[i] = reply
        return replies

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        def run(request: SamplingParams) -> list[list[Completion]]:
            replies = self._ask(prompts, lambda p: self._body(p, request, prompt_seed(request.seed or 0, p)))
            return [failed_completions(str(r), request.n) if isinstance(r, RequestFailed) else to_completions(r)
                    for r in replies]

        return generate_n(run, params, self.stats)

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> list[dict[str, float] | EngineError]:
        """Without the server's tokenizer we cannot tell whether "[RESULT] " ends in a space token
        (SentencePiece) or glues the space to the digit (byte-level BPE): ask as written, and where no
        candidate shows up, ask again with the trailing space left to the verdict token."""
        top = int(self.options["verdict_top_logprobs"])

        def ask(batch: Sequence[Prompt]) -> list[dict[str, float] | EngineError]:
            replies = self._ask(batch, lambda p: self._verdict_body(p, top))
            return [EngineError(str(r)) if isinstance(r, RequestFailed) else read_verdict_probs(r, candidates)
                    for r in replies]

        probs = ask(prompts)
        retry = [i for i, (p, found) in enumerate(zip(prompts, probs))
                 if isinstance(found, dict) and not any(found.values()) and p.assistant_prefix != p.assistant_prefix.rstrip()]
        if retry:
            stripped = [replace(prompts[i], assistant_prefix=prompts[i].assistant_prefix.rstrip()) for i in retry]
            for i, found in zip(retry, ask(stripped)):
                probs[i] = found
        self.stats.scored_prompts += len(prompts)
        return probs

    def _verdict_body(self, prompt: Prompt, top_logprobs: int) -> dict[str, Any]:
        if prompt.text is None and not self.sends_text:
            if self.merge_system:
                prompt = replace(prompt, messages=tuple(merge_system(prompt.messages)))
            return verdict_body(self.model_id, prompt, top_logprobs)
        body = self._body(prompt, SamplingParams(max_tokens=1, temperature=0.0, n=1), None)
        body.update(logprobs=top_logprobs)  # the completions API takes the count here
        return body

    # ------------------------------------------------------------------------------------- truncation
    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """`text` cut to `max_tokens` of the served model's tokens, by the server's own tokenizer where it has
        one (vLLM's /tokenize and /detokenize), else by `conservative_cut`. A text of no more UTF-8 bytes than
        `max_tokens` needs no request: byte-level and byte-fallback tokenizers never make more tokens than bytes."""
        if len(text.encode("utf-8", "surrogatepass")) <= max_tokens:
            return text, False
        tokens = self._server_tokens(text)
        if tokens is None:
            return conservative_cut(text, max_tokens)
        if len(tokens) <= max_tokens:
            return text, False
        cut = self._server_text(tokens[:max_tokens])
        return (cut, True) if cut is not None else conservative_cut(text, max_tokens)

    def _server_tokens(self, text: str) -> list[int] | None:
        reply = self._post_root("tokenize", {"model": self.model_id, "prompt": text, "add_special_tokens": False})
        return reply.get("tokens") if reply else None

    def _server_text(self, tokens: list[int]) -> str | None:
        reply = self._post_root("detokenize", {"model": self.model_id, "tokens": tokens})
        # A cut inside a character decodes to U+FFFD: dropped, as the hf engine's judge shape does.
        return reply["prompt"].rstrip("\ufffd") if reply and isinstance(reply.get("prompt"), str) else None

    def _post_root(self, route: str, body: dict) -> dict | None:
        """POST to the server's root (vLLM serves /tokenize beside /v1); None when it has no such route (then
        never asked again) or the request failed (logged; the conservative rule applies to that text)."""
        if self._no_tokenizer:
            return None
        import httpx

        root = self.base_url.removesuffix("/v1")
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        try:
            reply = httpx.post(f"{root}/{route}", json=body, headers=headers, timeout=TOKENIZE_TIMEOUT_S)
        except httpx.HTTPError as exc:
            log.warning("%s: /%s failed (%s): cut by the conservative rule", self.model_id, route, exc)
            return None
        if reply.status_code in (404, 405):
            self._no_tokenizer = True
            log.info("%s: the server has no /%s: documents are cut by the conservative rule (pugc.engines."
                     "openai_engine.conservative_cut)", self.model_id, route)
            return None
        if reply.status_code != 200:
            log.warning("%s: /%s answered %d: cut by the conservative rule", self.model_id, route, reply.status_code)
            return None
        return reply.json()

    def close(self) -> None:
        pass
