"""The OpenAI-compatible engine: any server speaking /v1/chat/completions (e.g. a vLLM server on the cluster
serving the judge for many runs).

Requests run with bounded concurrency; 429, 5xx, timeouts and dropped connections are retried with
exponential backoff (honouring Retry-After). The key comes from an environment variable, never the recipe.
`expected` verdicts ask for one token with top logprobs; a judge continuing its own answer ("[RESULT] ")
uses vLLM's `continue_final_message` extension.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Sequence

from pugc.config import EngineConfig
from pugc.engines.base import Completion, EngineStats, Prompt, SamplingParams, generate_n, prompt_seed

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
CHARS_PER_TOKEN = 4
OPTION_DEFAULTS = {
    "base_url": None,  # e.g. http://pugc-judge.kubeflow.svc:8000/v1 (manifests/, run namespace); else $OPENAI_BASE_URL
    "api_key_env": "OPENAI_API_KEY",  # name of the environment variable holding the key
    "max_concurrency": 16,
    "max_retries": 6,
    "timeout_s": 300.0,
    "backoff_s": 0.5,  # first retry waits about this long, doubling each time (with jitter)
    "verdict_top_logprobs": 20,
}


class RequestFailed(RuntimeError):
    pass


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
    choices = sorted(response["choices"], key=lambda c: c.get("index", 0))
    completions = []
    for choice in choices:
        text = choice["message"].get("content") or ""
        tokens = _choice_tokens(choice, response, len(choices))
        completions.append(Completion(text, tokens, "length" if choice.get("finish_reason") == "length" else "stop"))
    return completions


def _choice_tokens(choice: dict, response: dict, n: int) -> int:
    """Generated tokens of one choice: its logprob entries if present, else an even share of usage."""
    content = (choice.get("logprobs") or {}).get("content")
    if content:
        return len(content)
    return int(response.get("usage", {}).get("completion_tokens", 0)) // max(1, n)


def read_verdict_probs(response: dict, candidates: Sequence[str]) -> dict[str, float]:
    """Candidate probabilities from the first token's top logprobs, matched on token text (" 4" counts as "4")."""
    content = (response["choices"][0].get("logprobs") or {}).get("content") or []
    probs = {c: 0.0 for c in candidates}
    if content:
        for entry in content[0].get("top_logprobs", []):
            token = entry["token"].strip()
            if token in probs:
                probs[token] += math.exp(entry["logprob"])
    return probs


class OpenAIEngine:
    def __init__(self, config: EngineConfig):
        self.config = config
        self.model_id = config.model
        self.stats = EngineStats()
        self.options = {**OPTION_DEFAULTS, **config.options}
        base_url = self.options["base_url"] or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ValueError(f"openai engine for {config.model}: set engines.<role>.options.base_url or OPENAI_BASE_URL")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._key = os.environ.get(self.options["api_key_env"], "")
        self.retries = 0
        # The server decides which weights it serves; pin them where it starts (e.g. `vllm serve --revision`).
        self.revision = None
        if config.revision:
            log.info("openai engine: revision %r not sent: the server at %s serves its own weights",
                     config.revision, base_url)

    def _post(self, body: dict) -> dict:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        attempts = int(self.options["max_retries"]) + 1
        for attempt in range(attempts):
            delay = float(self.options["backoff_s"]) * (2 ** attempt) * (0.5 + random.random())
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=float(self.options["timeout_s"])) as reply:
                    return json.loads(reply.read())
            except urllib.error.HTTPError as exc:
                detail = error_detail(exc.read())
                if exc.code not in RETRY_STATUS or attempt == attempts - 1:
                    raise RequestFailed(f"{self.url} answered {exc.code} for {self.model_id}: {detail}") from None
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    delay = max(delay, float(retry_after))
                log.warning("%s: HTTP %d, retry %d/%d in %.1fs", self.model_id, exc.code, attempt + 1, attempts - 1, delay)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == attempts - 1:
                    raise RequestFailed(f"{self.url} unreachable for {self.model_id}: {exc}") from None
                log.warning("%s: %s, retry %d/%d in %.1fs", self.model_id, exc, attempt + 1, attempts - 1, delay)
            self.retries += 1
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _post_all(self, bodies: list[dict]) -> list[dict]:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=int(self.options["max_concurrency"])) as pool:
            replies = list(pool.map(self._post, bodies))  # map keeps request order
        log.info("%s: %d requests in %.1fs (%d retries)", self.model_id, len(bodies), time.monotonic() - started, self.retries)
        for reply in replies:
            self.stats.prompt_tokens += int(reply.get("usage", {}).get("prompt_tokens", 0))
        return replies

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        def run(request: SamplingParams) -> list[list[Completion]]:
            bodies = [chat_body(self.model_id, p, request, prompt_seed(request.seed or 0, p)) for p in prompts]
            return [to_completions(r) for r in self._post_all(bodies)]

        return generate_n(run, params, self.stats)

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> list[dict[str, float]]:
        """Without the server's tokenizer we cannot tell whether "[RESULT] " ends in a space token
        (SentencePiece) or glues the space to the digit (byte-level BPE): ask as written, and where no
        candidate shows up, ask again with the trailing space left to the verdict token."""
        top = int(self.options["verdict_top_logprobs"])
        probs = [read_verdict_probs(r, candidates) for r in self._post_all([verdict_body(self.model_id, p, top) for p in prompts])]
        retry = [i for i, (p, found) in enumerate(zip(prompts, probs))
                 if not any(found.values()) and p.assistant_prefix != p.assistant_prefix.rstrip()]
        if retry:
            stripped = [replace(prompts[i], assistant_prefix=prompts[i].assistant_prefix.rstrip()) for i in retry]
            for i, reply in zip(retry, self._post_all([verdict_body(self.model_id, p, top) for p in stripped])):
                probs[i] = read_verdict_probs(reply, candidates)
        self.stats.scored_prompts += len(prompts)
        return probs

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """No tokenizer over HTTP: cut at ~4 characters per token (conservative for English)."""
        limit = max_tokens * CHARS_PER_TOKEN
        return (text, False) if len(text) <= limit else (text[:limit], True)

    def close(self) -> None:
        pass
