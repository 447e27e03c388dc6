"""The launcher: a real 2-process gloo world (torchrun) on this CPU, and the accelerate commands for GPUs,
checked by accelerate's own parser and validation (which reads the config files kept in the repo)."""
import pytest
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from transformers import AutoModelForCausalLM

from pugc.config import load_recipe
from pugc.io import write_jsonl
from pugc.records import PreferencePair
from pugc.stage_runner import run_training
from pugc.training.launch import ENTRY_MODULE, World, entry_args, launch_command, mixed_precision, needs_launcher


def write_pairs(path, count=8):
    write_jsonl(path, [
        PreferencePair(prompt=[{"role": "user", "content": f"Question {i}?"}],
                       chosen=[{"role": "assistant", "content": f"A careful answer {i}."}],
                       rejected=[{"role": "assistant", "content": "no"}], score_chosen=5.0, score_rejected=1.0,
                       margin=4.0, instruction_id=f"q{i}", doc_id="d", chosen_id=f"c{i}", rejected_id=f"r{i}")
        for i in range(count)
    ])
    return path


@pytest.mark.parametrize("overrides, method", [
    (["dpo_training.gradient_checkpointing=true"], "dpo"),
    (["dpo_training.method=simpo", "dpo_training.beta=2.5", "dpo_training.simpo_gamma=0.25",
      "dpo_training.lora={r: 4, alpha: 8}", "dpo_training.gradient_checkpointing=true"], "simpo"),
])
def test_two_process_gloo_world_trains_and_saves_a_loadable_checkpoint(tmp_path, overrides, method):
    sections = load_recipe("tiny", ["dpo_training.max_steps=2", "dpo_training.per_device_train_batch_size=2",
                                    *overrides]).to_dict()
    runtime = {"dpo_processes_per_node": 2}
    report = run_training(str(write_pairs(tmp_path / "pairs.jsonl")), str(tmp_path / "model"),
                          sections["dpo_training"], sections["engines"], runtime)
    training = report["training"]
    assert (training["world_size"], training["strategy"], training["method"], training["steps"]) == (2, "ddp", method, 2)
    assert training["effective_batch_size"] == 2 * 1 * 2
    assert training["lora"] == (method == "simpo")
    AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert not (tmp_path / "model" / "adapter_config.json").exists()


def accelerate_view(command: list[str]):
    """What `accelerate launch` makes of a command: its parser, then its validation, which merges the config file."""
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(command[3:]))
    return args


@pytest.mark.parametrize("strategy, offload", [("ddp", False), ("fsdp", False), ("fsdp", True),
                                               ("deepspeed_zero3", False), ("deepspeed_zero3", True)])
def test_paper_recipe_launches_eight_processes_under_its_strategy(strategy, offload):
    recipe = load_recipe("paper", [f"dpo_training.strategy={strategy}", f"dpo_training.cpu_offload={str(offload).lower()}"])
    gpus = recipe.cluster.resources["dpo_training"].accelerator_count
    world = World(1, gpus, recipe.dpo_training.strategy, recipe.dpo_training.cpu_offload)
    args = accelerate_view(launch_command(world, entry_args("gs://b/pairs.jsonl", "/tmp/m", {}, {}), on_gpu=True))
    assert (args.num_processes, args.num_machines, args.mixed_precision) == (8, 1, "bf16")
    assert (args.multi_gpu, args.use_fsdp, args.use_deepspeed) == (strategy == "ddp", strategy == "fsdp",
                                                                   strategy == "deepspeed_zero3")
    assert args.module and args.training_script == ENTRY_MODULE and args.training_script_args[:2] == ["--pairs", "gs://b/pairs.jsonl"]
    if strategy == "fsdp":
        assert args.fsdp_sharding_strategy == "FULL_SHARD" and args.fsdp_state_dict_type == "FULL_STATE_DICT"
        assert str(args.fsdp_offload_params).lower() == str(offload).lower()
    if strategy == "deepspeed_zero3":
        assert args.zero_stage == 3 and args.zero3_save_16bit_model in (True, "true")
        assert (args.offload_param_device, args.offload_optimizer_device) == (("cpu", "cpu") if offload else ("none", "none"))


