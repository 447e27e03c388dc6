"""GPU benchmark on a ~1B-parameter Llama-shaped model built locally with random weights (nothing downloaded).

Measures, in one run: the hf engine's batched generation against one prompt at a time, judge scoring in
`sampled` (N=8) against `expected` mode, and 8 TRL DPO steps per strategy (ddp as a world of one, fsdp, ZeRO-3 on
the same GPU: step time, peak GPU memory, first/last loss, reward accuracy). Prints one
JSON object and writes it to --out. Sized to finish within about 5 minutes on one H100. Each section that
fails (a missing package, say) is reported in the JSON and the others still run.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # measure.py lives beside this file

from measure import generation, judge_modes, sample_docs, write_figures  # noqa: E402  (bench/ is not a package)


def build_model(path: Path) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from pugc.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                         num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    params = sum(p.numel() for p in model.parameters())
    del model
    torch.cuda.empty_cache()
    return {"parameters_billion": round(params / 1e9, 3), "layers": 24, "hidden": 2048}


def section(name: str, results: dict, fn, *args):
    started = time.perf_counter()
    try:
        results[name] = fn(*args)
    except Exception as exc:  # noqa: BLE001  (report and go on: one broken section must not hide the rest)
        results[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-1500:]}
    results[name]["section_seconds"] = round(time.perf_counter() - started, 1)
    print(f"{name}: {json.dumps(results[name])[:400]}", file=sys.stderr, flush=True)


def bench_generation(model_path: str) -> dict:
    import torch

    from pugc.config import EngineConfig

    return generation(lambda size: EngineConfig(model=model_path, batch_size=size, dtype="bfloat16"), prompts=128,
                      max_tokens=64, repeats=2, batch_size=64, sequential_prompts=12, sync=torch.cuda.synchronize)


def bench_judge(model_path: str) -> dict:
    import torch

    from pugc.config import EngineConfig

    return judge_modes(EngineConfig(model=model_path, batch_size=32, dtype="bfloat16"), responses=64, n=8,
                       max_tokens=128, sync=torch.cuda.synchronize)


DPO_STRATEGIES = ("ddp", "fsdp", "deepspeed_zero3")


def write_pairs(work: Path) -> Path:
    from pugc.io import write_jsonl
    from pugc.records import PreferencePair

    docs = sample_docs(64)
    pairs = [PreferencePair(prompt=[{"role": "user", "content": d[:200]}], chosen=[{"role": "assistant", "content": d}],
                            rejected=[{"role": "assistant", "content": d[:120]}], score_chosen=5.0, score_rejected=2.0,
                            margin=3.0, instruction_id=f"q{i}", doc_id=f"d{i}", chosen_id="c", rejected_id="r")
             for i, d in enumerate(docs)]
    write_jsonl(work / "pairs.jsonl", pairs)
    return work / "pairs.jsonl"


def bench_dpo(model_path: str, work: Path, strategy: str) -> dict:
    """8 DPO steps of the bf16-saved ~1B model with fp32 masters and bf16 autocast, as the paper recipe trains:
    `ddp` in this process (a world of one), `fsdp` and `deepspeed_zero3` launched as a one-GPU world through
    pugc.training.launch (accelerate launch with the repo's configs), so the sharded code paths really run."""
    from pugc.stage_runner import run_training

    section_ = {"strategy": strategy, "max_steps": 8, "per_device_train_batch_size": 8, "learning_rate": 5e-7,
                "beta": 0.01, "bf16": True, "max_length": 1024, "gradient_checkpointing": True, "logging_steps": 1,
                "lr_scheduler_type": "constant"}
    report = run_training(str(write_pairs(work)), str(work / f"dpo-{strategy}"), section_,
                          {"policy": {"model": model_path}}, {"dpo_processes_per_node": 1})["training"]
    return {"strategy": strategy, "world_size": report["world_size"], "master_dtype": report["master_dtype"],
            "compute_dtype": report["compute_dtype"], "steps": report["steps"],
            "step_seconds": round(report["seconds"] / report["steps"], 3), "first_loss": report["losses"][0],
            "last_loss": report["losses"][-1], "reward_accuracy": report["reward_accuracy"],
            "reward_margin": report["reward_margin"], "peak_gpu_memory_gib": report["peak_gpu_memory_gib"],
            "batch": 8, "max_length": 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu.json"))
    parser.add_argument("--strategies", default=",".join(DPO_STRATEGIES), help="DPO strategies to time, comma-separated")
    args = parser.parse_args()
    import torch
    import transformers

    from pugc.logs import setup_logging

    setup_logging()
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "transformers": transformers.__version__, "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_path = str(work / "llama-1b")
        section("model", results, build_model, Path(model_path))
        section("generation_batched_vs_sequential", results, bench_generation, model_path)
        section("judge_sampled_vs_expected", results, bench_judge, model_path)
        for strategy in args.strategies.split(","):
            section(f"dpo_{strategy}", results, bench_dpo, model_path, work, strategy)
    write_figures(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
