"""Training as its own entry point, and the launcher that starts it over a pod's GPUs (or a TrainJob's nodes).

`python -m pugc.training.launch --pairs P --output O --section JSON --policy JSON` is what every process of a
launched world runs: `accelerate launch` with the recipe's strategy (src/pugc/training/accelerate/*.yaml) over
the GPUs, or `torchrun` (gloo) where there is no GPU. One process with strategy `ddp` needs no launcher: the
task trains in its own process (`needs_launcher`), which keeps local runs fast.
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

ENTRY_MODULE = "pugc.training.launch"
SHARDED = ("fsdp", "deepspeed_zero3")
# Kubeflow Trainer's torch runtime puts the rendezvous of every node into these variables of the trainer
# container; Kubernetes expands $(NAME) in a container's command from its env.
TRAINJOB_RENDEZVOUS = {"machine_rank": "$(PET_NODE_RANK)", "main_process_ip": "$(PET_MASTER_ADDR)",
                       "main_process_port": "$(PET_MASTER_PORT)"}


@dataclass(frozen=True)
class World:
    """How many processes train, where, and how they share the model."""

    nodes: int = 1
    processes_per_node: int = 1
    strategy: str = "ddp"
    cpu_offload: bool = False

    @property
    def size(self) -> int:
        return self.nodes * self.processes_per_node


def needs_launcher(world: World) -> bool:
    """Several processes, or a sharded strategy (FSDP / ZeRO-3 act even on one GPU), need a launched world."""
    return world.size > 1 or world.strategy != "ddp"


def accelerate_config(strategy: str) -> Path:
    path = Path(str(resources.files("pugc.training").joinpath("accelerate", f"{strategy}.yaml")))
    if not path.is_file():
        raise ValueError(f"dpo_training.strategy {strategy!r} has no accelerate config ({path})")
    return path


def entry_args(pairs: str, output: str, section: dict, policy: dict, checkpoint_dir: str | None = None,
               save_steps: int = 50, strategy_label: str | None = None) -> list[str]:
    """The entry point's own arguments (after `-m pugc.training.launch`)."""
    args = ["--pairs", pairs, "--output", output, "--section", json.dumps(section, sort_keys=True),
            "--policy", json.dumps(policy, sort_keys=True), "--save-steps", str(save_steps)]
    if checkpoint_dir:
        args += ["--checkpoint-dir", checkpoint_dir]
    if strategy_label:
        args += ["--strategy-label", strategy_label]
    return args


def mixed_precision(section: dict) -> str:
    """The recipe's mixed precision as `accelerate launch` names it, with TRL's default (bf16 unless fp16): the
    launcher passes it explicitly, since the strategy's config file says bf16 and a Trainer told neither bf16 nor
    fp16 falls back to what the launcher exported."""
    if section.get("fp16"):
        return "fp16"
    return "no" if section.get("bf16") is False else "bf16"


def accelerate_launch_args(world: World, rendezvous: dict[str, str] | None = None,
                           precision: str = "bf16") -> list[str]:
    """`accelerate launch` options: the strategy's config file, the world's shape, the recipe's mixed precision,
    offload, multi-node rendezvous."""
    args = ["--config_file", str(accelerate_config(world.strategy)), "--num_processes", str(world.size),
            "--num_machines", str(world.nodes), "--mixed_precision", precision]
    if world.cpu_offload:
        if world.strategy == "deepspeed_zero3":
            args += ["--offload_param_device", "cpu", "--offload_optimizer_device", "cpu"]
        elif world.strategy == "fsdp":
            args += ["--fsdp_offload_params", "true"]
    for key, value in (rendezvous or {}).items():
        args += [f"--{key}", value]
    return args