def test_the_paper_recipe_uses_zero3_over_eight_gpus():
    recipe = load_recipe("paper")
    assert recipe.dpo_training.strategy == "deepspeed_zero3" and recipe.dpo_training.effective_batch_size == 128
    assert recipe.cluster.runtime()["dpo_processes_per_node"] == 8


def test_one_process_ddp_trains_in_process_and_sharded_strategies_launch():
    assert not needs_launcher(World(1, 1, "ddp"))
    assert needs_launcher(World(1, 2, "ddp")) and needs_launcher(World(1, 1, "fsdp"))


def test_sharded_strategies_without_gpus_fail_naming_the_key():
    with pytest.raises(ValueError, match="dpo_training.strategy 'fsdp' needs GPUs"):
        launch_command(World(1, 2, "fsdp"), [], on_gpu=False)


def test_compiled_paper_task_launches_eight_zero3_processes(tmp_path):
    """What the compiled dpo_training task receives (its parameter defaults, numbers as KFP hands them back)
    makes the same launch: 8 processes under the recipe's strategy on one node."""
    import yaml

    from pugc.config import DPOTrainingConfig, build
    from pugc.pipelines.local import compile_pipeline

    spec = next(yaml.safe_load_all(compile_pipeline(load_recipe("paper"), tmp_path / "p.yaml").read_text()))
    params = spec["root"]["inputDefinitions"]["parameters"]
    section, runtime = params["dpo_training_config"]["defaultValue"], params["runtime"]["defaultValue"]
    config = build(DPOTrainingConfig, section, "dpo_training")
    world = World(1, int(runtime["dpo_processes_per_node"]), config.strategy, config.cpu_offload)
    args = accelerate_view(launch_command(world, entry_args("p", "o", section, {}), on_gpu=True))
    assert (args.num_processes, args.use_deepspeed, args.zero_stage) == (8, True, 3)


@pytest.mark.parametrize("overrides, expected", [([], "bf16"), (["dpo_training.bf16=false"], "no"),
                                                 (["dpo_training.bf16=false", "dpo_training.fp16=true"], "fp16")])
def test_the_launcher_passes_the_recipes_precision_over_the_config_files_bf16(overrides, expected):
    recipe = load_recipe("paper", overrides)
    world = World(1, 8, "ddp")
    section = recipe.to_dict()["dpo_training"]
    command = launch_command(world, entry_args("p", "/tmp/m", section, {}), on_gpu=True,
                             precision=mixed_precision(section))
    assert accelerate_view(command).mixed_precision == expected


@pytest.mark.parametrize("bf16, compute", [(False, "float32"), (True, "bfloat16")])
def test_the_report_states_the_precision_training_ran_in_whatever_the_launcher_exported(tmp_path, monkeypatch,
                                                                                        bf16, compute):
    """`accelerate launch` exports the config file's bf16; a recipe with bf16: false still trains in float32."""
    from pugc.config import DPOTrainingConfig, EngineConfig, build
    from pugc.training.dpo import train

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    config = build(DPOTrainingConfig, {"max_steps": 1, "per_device_train_batch_size": 2, "bf16": bf16}, "dpo_training")
    report = train(str(write_pairs(tmp_path / "pairs.jsonl", 4)), str(tmp_path / "model"), config,
                   EngineConfig(model="pugc-tiny/policy"))
    assert (report["master_dtype"], report["compute_dtype"]) == ("float32", compute)


def test_resumable_training_keeps_the_last_two_checkpoints_unless_the_recipe_says_otherwise(tmp_path):
    from pugc.config import DPOTrainingConfig, build
    from pugc.training.dpo import _trainer_args

    default = _trainer_args(build(DPOTrainingConfig, {}, "dpo_training"), str(tmp_path), False, save_steps=5)
    chosen = _trainer_args(build(DPOTrainingConfig, {"save_total_limit": 5}, "dpo_training"), str(tmp_path), False, 5)
    unsaved = _trainer_args(build(DPOTrainingConfig, {}, "dpo_training"), str(tmp_path), False)
    assert (default.save_total_limit, chosen.save_total_limit, unsaved.save_total_limit) == (2, 5, None)
