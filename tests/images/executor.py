"""Run a compiled task's own container command, as the image's entrypoint would: `command + args` from the
pipeline YAML with `{{$}}` replaced by an executor-input JSON (the shape the KFP launcher writes)."""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

TYPES = {"Dataset": "system.Dataset", "Metrics": "system.Metrics", "HTML": "system.HTML",
         "Markdown": "system.Markdown", "Model": "system.Model", "Artifact": "system.Artifact"}


@dataclass
class CompiledTask:
    """One task of the compiled pipeline: its component's interface and its executor's container."""
    name: str
    image: str
    command: list[str]
    args: list[str]
    output_artifacts: dict[str, str]  # name -> schema title


def compiled_tasks(spec: dict) -> dict[str, CompiledTask]:
    """The pipeline spec's container tasks by the Python function they run (ingest_ugc, ...)."""
    tasks = {}
    for component in spec["components"].values():
        container = spec["deploymentSpec"]["executors"].get(component.get("executorLabel"), {}).get("container")
        if not container:
            continue  # a DAG (ParallelFor body) or the importer: no container of ours
        outputs = component.get("outputDefinitions", {}).get("artifacts", {})
        name = container["args"][container["args"].index("--function_to_execute") + 1]
        outputs = {k: v["artifactType"]["schemaTitle"] for k, v in outputs.items()}
        # one entry per function: merge_shards serves every fan-out (comp-merge-shards, -2, ...)
        tasks.setdefault(name, CompiledTask(name, container["image"], container["command"], container["args"], outputs))
    return tasks


def artifact(name: str, uri: str, schema_title: str, metadata: dict | None = None) -> dict:
    return {"name": name, "uri": uri, "type": {"schemaTitle": schema_title}, "metadata": metadata or {}}


def executor_input(task: CompiledTask, work: Path, parameters: dict, input_artifacts: dict[str, dict]) -> dict:
    """Inputs as given; every output artifact gets a uri under `work/outputs` (a local path is its own path)."""
    outputs = {name: {"artifacts": [artifact(name, str(work / "outputs" / name), schema)]}
               for name, schema in task.output_artifacts.items()}
    return {
        "inputs": {"parameterValues": parameters,
                   "artifacts": {name: {"artifacts": [a]} for name, a in input_artifacts.items()}},
        "outputs": {"artifacts": outputs, "outputFile": str(work / "executor_output.json")},
    }


def run_task(task: CompiledTask, python_bin: Path, executor_input_json: dict, env: dict | None = None,
             cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The container's command line, with `python3` taken from the image's environment (first on PATH)."""
    argv = [a.replace("{{$}}", json.dumps(executor_input_json)) for a in task.command + task.args]
    run_env = dict(env or os.environ)
    run_env["PATH"] = f"{python_bin}{os.pathsep}{run_env.get('PATH', '')}"
    return subprocess.run(argv, capture_output=True, text=True, env=run_env, cwd=cwd, timeout=timeout)
