"""DPO (or SimPO) on the preference pairs with TRL; saves a checkpoint `from_pretrained` loads directly."""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from pugc.config import DPOTrainingConfig, EngineConfig
from pugc.engines.formats import is_jinja
from pugc.io import read_records
from pugc.models import hub_revision, resolve_model
from pugc.records import PreferencePair

log = logging.getLogger(__name__)

# Local-run friendly defaults; any of them can be set in the recipe's dpo_training section.
DEFAULT_TRAINER_ARGS = {"report_to": "none", "logging_steps": 1, "save_strategy": "no"}
# Resumable checkpoints kept on the durable volume (a 7B full checkpoint with optimizer state is tens of GB);
# the recipe's `save_total_limit` (a TRL key) overrides it.
KEPT_CHECKPOINTS = 2
COMPUTE_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "no": "float32"}


def _trainer_args(config: DPOTrainingConfig, output_dir: str, on_gpu: bool, save_steps: int | None = None):
    from pugc.training.trl_args import trainer_config_class

    args = {**DEFAULT_TRAINER_ARGS, **config.trainer}
    if save_steps:  # resumable: checkpoints (weights, optimizer, scheduler, RNG states) every save_steps
        args.update(save_strategy="steps", save_steps=save_steps)
        args.setdefault("save_total_limit", KEPT_CHECKPOINTS)
    if args.get("gradient_checkpointing"):  # re-entrant checkpointing breaks DDP's gradient hooks
        args.setdefault("gradient_checkpointing_kwargs", {"use_reentrant": False})
    if config.method == "simpo":
        args.setdefault("loss_type", "simpo")
        args.setdefault("cpo_alpha", 0.0)
    if not on_gpu:
        # TRL's bf16 default needs a GPU; on the CPU bf16 autocast runs only when the recipe asks for it.
        if args.get("fp16"):
            log.warning("no GPU: fp16 from the recipe ignored (training in fp32 on the CPU)")
        args.update(use_cpu=True, bf16=bool(config.trainer.get("bf16", False)), fp16=False)
    # A Trainer told neither bf16 nor fp16 takes the mixed precision a launcher exported (the accelerate
    # configs say bf16): the recipe's precision is set here as well, so every process trains as it says.
    explicit = "fp16" if args.get("fp16") else "bf16" if args.get("bf16", True) else "no"
    os.environ["ACCELERATE_MIXED_PRECISION"] = explicit
    return trainer_config_class(config.method)(output_dir=output_dir, **args)


def precision(config: DPOTrainingConfig, args) -> tuple[str, str]:
    """(master dtype, compute dtype) as configured: the weights AdamW updates, and what the forward pass runs
    in (the Trainer's resolved mixed precision). The report reads both back from the trainer (`used_precision`)."""
    return config.master_dtype, COMPUTE_DTYPES[args.mixed_precision]


def used_precision(trainer) -> tuple[str, str]:
    """What training actually ran in: the trained weights' dtype and the accelerator's mixed precision."""
    master = str(next(trainer.model.parameters()).dtype).removeprefix("torch.")
    return master, COMPUTE_DTYPES.get(str(trainer.accelerator.mixed_precision), str(trainer.accelerator.mixed_precision))


def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def cut_prompts(rows: list[dict], tokenizer, max_prompt_length: int | None) -> int:
    """Cut each chat prompt to `max_prompt_length` tokens (as templated), dropping tokens from the start of its
    earliest messages, so the question at the end survives. Returns how many prompts were cut."""
    if not max_prompt_length:
        return 0

    def length(messages):
        return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"])

    cut = 0
    for row in rows:
        excess = length(row["prompt"]) - max_prompt_length
        if excess <= 0:
            continue
        messages = [dict(m) for m in row["prompt"]]
        for message in messages:
            while excess > 0 and message["content"]:
                ids = tokenizer(message["content"], add_special_tokens=False)["input_ids"]
                message["content"] = tokenizer.decode(ids[min(excess, len(ids)):])
                excess = length(messages) - max_prompt_length
        if excess > 0:
            raise ValueError(f"a prompt's chat template alone is longer than max_prompt_length={max_prompt_length}")
        row["prompt"] = messages
        cut += 1
    return cut


