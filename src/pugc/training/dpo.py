"""DPO (or SimPO) on the preference pairs with TRL; saves a checkpoint `from_pretrained` loads directly."""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from pugc.config import DPOTrainingConfig, EngineConfig
from pugc.io import read_records
from pugc.models import resolve_model
from pugc.records import PreferencePair

log = logging.getLogger(__name__)

# Local-run friendly defaults; any of them can be set in the recipe's dpo_training section.
DEFAULT_TRAINER_ARGS = {"report_to": "none", "logging_steps": 1, "save_strategy": "no"}


def _trainer_args(config: DPOTrainingConfig, output_dir: str, on_gpu: bool, save_steps: int | None = None):
    from pugc.training.trl_args import trainer_config_class

    args = {**DEFAULT_TRAINER_ARGS, **config.trainer}
    if save_steps:  # resumable: checkpoints (weights, optimizer, scheduler, RNG states) every save_steps
        args.update(save_strategy="steps", save_steps=save_steps)
    if config.method == "simpo":
        args.setdefault("loss_type", "simpo")
        args.setdefault("cpo_alpha", 0.0)
    if not on_gpu:  # TRL defaults to bf16, which needs a GPU; on CPU train in fp32
        if args.get("bf16") or args.get("fp16"):
            log.warning("no GPU: training in fp32 on the CPU (bf16/fp16 from the recipe ignored)")
        args.update(use_cpu=True, bf16=False, fp16=False)
    return trainer_config_class(config.method)(output_dir=output_dir, **args)


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


def train(pairs_path: str, output_dir: str, config: DPOTrainingConfig, policy: EngineConfig,
          checkpoint_dir: str | None = None, save_steps: int = 50) -> dict:
    """Train on the pairs at `pairs_path`; write the model and `training_report.json` to `output_dir`.

    With `checkpoint_dir` (a durable path) the trainer saves every `save_steps` steps there and a retried
    task resumes from the newest checkpoint instead of starting over.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pairs = read_records(pairs_path, PreferencePair)
    if not pairs:
        raise ValueError(f"{pairs_path}: no preference pairs to train on (every question was filtered or tied)")
    dataset = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs])
    base = resolve_model(policy.model)
    on_gpu = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    work_dir = checkpoint_dir or os.path.join(output_dir, ".trainer")
    args = _trainer_args(config, work_dir, on_gpu, save_steps if checkpoint_dir else None)
    resume_from = _latest_checkpoint(work_dir) if checkpoint_dir else None
    if resume_from:
        log.info("dpo_training: resuming from %s", resume_from)
    started = time.monotonic()
    if config.method == "simpo":
        from trl.experimental.cpo import CPOTrainer

        trainer = CPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=_peft_config(config), callbacks=_fault_injection())
    else:
        from trl import DPOTrainer

        # Full fine-tuning needs an explicit frozen reference; with LoRA the adapter-off model is the reference.
        ref_model = None if config.lora else AutoModelForCausalLM.from_pretrained(base)
        trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=dataset,
                             processing_class=tokenizer, peft_config=_peft_config(config), callbacks=_fault_injection())
    result = trainer.train(resume_from_checkpoint=resume_from)
    trained = trainer.model
    if config.lora is not None and config.lora.merge:
        trained = trained.merge_and_unload()
    trained.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    report = {
        "base_model": policy.model, "method": config.method, "pairs": len(pairs), "data_digest": _digest(pairs_path),
        "steps": trainer.state.global_step, "final_loss": losses[-1] if losses else None, "losses": losses,
        "train_loss": result.training_loss, "beta": args.beta, "learning_rate": args.learning_rate,
        "lora": config.lora is not None, "device": "cuda" if on_gpu else "cpu", "resumed_from": resume_from,
        "seconds": round(time.monotonic() - started, 3),
    }
    Path(output_dir, "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("dpo_training: %d pairs, %d steps, final loss %s", len(pairs), report["steps"], report["final_loss"])
    return report
