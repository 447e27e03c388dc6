"""The transformers engine: CPU or GPU, batched, left-padded, prompts sorted by length to cut padding.

Sampling is seeded per prompt (`prompt_seed`), with one torch.Generator per generated row, so a prompt's
samples do not depend on which other prompts share its batch or its shard.
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

from pugc.config import EngineConfig
from pugc.engines.base import (Completion, EngineStats, LocalTokenizer, Prompt, SamplingParams, generate_n,
                               prompt_seed)
from pugc.models import hub_revision, resolve_model

log = logging.getLogger(__name__)


def seeded_sampler(generators, temperature: float, top_p: float):
    """A logits processor that samples each row with its own generator and returns a one-hot choice.

    `generate` then runs greedy over these scores; repetition penalty and other built-in processors still
    apply before it (transformers appends custom processors after its own).
    """
    import torch
    from transformers import LogitsProcessor

    class SeededSampler(LogitsProcessor):
        def __call__(self, input_ids, scores):
            probs = torch.softmax(scores.float() / max(temperature, 1e-5), dim=-1)
            if top_p < 1.0:
                sorted_probs, order = probs.sort(dim=-1, descending=True)
                outside = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest set reaching top_p
                sorted_probs[outside] = 0.0
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
            choice = torch.full_like(scores, float("-inf"))
            for row, generator in enumerate(generators):
                token = torch.multinomial(probs[row], 1, generator=generator)
                choice[row, token] = 0.0
            return choice

    return SeededSampler()


class TransformersModel(LocalTokenizer):
    """What the transformers engines share: the weights' place, device, dtype and pinned revision, and the
    left-padding tokenizer (EOS pads where the model has no pad token)."""

    def _load(self, config: EngineConfig, model_class):
        import torch
        from transformers import AutoTokenizer

        self.config = config
        self.model_id = config.model
        self.stats = EngineStats()
        path = resolve_model(config.model)
        self.device = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = {
            "auto": torch.bfloat16 if self.device.startswith("cuda") else torch.float32,
            "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
        }[config.dtype]
        self.revision = hub_revision(config.model, config.revision)
        pinned = {"revision": self.revision} if self.revision else {}
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left", **pinned, **config.options.get("tokenizer", {}))
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.use_tokenizer(tokenizer, config.prompt_format)
        self.model = model_class.from_pretrained(path, dtype=dtype, **pinned, **config.options.get("model", {}))
        self.model.to(self.device).eval()
        return dtype

    def _batches(self, token_lists: list[list[int]], size: int):
        """Yield (indices, input_ids, attention_mask) batches, longest prompts first, left-padded."""
        import torch

        order = sorted(range(len(token_lists)), key=lambda i: -len(token_lists[i]))
        for start in range(0, len(order), max(1, size)):
            indices = order[start : start + size]
            width = max(len(token_lists[i]) for i in indices)
            pad = self.tokenizer.pad_token_id
            ids = [[pad] * (width - len(token_lists[i])) + token_lists[i] for i in indices]
            mask = [[0] * (width - len(token_lists[i])) + [1] * len(token_lists[i]) for i in indices]
            yield indices, torch.tensor(ids, device=self.device), torch.tensor(mask, device=self.device)


class HFEngine(TransformersModel):
    def __init__(self, config: EngineConfig):
        from transformers import AutoModelForCausalLM

        dtype = self._load(config, AutoModelForCausalLM)
        self.max_len = config.max_model_len or getattr(self.model.config, "max_position_embeddings", None)
        log.info("hf engine: %s%s on %s (%s)", config.model, f"@{self.revision}" if self.revision else "", self.device, dtype)

    # ------------------------------------------------------------------------------------------ helpers
    def _check_length(self, tokens: list[int], max_new: int, index: int) -> None:
        if self.max_len and len(tokens) + max_new > self.max_len:
            raise ValueError(
                f"prompt {index} has {len(tokens)} tokens + {max_new} to generate, over the model's "
                f"{self.max_len}-token context ({self.model_id}); raise engines.*.max_model_len or shorten the input"
            )

    # -------------------------------------------------------------------------------------------- API
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """Each prompt expands to n rows (one per sample); greedy decoding runs once and is copied n times."""
        return generate_n(lambda request: self._generate_rows(prompts, request), params, self.stats)

    def _generate_rows(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        prompt_tokens = [self.prompt_ids(p) for p in prompts]
        for i, tokens in enumerate(prompt_tokens):
            self._check_length(tokens, params.max_tokens, i)
        samples = params.n
        rows = [(p, s) for p in range(len(prompts)) for s in range(samples)]
        by_row: dict[tuple[int, int], Completion] = {}
        started, done = time.monotonic(), 0
        for indices, ids, mask in self._batches([prompt_tokens[p] for p, _ in rows], self.config.batch_size * samples):
            batch_rows = [rows[i] for i in indices]
            for row, tokens in zip(batch_rows, self._generate_batch(ids, mask, batch_rows, prompts, params)):
                by_row[row] = self._completion(tokens)
            done += len(indices)
            self.stats.prompt_tokens += int(mask.sum())
            self._progress("generate", done // samples, len(prompts), started)
        return [[by_row[(p, s)] for s in range(samples)] for p in range(len(prompts))]

    def _generate_batch(self, ids, mask, rows, prompts, params) -> list[list[int]]:
        import torch
        from transformers import LogitsProcessorList

        extra = {}
        if not params.greedy:
            generators = [
                torch.Generator(device=self.device).manual_seed(prompt_seed(params.seed or 0, prompts[p], s))
                for p, s in rows
            ]
            extra["logits_processor"] = LogitsProcessorList([seeded_sampler(generators, params.temperature, params.top_p)])
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=params.max_tokens, do_sample=False,
                repetition_penalty=params.repetition_penalty, pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id, **extra,
            )
        return out[:, ids.shape[1]:].tolist()

    def _completion(self, tokens: list[int]) -> Completion:
        eos = self.tokenizer.eos_token_id
        if eos in tokens:
            cut = tokens.index(eos)
            return Completion(self.tokenizer.decode(tokens[:cut], skip_special_tokens=True), cut + 1, "stop")
        return Completion(self.tokenizer.decode(tokens, skip_special_tokens=True), len(tokens), "length")

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> list[dict[str, float]]:
        import torch

        positions = [self.verdict_position(p, candidates) for p in prompts]
        for i, (tokens, _) in enumerate(positions):
            self._check_length(tokens, 1, i)
        results: list[dict[str, float]] = [{} for _ in prompts]
        started, done = time.monotonic(), 0
        for indices, ids, mask in self._batches([tokens for tokens, _ in positions], self.config.batch_size):
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, -1, :].float()
            probs = torch.softmax(logits, dim=-1)
            for row, index in enumerate(indices):
                results[index] = dict(zip(candidates, probs[row, positions[index][1]].tolist()))
            done += len(indices)
            self.stats.prompt_tokens += int(mask.sum())
            self._progress("score", done, len(prompts), started)
        self.stats.scored_prompts += len(prompts)
        return results

    def top_logprobs(self, prompt: Prompt, k: int) -> list[tuple[str, float]]:
        """The k most likely next tokens after the rendered prompt, as (text, logprob), most likely first."""
        import torch

        ids = torch.tensor([self.prompt_ids(prompt)], device=self.device)
        with torch.inference_mode():
            logprobs = torch.log_softmax(self.model(input_ids=ids).logits[0, -1].float(), dim=-1)
        values, tokens = logprobs.topk(min(k, logprobs.shape[-1]))
        # Each token decoded after a plain one, as a server decodes it in context: SentencePiece's lone "▁" is
        # then " ", not the empty string its decode alone gives.
        anchor = self._encode("a")[-1:]
        skip = len(self.tokenizer.decode(anchor))
        return [(self.tokenizer.decode(anchor + [t])[skip:], v) for t, v in zip(tokens.tolist(), values.tolist())]

    def _progress(self, what: str, done: int, total: int, started: float) -> None:
        step = max(1, total // 4)
        if done == total or done // step != (done - self.config.batch_size) // step:
            log.info("%s %s: %d/%d prompts (%.1fs)", self.model_id, what, done, total, time.monotonic() - started)

    def close(self) -> None:
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