def launch_command(world: World, entry: list[str], on_gpu: bool, rendezvous: dict[str, str] | None = None,
                   python: str | None = None, precision: str = "bf16") -> list[str]:
    """The command that starts `world` running the entry point (`precision`: `mixed_precision(section)`).
    Without GPUs: torchrun with gloo (DDP only; the CPU trains in the recipe's precision, pugc.training.dpo)."""
    python = python or sys.executable
    if not on_gpu:
        if world.strategy in SHARDED:
            raise ValueError(f"dpo_training.strategy {world.strategy!r} needs GPUs; without them only ddp runs")
        if world.nodes > 1:
            raise ValueError("training on several nodes needs GPUs (cluster.resources.dpo_training.nodes)")
        return [python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                str(world.processes_per_node), "-m", ENTRY_MODULE, *entry]
    return [python, "-m", "accelerate.commands.launch", *accelerate_launch_args(world, rendezvous, precision),
            "-m", ENTRY_MODULE, *entry]


def run_world(world: World, pairs: str, output: str, section: dict, policy: dict, checkpoint_dir: str | None = None,
              save_steps: int = 50) -> dict:
    """Launch the world on this pod, stream its output into this task's log, return its training report."""
    import torch

    on_gpu = torch.cuda.is_available()
    if on_gpu and torch.cuda.device_count() < world.processes_per_node:
        raise RuntimeError(f"cluster.resources.dpo_training.accelerator_count asks for {world.processes_per_node} "
                           f"GPUs, but this pod sees {torch.cuda.device_count()}")
    command = launch_command(world, entry_args(pairs, output, section, policy, checkpoint_dir, save_steps), on_gpu,
                             precision=mixed_precision(section))
    log.info("dpo_training: launching %d processes (%s): %s", world.size, world.strategy, " ".join(command[:12]))
    stream_process(command)
    return json.loads(Path(output, "training_report.json").read_text())


def stream_process(command: list[str], env: dict | None = None) -> None:
    """Run `command`, copying its output to stderr line by line; fail with its exit code and last lines."""
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env or os.environ.copy()) as process:
        for line in process.stdout:
            sys.stderr.write(line)
            tail.append(line)
    if process.returncode != 0:
        raise RuntimeError(f"training processes exited with code {process.returncode}; last lines:\n" + "".join(tail))


# --------------------------------------------------------------------------------------------- entry point
def _local_pairs(uri: str, folder: str) -> str:
    """Pairs from the pipeline root (gs://) are copied next to the process; local paths are used as they are."""
    from pugc.gcs import is_gcs, read_bytes

    if not is_gcs(uri):
        return uri
    path = Path(folder, "pairs.jsonl")
    path.write_bytes(read_bytes(uri))
    return str(path)


def main(argv: list[str] | None = None) -> dict:
    from pugc.config import EngineConfig, build
    from pugc.gcs import export_model, is_gcs
    from pugc.logs import setup_logging
    from pugc.secrets import load_hf_token
    from pugc.training.dpo import train

    parser = argparse.ArgumentParser(prog=ENTRY_MODULE, description="DPO / SimPO training, one process of a world")
    parser.add_argument("--pairs", required=True, help="preference pairs: a local path or gs:// URI")
    parser.add_argument("--output", required=True, help="model folder, or a gs:// prefix the main process exports to")
    parser.add_argument("--section", required=True, help="the recipe's dpo_training section as JSON")
    parser.add_argument("--policy", required=True, help="the recipe's engines.policy as JSON")
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--save-steps", type=int, default=50)
    parser.add_argument("--strategy-label", default=None, help="what the report names the strategy (trainjob)")
    args = parser.parse_args(argv)
    setup_logging()
    load_hf_token()
    from pugc.config import DPOTrainingConfig

    config = build(DPOTrainingConfig, json.loads(args.section), "dpo_training")
    policy = build(EngineConfig, json.loads(args.policy), "engines.policy")
    with tempfile.TemporaryDirectory(prefix="pugc-train-") as scratch:
        output = os.path.join(scratch, "model") if is_gcs(args.output) else args.output
        report = train(_local_pairs(args.pairs, scratch), output, config, policy, args.checkpoint_dir,
                       args.save_steps, args.strategy_label)
        if is_gcs(args.output) and int(os.environ.get("RANK", "0")) == 0:
            export_model(output, args.output)
    return report


if __name__ == "__main__":
    main()
