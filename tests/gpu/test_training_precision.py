"""On a GPU: training under `accelerate launch` (FSDP on one GPU, so the launcher runs) trains in the recipe's
precision, not the bf16 the strategy's config file names, and the report says what the Trainer used.

    bench/gpu_check.sh    (wheels for trl, datasets and pydantic in .whl/ where the machine has no index)
"""
import pytest
import torch

from pugc.config import load_recipe
from pugc.stage_runner import run_training
from tests.training.test_launch import write_pairs

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("overrides, compute", [(["dpo_training.bf16=false"], "float32"), ([], "bfloat16")])
def test_launched_training_runs_in_the_recipes_precision_and_reports_it(tmp_path, overrides, compute):
    sections = load_recipe("tiny", ["dpo_training.max_steps=2", "dpo_training.per_device_train_batch_size=2",
                                    "dpo_training.strategy=fsdp", *overrides]).to_dict()
    report = run_training(str(write_pairs(tmp_path / "pairs.jsonl")), str(tmp_path / "model"),
                          sections["dpo_training"], sections["engines"], {"dpo_processes_per_node": 1})
    training = report["training"]
    assert (training["device"], training["strategy"], training["world_size"]) == ("cuda", "fsdp", 1)
    assert (training["master_dtype"], training["compute_dtype"]) == ("float32", compute)
