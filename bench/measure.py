"""Measurements shared by the CPU and GPU benchmarks: same code, different models and sizes."""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample_ugc.jsonl"


def no_sync() -> None:
    """CPU work is synchronous; on a GPU pass torch.cuda.synchronize so timers see finished kernels."""


def sample_docs(limit: int | None = None) -> list[str]:
    from pugc.io import iter_input_rows

    docs = [r["text"] for _, _, r, e in iter_input_rows(SAMPLE)
            if not e and isinstance(r, dict) and isinstance(r.get("text"), str) and r["text"].strip()]
    return docs[:limit] if limit else docs


def document_prompts(count: int) -> list:
    """One chat prompt per sample document (its first 400 characters)."""
    from pugc.engines.base import Prompt

    return [Prompt(messages=({"role": "user", "content": d[:400]},)) for d in sample_docs(count)]


def tokens_per_second(engine, prompts: list, params, repeats: int, sync: Callable[[], None] = no_sync) -> float:
    """Median generated tokens per second of `engine.generate(prompts, params)`, after a two-prompt warm-up."""
    engine.generate(prompts[:2], params)

    def rate() -> float:
        before = engine.stats.generated_tokens
        sync()
        started = time.perf_counter()
        engine.generate(prompts, params)
        sync()
        return (engine.stats.generated_tokens - before) / (time.perf_counter() - started)

    return round(statistics.median(rate() for _ in range(repeats)), 1)


def judge_rows(responses: int) -> list:
    """`responses` responses to score, four per question, each question with its own document as reference
    (the texts the judge joins by id go into JUDGE_TABLES)."""
    from pugc.records import Response

    docs = sample_docs(max(2, responses // 4))
    for q in range(-(-responses // 4)):
        JUDGE_TABLES["documents"][f"d{q}"] = docs[q % len(docs)]
        JUDGE_TABLES["instructions"][f"q{q}"] = "What would you recommend?"
    return [Response(id=f"q{i // 4}-{i % 4}", instruction_id=f"q{i // 4}", doc_id=f"d{i // 4}",
                     response=docs[(i + 5) % len(docs)][:400], sample_index=i % 4) for i in range(responses)]


JUDGE_TABLES: dict = {"documents": {}, "instructions": {}}  # doc_id -> text, instruction_id -> question


def judge_seconds_per_response(engine, rows: list, config, sync: Callable[[], None] = no_sync) -> float:
    from pugc.stages import reward_scoring

    sync()
    started = time.perf_counter()
    reward_scoring.run(rows, config, engine, **JUDGE_TABLES)
    sync()
    return round((time.perf_counter() - started) / len(rows), 4)


def generation(engine_config: Callable[[int], object], prompts: int, max_tokens: int, repeats: int,
               batch_size: int, sequential_prompts: int | None = None, sync: Callable[[], None] = no_sync) -> dict:
    """hf generation, batched against one prompt at a time: same prompts, greedy, so the same tokens.
    `engine_config(batch_size)` gives the EngineConfig; the sequential side may measure a prefix only."""
    from pugc.engines.base import SamplingParams
    from pugc.engines.hf import HFEngine

    batch = document_prompts(prompts)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    figures = {"prompts": len(batch), "max_tokens": max_tokens, "repeats": repeats}
    for label, size, subset in (("batched", batch_size, batch), ("sequential", 1, batch[:sequential_prompts or len(batch)])):
        engine = HFEngine(engine_config(size))
        figures[f"{label}_tokens_per_s"] = tokens_per_second(engine, subset, params, repeats, sync)
        figures[f"{label}_prompts_measured"] = len(subset)
        engine.close()
    figures["ratio"] = round(figures["batched_tokens_per_s"] / figures["sequential_tokens_per_s"], 2)
    return figures


def judge_modes(engine_config, responses: int, n: int, max_tokens: int, sync: Callable[[], None] = no_sync) -> dict:
    """Judge tokens and time per scored response: sampled (N samples) against expected, same token budget.

    Re-sampling of unparsable verdicts is off here: a random model never writes "[RESULT] n", so re-draws
    would measure the fallback, not the N-sample cost (with it on, the tiny judge costs 3x per response).
    """
    from pugc.engines.hf import HFEngine

    rows = judge_rows(responses)
    figures = {"responses": responses, "n": n, "max_tokens": max_tokens}
    for mode, config in judge_configs(n, max_tokens).items():
        engine = HFEngine(engine_config)
        figures[f"{mode}_seconds_per_response"] = judge_seconds_per_response(engine, rows, config, sync)
        figures[f"{mode}_tokens_per_response"] = round(engine.stats.generated_tokens / responses, 2)
        engine.close()
    figures["token_ratio_expected_over_sampled"] = round(
        figures["expected_tokens_per_response"] / figures["sampled_tokens_per_response"], 4)
    figures["time_ratio_sampled_over_expected"] = round(
        figures["sampled_seconds_per_response"] / figures["expected_seconds_per_response"], 2)
    return figures


def judge_configs(n: int, max_tokens: int) -> dict:
    """The two judge modes on the same token budget, re-sampling off (see judge_modes)."""
    from pugc.config import RewardScoringConfig

    return {"sampled": RewardScoringConfig(mode="sampled", n=n, max_tokens=max_tokens, max_resamples=0),
            "expected": RewardScoringConfig(mode="expected", feedback_max_tokens=max_tokens)}


def write_figures(figures: dict, out: str | Path) -> None:
    """Print the run's figures as one JSON object and keep the same under `out`."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
