"""DPO training from files: in this process, launched over the pod's GPUs, or as a Kubeflow Trainer TrainJob."""
from __future__ import annotations

import time

from pugc import __version__
from pugc.config import EngineConfig, build
from pugc.io import make_world_readable
from pugc.logs import setup_logging
from pugc.secrets import load_hf_token


def run_training(pairs_path: str, model_dir: str, section: dict, engines: dict, runtime: dict | None = None,
                 scope: str = "", pairs_uri: str = "", model_uri: str = "", spent_before: dict | None = None) -> dict:
    """With `spent_before` (pugc.cost) the budget in `runtime` is checked on the pairs before the policy
    loads, and the report carries the run's spending."""
    from pugc.config import DPOTrainingConfig
    from pugc.runner.budget import check_stage_budget, with_spending

    setup_logging()
    if spent_before is not None:
        check_stage_budget(runtime, "dpo_training", pairs_path, spent_before)
    load_hf_token()
    config = build(DPOTrainingConfig, section, "dpo_training")
    policy = build(EngineConfig, engines.get("policy", {}), "engines.policy")
    started = time.monotonic()
    runtime = runtime or {}
    checkpoint_dir = None
    if runtime.get("checkpoint_root"):
        from pugc.checkpoint import checkpoint_folder, checkpoint_key

        key = checkpoint_key("dpo_training", section, engines.get("policy"), files=(pairs_path,))
        checkpoint_dir = str(checkpoint_folder(runtime["checkpoint_root"], scope, key))
    if runtime.get("dpo_trainjob"):
        training = _train_as_trainjob(pairs_uri, model_uri, model_dir, section, engines, config, runtime,
                                      checkpoint_dir, scope)
    else:
        training = _train_in_world(pairs_path, model_dir, section, engines, config, policy, runtime, checkpoint_dir)
    make_world_readable(model_dir)  # the export to dpo_training.export_uri is its own task, after the gate
    report = {
        "stage": "dpo_training",
        "counts": {"in": training["pairs"], "out": training["pairs"], "dropped": {}},
        "metrics": {"steps": training["steps"], "final_loss": training["final_loss"] or 0.0,
                    "train_loss": training["train_loss"]},
        "training": {k: v for k, v in training.items() if k != "losses"}, "model": policy.model,
        "model_revision": training.get("base_revision"),
        "seconds": round(time.monotonic() - started, 3), "pugc_version": __version__,
        "accelerators": int((runtime.get("accelerators") or {}).get("dpo_training", 0)),
    }
    return report if spent_before is None else with_spending(report, runtime, "dpo_training", spent_before)


def write_training_report(report: dict, path: str) -> None:
    """The training figures as a small JSON artifact (the model's own `training_report.json` travels with it)."""
    from pugc.io import write_json

    write_json(path, report)


def _train_in_world(pairs_path, model_dir, section, engines, config, policy, runtime, checkpoint_dir) -> dict:
    """In this process (one process, ddp: local runs), or launched over this pod's GPUs (pugc.training.launch)."""
    from pugc.training.launch import World, needs_launcher, run_world

    save_steps = int(runtime.get("dpo_save_steps") or 50)
    world = World(nodes=1, processes_per_node=int(runtime.get("dpo_processes_per_node") or 1),
                  strategy=config.strategy, cpu_offload=config.cpu_offload)
    if not needs_launcher(world):
        from pugc.training.dpo import train

        return train(pairs_path, model_dir, config, policy, checkpoint_dir, save_steps)
    return run_world(world, pairs_path, model_dir, section, engines.get("policy", {}), checkpoint_dir, save_steps)


def _train_as_trainjob(pairs_uri, model_uri, model_dir, section, engines, config, runtime, checkpoint_dir,
                       scope) -> dict:
    """Several nodes: a Kubeflow Trainer TrainJob trains from and to the pipeline root; the checkpoint is then
    copied into this task's Model artifact (pugc.training.trainjob)."""
    import json
    from pathlib import Path

    from pugc.gcs import download_model, is_gcs
    from pugc.training.launch import World
    from pugc.training.trainjob import build_trainjob, job_name, launching_pod, run_trainjob

    if not (is_gcs(pairs_uri) and is_gcs(model_uri)):
        raise ValueError(f"a TrainJob reads and writes the pipeline root: set cluster.pipeline_root to gs://... "
                         f"(pairs at {pairs_uri!r}, model at {model_uri!r})")
    settings = runtime["dpo_trainjob"]
    world = World(int(settings["nodes"]), int(runtime.get("dpo_processes_per_node") or 1), config.strategy,
                  config.cpu_offload)
    staging = f"{model_uri.rstrip('/')}-trainjob"
    job = build_trainjob(job_name(scope), settings, world, pairs_uri, staging, section,
                         engines.get("policy", {}), checkpoint_dir, int(runtime.get("dpo_save_steps") or 50),
                         owner=launching_pod())
    run_trainjob(job, poll_seconds=float(settings.get("poll_seconds", 30)),
                 timeout_seconds=settings.get("timeout_seconds"))
    download_model(staging, model_dir)
    return json.loads(Path(model_dir, "training_report.json").read_text())
