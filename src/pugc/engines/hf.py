"""The transformers engine: CPU or GPU, batched, left-padded, prompts sorted by length to cut padding."""
from __future__ import annotations

import logging
import time
from typing import Sequence

from pugc.config import EngineConfig
from pugc.engines.base import Completion, EngineStats, Prompt, SamplingParams
from pugc.models import resolve_model

log = logging.getLogger(__name__)


class HFEngine:
    def __init__(self, config: EngineConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.model_id = config.model
        self.stats = EngineStats()
        path = resolve_model(config.model)
        self.device = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = {
            "auto": torch.bfloat16 if self.device.startswith("cuda") else torch.float32,
            "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
        }[config.dtype]
        self.tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left", **config.options.get("tokenizer", {}))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **config.options.get("model", {}))
        self.model.to(self.device).eval()
        self.max_len = config.max_model_len or getattr(self.model.config, "max_position_embeddings", None)
        log.info("hf engine: %s on %s (%s)", config.model, self.device, dtype)

    # ------------------------------------------------------------------------------------------ helpers
    def render(self, prompt: Prompt) -> str:
        text = self.tokenizer.apply_chat_template(list(prompt.messages), tokenize=False, add_generation_prompt=True)
        return text + prompt.assistant_prefix

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _batches(self, token_lists: list[list[int]]):
        """Yield (indices, input_ids, attention_mask) batches, longest prompts first, left-padded."""
        import torch

        order = sorted(range(len(token_lists)), key=lambda i: -len(token_lists[i]))
        size = max(1, self.config.batch_size)
        for start in range(0, len(order), size):
            indices = order[start : start + size]
            width = max(len(token_lists[i]) for i in indices)
            pad = self.tokenizer.pad_token_id
            ids = [[pad] * (width - len(token_lists[i])) + token_lists[i] for i in indices]
            mask = [[0] * (width - len(token_lists[i])) + [1] * len(token_lists[i]) for i in indices]
            yield indices, torch.tensor(ids, device=self.device), torch.tensor(mask, device=self.device)

    def _check_length(self, tokens: list[int], max_new: int, index: int) -> None:
        if self.max_len and len(tokens) + max_new > self.max_len:
            raise ValueError(
                f"prompt {index} has {len(tokens)} tokens + {max_new} to generate, over the model's "
                f"{self.max_len}-token context ({self.model_id}); raise engines.*.max_model_len or shorten the input"
            )

    # -------------------------------------------------------------------------------------------- API
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        import torch

        token_lists = [self._encode(self.render(p)) for p in prompts]
        for i, tokens in enumerate(token_lists):
            self._check_length(tokens, params.max_tokens, i)
        results: list[list[Completion]] = [[] for _ in prompts]
        eos = self.tokenizer.eos_token_id
        started, done = time.monotonic(), 0
        for batch_number, (indices, ids, mask) in enumerate(self._batches(token_lists)):
            if params.seed is not None:
                torch.manual_seed(params.seed + batch_number)
            sampling = {"do_sample": False} if params.greedy else {
                "do_sample": True, "temperature": params.temperature, "top_p": params.top_p,
            }
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=params.max_tokens,
                    num_return_sequences=params.n, repetition_penalty=params.repetition_penalty,
                    pad_token_id=self.tokenizer.pad_token_id, eos_token_id=eos, **sampling,
                )
            new_tokens = out[:, ids.shape[1]:].tolist()
            for row, tokens in enumerate(new_tokens):
                results[indices[row // params.n]].append(self._completion(tokens, eos))
            done += len(indices)
            self.stats.prompt_tokens += int(mask.sum())
            self._progress("generate", done, len(prompts), started)
        self.stats.prompts += len(prompts)
        self.stats.generated_tokens += sum(c.num_tokens for r in results for c in r)
        return results

    def _completion(self, tokens: list[int], eos: int) -> Completion:
        if eos in tokens:
            cut = tokens.index(eos)
            return Completion(self.tokenizer.decode(tokens[:cut], skip_special_tokens=True), cut + 1, "stop")
        return Completion(self.tokenizer.decode(tokens, skip_special_tokens=True), len(tokens), "length")

    def verdict_position(self, text: str, candidates: Sequence[str]) -> tuple[list[int], list[int]]:
        """Token ids up to where the candidates diverge, and each candidate's first distinct token.

        Tokenising prompt+candidate (not the candidate alone) handles tokenizers that glue a leading space
        to the digit (" 4") or emit a separate space token first (SentencePiece's "▁", "4").
        """
        encoded = [self._encode(text + c) for c in candidates]
        shared = 0
        while all(len(e) > shared for e in encoded) and len({e[shared] for e in encoded}) == 1:
            shared += 1
        if any(len(e) <= shared for e in encoded):
            raise ValueError(f"verdict candidates {list(candidates)} cannot be told apart by one token")
        firsts = [e[shared] for e in encoded]
        if len(set(firsts)) != len(firsts):
            raise ValueError(f"verdict candidates {list(candidates)} share a first token in {self.model_id}")
        return encoded[0][:shared], firsts

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> list[dict[str, float]]:
        import torch

        positions = [self.verdict_position(self.render(p), candidates) for p in prompts]
        for i, (tokens, _) in enumerate(positions):
            self._check_length(tokens, 1, i)
        results: list[dict[str, float]] = [{} for _ in prompts]
        started, done = time.monotonic(), 0
        for indices, ids, mask in self._batches([tokens for tokens, _ in positions]):
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, -1, :].float()
            probs = torch.softmax(logits, dim=-1)
            for row, index in enumerate(indices):
                wanted = positions[index][1]
                values = probs[row, wanted].tolist()
                results[index] = dict(zip(candidates, values))
            done += len(indices)
            self.stats.prompt_tokens += int(mask.sum())
            self._progress("score", done, len(prompts), started)
        self.stats.scored_prompts += len(prompts)
        return results

    def _progress(self, what: str, done: int, total: int, started: float) -> None:
        step = max(1, total // 10)
        if done == total or done // step != (done - self.config.batch_size) // step:
            log.info("%s %s: %d/%d prompts (%.1fs)", self.model_id, what, done, total, time.monotonic() - started)

    def close(self) -> None:
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