def _peft_config(config: DPOTrainingConfig):
    if config.lora is None:
        return None
    from peft import LoraConfig

    lora = config.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM")


def _digest(path: str) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _latest_checkpoint(folder: str) -> str | None:
    steps = [p for p in Path(folder).glob("checkpoint-*") if p.name.split("-")[1].isdigit()] if Path(folder).is_dir() else []
    return str(max(steps, key=lambda p: int(p.name.split("-")[1]))) if steps else None


def _fault_injection():
    """`PUGC_FAIL_AFTER_STEPS=N`: exit abruptly once a checkpoint at step >= N is saved (resume tests)."""
    from transformers import TrainerCallback

    limit = int(os.environ.get("PUGC_FAIL_AFTER_STEPS", "0"))

    class ExitAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if limit and state.global_step >= limit:
                log.warning("fault injection: exiting after the checkpoint of step %d", state.global_step)
                os._exit(75)

    return [ExitAfterSave()] if limit else []


def _revision(config: DPOTrainingConfig) -> dict:
    revision = hub_revision(config.reference_model, config.reference_revision)
    return {"revision": revision} if revision else {}


def _load_models(config: DPOTrainingConfig, base: str, master: str, compute: str, args, pinned: dict):
    """The policy in the master dtype; for full-parameter DPO a frozen reference in the compute dtype (bf16 under
    bf16 autocast), unless its log-probs are precomputed (then TRL scores the untouched policy once, up front)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=_torch_dtype(master), **pinned)
    # A reference of its own (rounds_reference: initial) is loaded even when its log-probs are precomputed:
    # TRL computes them with the untouched policy only when it is given no reference model.
    own_reference = config.reference_model is not None
    needs_ref = config.method == "dpo" and config.lora is None and (
        own_reference or not getattr(args, "precompute_ref_log_probs", False))
    reference, ref_pinned = (resolve_model(config.reference_model), _revision(config)) if own_reference else (base, pinned)
    ref_model = AutoModelForCausalLM.from_pretrained(reference, dtype=_torch_dtype(compute), **ref_pinned) if needs_ref else None
    if ref_model is not None:
        ref_model.requires_grad_(False).eval()
    return model, ref_model


REWARD_PAIRS = 512  # the final implicit-reward figures are measured on at most this many training pairs


def train(pairs_path: str, output_dir: str, config: DPOTrainingConfig, policy: EngineConfig,
          checkpoint_dir: str | None = None, save_steps: int = 50, strategy: str | None = None) -> dict:
    """Train on the pairs at `pairs_path`; write the model and `training_report.json` to `output_dir`.

    Runs the same in one process and in every process of a launched world (pugc.training.launch): the
    Trainer joins the world torchrun/accelerate set up; only the main process writes. With `checkpoint_dir` (a
    durable path) the trainer saves every `save_steps` steps there and a retried task resumes from the newest.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    pairs = read_records(pairs_path, PreferencePair)
    if not pairs:
        raise ValueError(f"{pairs_path}: no preference pairs to train on (every question was filtered or tied)")
    base = resolve_model(policy.model)
    revision = hub_revision(policy.model, policy.revision)
    pinned = {"revision": revision} if revision else {}
    on_gpu = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(base, **pinned)
    if is_jinja(policy.prompt_format):  # trained (and saved) with the template its responses were sampled in
        tokenizer.chat_template = policy.prompt_format
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    prompts_cut = cut_prompts(rows, tokenizer, config.max_prompt_length)
    dataset = Dataset.from_list(rows)
    work_dir = checkpoint_dir or os.path.join(output_dir, ".trainer")
    # Arguments first: they join the distributed world, and under ZeRO-3 from_pretrained then loads sharded.
    args = _trainer_args(config, work_dir, on_gpu, save_steps if checkpoint_dir else None)
    master, compute = precision(config, args)
    model, ref_model = _load_models(config, base, master, compute, args, pinned)
    resume_from = _latest_checkpoint(work_dir) if checkpoint_dir else None
    if resume_from:
        log.info("dpo_training: resuming from %s", resume_from)
    started = time.monotonic()
    reward_set = dataset.select(range(min(len(dataset), REWARD_PAIRS)))
    trainer = _make_trainer(config, model, ref_model, args, dataset, reward_set, tokenizer)
    result = trainer.train(resume_from_checkpoint=resume_from)
    master, compute = used_precision(trainer)
    rewards = _final_rewards(trainer)
    _save(trainer, config, tokenizer, output_dir)
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    losses = [entry["loss"] for entry in logged]
    # per logged step, for the training report's curves (TRL logs the implicit rewards of each batch)
    history = [{"step": entry.get("step"), "loss": entry["loss"], "reward_accuracy": entry.get("rewards/accuracies"),
                "reward_margin": entry.get("rewards/margins"), "learning_rate": entry.get("learning_rate")}
               for entry in logged]
    report = {
        "base_model": policy.model, "base_revision": revision, "method": config.method, "pairs": len(pairs), "data_digest": _digest(pairs_path),
        "world_size": trainer.accelerator.num_processes, "master_dtype": master, "compute_dtype": compute,
        "strategy": strategy or config.strategy, "reference": _reference_kind(config, args, compute),
        "steps": trainer.state.global_step, "final_loss": losses[-1] if losses else None, "losses": losses,
        "history": history,
        "train_loss": result.training_loss, "beta": args.beta, "learning_rate": args.learning_rate,
        "effective_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps
        * trainer.accelerator.num_processes,
        **rewards, "reward_pairs": len(reward_set), "prompts_cut": prompts_cut,
        "lora": config.lora is not None, "device": "cuda" if on_gpu else "cpu", "resumed_from": resume_from,
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
        "seconds": round(time.monotonic() - started, 3),
    }
    if trainer.accelerator.is_main_process:
        Path(output_dir, "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
        shutil.rmtree(work_dir, ignore_errors=True)
    log.info("dpo_training: %d pairs, %d steps on %d process%s, final loss %s, reward accuracy %.3f, margin %.4f",
             len(pairs), report["steps"], report["world_size"], "" if report["world_size"] == 1 else "es",
             report["final_loss"], report["reward_accuracy"],
             report["reward_margin"])
    return report


def _make_trainer(config: DPOTrainingConfig, model, ref_model, args, dataset, reward_set, tokenizer):
    common = dict(model=model, args=args, train_dataset=dataset, eval_dataset=reward_set, processing_class=tokenizer,
                  peft_config=_peft_config(config), callbacks=_fault_injection())
    if config.method == "simpo":
        from trl.experimental.cpo import CPOTrainer

        return CPOTrainer(**common)
    from trl import DPOTrainer

    # With LoRA the adapter-off model is the reference; with precomputed log-probs TRL needs none kept.
    return DPOTrainer(ref_model=ref_model, **common)


def _final_rewards(trainer) -> dict:
    """Implicit-reward accuracy and margin of the trained policy on the training pairs (DPO: beta x chosen minus
    rejected log-ratio against the reference; SimPO: beta x length-normalised log-prob), gathered over ranks."""
    metrics = trainer.evaluate()
    return {"reward_accuracy": metrics["eval_rewards/accuracies"], "reward_margin": metrics["eval_rewards/margins"],
            "eval_loss": metrics.get("eval_loss")}


def _reference_kind(config: DPOTrainingConfig, args, compute: str) -> str:
    if config.method == "simpo":
        return "none (SimPO is reference-free)"
    if config.lora is not None:
        return "policy with adapters disabled"
    of = f"{config.reference_model} (reference_model)" if config.reference_model else "the starting model"
    if getattr(args, "precompute_ref_log_probs", False):
        return f"log-probs of {of} precomputed before training"
    return f"frozen copy of {of} in {compute}"


def _save(trainer, config: DPOTrainingConfig, tokenizer, output_dir: str) -> None:
    """A checkpoint `from_pretrained` loads: sharded weights gathered by the Trainer (FSDP, ZeRO-3); LoRA merged."""
    if config.lora is not None and config.lora.merge:
        if trainer.accelerator.is_main_process:
            trainer.accelerator.unwrap_model(trainer.model).merge_and_unload().save_pretrained(output_dir)
    else:
        trainer.save_model(output_dir)
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(output_dir)
    trainer.accelerator.wait_for_everyone()
