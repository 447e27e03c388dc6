"""DPO learns at a learning rate bf16 weights cannot absorb, because the optimizer updates fp32 master weights.

The policy is a tiny model saved in bf16 (as 7B checkpoints are). The chosen answers share a fixed phrase the
rejected ones lack, so the preference is learnable. lr 1e-5 is below half a bf16 ulp of most weights (init
std 0.02: ulp 2^-14 ~ 6e-5), so AdamW's steps (about lr each) round away on bf16 masters. Both cases run the
real TRL DPOTrainer on the CPU with bf16 autocast (`bf16: true`, as the paper recipe) and a bf16 reference;
only `master_dtype` differs.
"""
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pugc.config import DPOTrainingConfig, EngineConfig
from pugc.io import write_jsonl
from pugc.models import resolve_model
from pugc.records import PreferencePair
from pugc.training.dpo import train

LEARNING_RATE = 1e-5
STEPS = 8


@pytest.fixture(scope="module")
def bf16_policy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bf16-policy")
    base = resolve_model("pugc-tiny/policy")
    AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16).save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def learnable_pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    write_jsonl(path, [
        PreferencePair(prompt=[{"role": "user", "content": f"Tell me about item {i}."}],
                       chosen=[{"role": "assistant", "content": "Sure: the answer is yes yes yes."}],
                       rejected=[{"role": "assistant", "content": f"Item {i} is a tent."}],
                       score_chosen=5.0, score_rejected=1.0, margin=4.0, instruction_id=f"q{i}", doc_id="d",
                       chosen_id=f"c{i}", rejected_id=f"r{i}")
        for i in range(16)
    ])
    return path


def changed_fraction(trained_dir, base_dir) -> float:
    trained = AutoModelForCausalLM.from_pretrained(trained_dir, dtype=torch.float32).state_dict()
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).state_dict()
    changed = sum((trained[name] != value).sum().item() for name, value in base.items())
    return changed / sum(value.numel() for value in base.values())


@pytest.mark.parametrize("master_dtype, learns", [("float32", True), ("bfloat16", False)])
def test_dpo_learns_only_with_fp32_master_weights(tmp_path, bf16_policy, learnable_pairs, master_dtype, learns):
    config = DPOTrainingConfig(master_dtype=master_dtype, trainer={
        "bf16": True, "learning_rate": LEARNING_RATE, "max_steps": STEPS, "per_device_train_batch_size": 8,
        "beta": 0.1, "lr_scheduler_type": "constant", "max_length": 64, "seed": 0})
    report = train(str(learnable_pairs), str(tmp_path / "model"), config, EngineConfig(model=str(bf16_policy)))
    assert (report["master_dtype"], report["compute_dtype"], report["world_size"]) == (master_dtype, "bfloat16", 1)
    assert report["reference"] == "frozen copy of the starting model in bfloat16" and report["steps"] == STEPS
    moved = changed_fraction(tmp_path / "model", bf16_policy)
    print(f"{master_dtype} master: margin {report['reward_margin']:.4f}, accuracy {report['reward_accuracy']:.3f}, "
          f"weights changed {moved:.4f}")
    # Measured on the current tiny policy: fp32 masters margin 0.061 with every weight moved, bf16 masters 0.016
    # with 1% moved (the few weights small enough for lr 1e-5 to cross half an ulp). The bounds leave a gap.
    if learns:
        assert report["reward_margin"] > 0.04 and report["reward_accuracy"] >= 0.75
        assert moved > 0.5
    else:  # updates below bf16 resolution: almost every weight stays put and the margin stays small
        assert abs(report["reward_margin"]) < 0.02
        assert moved < 0.05
