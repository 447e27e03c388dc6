"""The vLLM engine: offline `vllm.LLM` on GPUs, for sampling and judging at paper scale.

- One request per prompt carries all n samples; each request has its own seed (`prompt_seed`), so results
  do not depend on batching or sharding.
- Automatic prefix caching is on: the judge prompt's long shared prefix (rubric, question, reference) is
  computed once for the K responses x N samples of a question.
- `expected` verdicts read the top-k logprobs of one generated token at the verdict position.
- vLLM pins its own torch and transformers, so it lives in the vllm image (images/vllm), never in the CPU
  environment; everything that does not need vllm itself is plain functions, tested without it.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any, Sequence

from pugc.config import EngineConfig
from pugc.engines.base import (Completion, EngineStats, LocalTokenizer, Prompt, SamplingParams, generate_n,
                               prompt_seed)
from pugc.models import hub_revision, resolve_model

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "the vllm engine needs the vllm package, which pins its own torch: run the LLM stages in the "
    "pugc vllm image (images/vllm) or `pip install -r images/vllm/requirements.txt` in a separate GPU environment"
)
# LLM(...) keyword arguments a recipe may set under engines.<role>.options, with our defaults.
LLM_OPTION_DEFAULTS = {
    "tensor_parallel_size": 1,
    "gpu_memory_utilization": 0.9,
    "enable_prefix_caching": True,
    "load_format": "auto",  # "dummy": random weights, for throughput tests without downloads
    "trust_remote_code": False,
}
VERDICT_TOP_LOGPROBS = 20  # vLLM's default max_logprobs


def llm_kwargs(config: EngineConfig, seed: int = 0) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM` from an engine config (options pass through, recipe wins)."""
    options = {k: v for k, v in config.options.items() if k not in ("verdict_top_logprobs",)}
    kwargs = {**LLM_OPTION_DEFAULTS, **options, "model": resolve_model(config.model), "seed": seed}
    if config.dtype != "auto":
        kwargs["dtype"] = config.dtype
    if config.max_model_len:
        kwargs["max_model_len"] = config.max_model_len
    revision = hub_revision(config.model, config.revision)
    if revision:  # the tokenizer is pinned too: it comes from the same repository
        kwargs.update(revision=revision, tokenizer_revision=revision)
    return kwargs


def sampling_kwargs(params: SamplingParams, seed: int | None) -> dict[str, Any]:
    """Keyword arguments for `vllm.SamplingParams`: the same names, plus a per-request seed."""
    kwargs = {"n": params.n, "max_tokens": params.max_tokens, "temperature": params.temperature,
              "top_p": params.top_p, "repetition_penalty": params.repetition_penalty}
    if not params.greedy and seed is not None:
        kwargs["seed"] = seed
    return kwargs


def verdict_kwargs(top_logprobs: int = VERDICT_TOP_LOGPROBS) -> dict[str, Any]:
    """One greedy token with the top logprobs of the position: enough to read a verdict distribution."""
    return {"n": 1, "max_tokens": 1, "temperature": 0.0, "logprobs": top_logprobs}


def to_completions(request_output: Any) -> list[Completion]:
    """vLLM's RequestOutput -> our Completions (text, generated token count, stop/length)."""
    return [
        Completion(text=o.text, num_tokens=len(o.token_ids), finish_reason="length" if o.finish_reason == "length" else "stop")
        for o in request_output.outputs
    ]


def read_verdict_probs(request_output: Any, candidate_ids: Sequence[int], candidates: Sequence[str]) -> dict[str, float]:
    """Probabilities of the candidate tokens at the first generated position; absent from the top-k -> 0."""
    first_position = request_output.outputs[0].logprobs[0]  # {token_id: Logprob(logprob=...)}
    probs = {}
    for candidate, token_id in zip(candidates, candidate_ids):
        entry = first_position.get(token_id)
        probs[candidate] = math.exp(entry.logprob) if entry is not None else 0.0
    return probs


class VLLMEngine(LocalTokenizer):
    def __init__(self, config: EngineConfig, seed: int = 0):
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(INSTALL_HINT) from exc
        self._vllm = vllm
        self.config = config
        self.model_id = config.model
        self.stats = EngineStats()
        self.top_logprobs = int(config.options.get("verdict_top_logprobs", VERDICT_TOP_LOGPROBS))
        kwargs = llm_kwargs(config, seed)
        self.revision = kwargs.get("revision")
        self.llm = vllm.LLM(**kwargs)
        self.use_tokenizer(self.llm.get_tokenizer(), config.prompt_format)
        log.info("vllm engine: %s (tp=%s)", config.model, kwargs["tensor_parallel_size"])

    def _run(self, token_lists: list[list[int]], sampling: list[dict]) -> list[Any]:
        requests = [{"prompt_token_ids": tokens} for tokens in token_lists]
        params = [self._vllm.SamplingParams(**kwargs) for kwargs in sampling]
        started = time.monotonic()
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        self.stats.prompt_tokens += sum(len(t) for t in token_lists)
        log.info("%s: %d requests in %.1fs", self.model_id, len(requests), time.monotonic() - started)
        return outputs

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        token_lists = [self.prompt_ids(p) for p in prompts]

        def run(request: SamplingParams) -> list[list[Completion]]:
            sampling = [sampling_kwargs(request, prompt_seed(request.seed or 0, p)) for p in prompts]
            return [to_completions(o) for o in self._run(token_lists, sampling)]

        return generate_n(run, params, self.stats)

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> list[dict[str, float]]:
        positions = [self.verdict_position(p, candidates) for p in prompts]
        outputs = self._run([tokens for tokens, _ in positions], [verdict_kwargs(self.top_logprobs)] * len(prompts))
        self.stats.scored_prompts += len(prompts)
        return [read_verdict_probs(o, ids, candidates) for o, (_, ids) in zip(outputs, positions)]

    def close(self) -> None:
        import gc

        self.llm = None
        gc.collect()
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001  (best effort: freeing GPU memory between stages)
            pass
