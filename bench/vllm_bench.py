"""vLLM beside the hf engine on the same tiny model (pugc-tiny/judge-hd32: 32-dim heads, which vLLM's CPU
attention needs), measured in one run in the vLLM environment, where both engines run on the same torch.

    make bench        # runs this as a child of cpu_bench.py
    PYTHONPATH=src <vllm env>/bin/python bench/vllm_bench.py    # alone: prints one JSON object

Figures: generation throughput (generated tokens/s, greedy and n=4 sampling) hf vs vllm, and the judge
(reward_scoring, expected and sampled) on vllm with automatic prefix caching on vs off.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py lives beside this file

from measure import document_prompts, judge_configs, judge_rows, judge_seconds_per_response, tokens_per_second  # noqa: E402

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process: ~3 s start-up, not ~40 s
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; unset, vLLM reserves ~10 GiB
MODEL = "pugc-tiny/judge-hd32"
# no graph capture; chunked prefill off (seeded batches over one engine step crash on CPU otherwise)
VLLM_CPU_OPTIONS = {"enforce_eager": True, "enable_chunked_prefill": False}


def make_engine(backend: str, **options):
    from pugc.config import EngineConfig
    from pugc.engines.hf import HFEngine
    from pugc.engines.vllm_engine import VLLMEngine

    config = EngineConfig(backend=backend, model=MODEL, dtype="float32", batch_size=32, max_model_len=2048,
                          options={**VLLM_CPU_OPTIONS, **options} if backend == "vllm" else {})
    return VLLMEngine(config) if backend == "vllm" else HFEngine(config)


def bench_generation(prompts: int = 64, max_tokens: int = 32, repeats: int = 3) -> dict:
    from pugc.engines.base import SamplingParams

    batch = document_prompts(prompts)
    regimes = {"greedy": SamplingParams(max_tokens=max_tokens, temperature=0.0),
               "sampled_n4": SamplingParams(max_tokens=max_tokens, temperature=1.0, top_p=0.95, n=4, seed=0)}
    figures = {"model": MODEL, "prompts": len(batch), "max_tokens": max_tokens, "repeats": repeats, "hf_batch_size": 32}
    for backend in ("hf", "vllm"):
        engine = make_engine(backend)
        for regime, params in regimes.items():
            figures[f"{backend}_{regime}_tokens_per_s"] = tokens_per_second(engine, batch, params, repeats)
        engine.close()
    for regime in regimes:
        figures[f"{regime}_ratio_vllm_over_hf"] = round(
            figures[f"vllm_{regime}_tokens_per_s"] / figures[f"hf_{regime}_tokens_per_s"], 2)
    return figures


def bench_prefix_caching(responses: int = 32, n: int = 8, max_tokens: int = 48) -> dict:
    """The judge's prompts share long prefixes (task, rubric, question, reference across a question's K responses;
    in expected mode the verdict pass re-reads the prompt plus the feedback just written)."""
    configs = judge_configs(n, max_tokens)
    # questions of their own for the warm-up and each mode, so no run finds another's prompts in the cache
    rows = judge_rows(4 + responses * len(configs))
    warm_up, measured = rows[:4], {mode: rows[4 + i * responses: 4 + (i + 1) * responses] for i, mode in enumerate(configs)}
    figures = {"model": MODEL, "responses": responses, "n": n, "max_tokens": max_tokens}
    for caching in (True, False):
        engine = make_engine("vllm", enable_prefix_caching=caching)
        label = "on" if caching else "off"
        for mode, config in configs.items():
            judge_seconds_per_response(engine, warm_up, config)
            figures[f"{mode}_caching_{label}_seconds_per_response"] = judge_seconds_per_response(engine, measured[mode], config)
        engine.close()
    for mode in ("expected", "sampled"):
        figures[f"{mode}_speedup_caching_on"] = round(
            figures[f"{mode}_caching_off_seconds_per_response"] / figures[f"{mode}_caching_on_seconds_per_response"], 2)
    return figures


def main() -> int:
    import torch
    import vllm

    from pugc.logs import setup_logging

    setup_logging()
    import logging

    logging.getLogger("pugc").setLevel(logging.WARNING)
    figures = {"vllm": vllm.__version__, "torch": torch.__version__,
               "generation_hf_vs_vllm": bench_generation(), "judge_vllm_prefix_caching_on_vs_off": bench_prefix_caching()}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
