"""Engine factory: backends are imported only when a recipe asks for them."""
from __future__ import annotations

from pugc.config import EngineConfig
from pugc.engines.base import Completion, Engine, EngineStats, Prompt, SamplingParams

__all__ = ["Completion", "Engine", "EngineStats", "Prompt", "SamplingParams", "make_engine"]

BACKENDS = ("hf",)


def make_engine(config: EngineConfig) -> Engine:
    if config.backend == "hf":
        from pugc.engines.hf import HFEngine

        return HFEngine(config)
    raise ValueError(
        f"engine backend {config.backend!r} is not available; choose one of {', '.join(BACKENDS)}"
    )
