"""Engine factory: backends are imported only when a recipe asks for them."""
from __future__ import annotations

from pugc.config import EngineConfig
from pugc.engines.base import Completion, Engine, EngineStats, Prompt, SamplingParams

__all__ = ["Completion", "Engine", "EngineStats", "Prompt", "SamplingParams", "make_engine"]


def make_engine(config: EngineConfig) -> Engine:
    if config.backend == "hf":
        from pugc.engines.hf import HFEngine

        return HFEngine(config)
    if config.backend == "vllm":
        from pugc.engines.vllm_engine import VLLMEngine

        return VLLMEngine(config)
    if config.backend == "openai":
        from pugc.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(config)
    if config.backend == "reward_model":
        from pugc.engines.reward_model import RewardModelEngine

        return RewardModelEngine(config)
    raise ValueError(f"engine backend {config.backend!r} is not one of hf, vllm, openai, reward_model")
