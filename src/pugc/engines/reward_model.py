"""A scalar reward model as the reward judge (`engines.judge.backend: reward_model`): a transformers sequence-
classification model (Skywork-Reward, ArmoRM, ...) that reads the whole conversation, question and answer, and
returns one number. It takes no reference answer and writes no feedback; it cannot generate, so it plays only
the judge in reward_scoring (the evaluation needs `engines.evaluator`).

Conversations are rendered with the model's chat template (the role's `prompt_format`), batched longest first
and left-padded (transformers pools the last non-pad token). The reward is the first logit, or the model's own
`score` output where it has one (ArmoRM's preference score, with `options: {model: {trust_remote_code: true}}`).
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

from pugc.config import EngineConfig
from pugc.engines.base import Completion, Prompt, SamplingParams, safe_messages
from pugc.engines.hf import TransformersModel

log = logging.getLogger(__name__)


class RewardModelEngine(TransformersModel):
    def __init__(self, config: EngineConfig):
        from transformers import AutoModelForSequenceClassification

        dtype = self._load(config, AutoModelForSequenceClassification)
        if self.model.config.pad_token_id is None:  # pooling finds the last token by the pad id
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.max_len = config.max_model_len or getattr(self.model.config, "max_position_embeddings", None)
        log.info("reward model: %s on %s (%s)", config.model, self.device, dtype)

    def conversation_ids(self, conversation: Sequence[dict]) -> list[int]:
        """The whole conversation in the model's template, the answer as the last turn (no generation prompt)."""
        messages = safe_messages(conversation, self.special_tokens)
        return self._encode(self._apply_template(messages, generation_prompt=False))

    def score(self, conversations: Sequence[Sequence[dict]]) -> list[float]:
        """One reward per conversation (a user question and the assistant's answer), in order."""
        import torch

        token_lists = [self.conversation_ids(c) for c in conversations]
        for index, tokens in enumerate(token_lists):
            if self.max_len and len(tokens) > self.max_len:
                raise ValueError(f"conversation {index} has {len(tokens)} tokens, over the reward model's "
                                 f"{self.max_len}-token context ({self.model_id}); lower response_sampling.max_tokens "
                                 "or raise engines.judge.max_model_len")
        rewards: list[float] = [0.0] * len(token_lists)
        started = time.monotonic()
        for indices, ids, mask in self._batches(token_lists, self.config.batch_size):
            with torch.inference_mode():
                output = self.model(input_ids=ids, attention_mask=mask)
            values = getattr(output, "score", None)
            values = (values if values is not None else output.logits[:, 0]).float().reshape(len(indices), -1)[:, 0]
            for index, value in zip(indices, values.tolist()):
                rewards[index] = value
            self.stats.prompt_tokens += int(mask.sum())
        self.stats.scored_prompts += len(conversations)
        log.info("%s: %d rewards (%.1fs)", self.model_id, len(conversations), time.monotonic() - started)
        return rewards

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"{self.model_id} is a reward model (backend reward_model): it scores answers, it does not "
                        "generate; it can only be engines.judge")

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        self._refuse()

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> list[dict[str, float]]:
        self._refuse()

    def close(self) -> None:
        self.model = None
