"""Compile the pipeline, and run it on this machine with KFP's local SubprocessRunner.

A local run writes runs/<run_id>/: summary.json, preference_pairs.jsonl, rejected.jsonl (every record that
did not make it, with stage and reason), model/ (the DPO checkpoint), recipe.yaml (resolved), artifacts/
(every task's outputs as KFP wrote them); runs/latest points at the newest run.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from kfp import compiler, local

from pugc.config import Recipe, dump_recipe
from pugc.pipelines.pugc_pipeline import build_pipeline


def compile_pipeline(recipe: Recipe, path: str | os.PathLike) -> Path:
    compiler.Compiler().compile(build_pipeline(recipe), str(path))
    return Path(path)


def new_run_id(recipe: Recipe) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{recipe.name}-{recipe.digest()[:6]}"


def _point_latest(output_root: Path, run_dir: Path) -> None:
    link = output_root / "latest"
    tmp = output_root / ".latest.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)  # atomic: readers see the old run or the new one, never no link


def run_local(recipe: Recipe, input_uri: str, output_root: str | os.PathLike = "runs", run_id: str | None = None) -> dict:
    output_root = Path(output_root)
    run_id = run_id or new_run_id(recipe)
    run_dir = output_root / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "recipe.yaml").write_text(dump_recipe(recipe))
    if "://" not in input_uri:
        input_uri = str(Path(input_uri).resolve())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str((run_dir / "artifacts").resolve()),
               raise_on_error=True)
    started = time.monotonic()
    outputs = build_pipeline(recipe)(input_uri=input_uri).outputs
    shutil.copyfile(outputs["preference_pairs"].path, run_dir / "preference_pairs.jsonl")
    shutil.copyfile(outputs["rejected"].path, run_dir / "rejected.jsonl")
    os.replace(outputs["dpo_model"].path, run_dir / "model")  # moved, not copied: checkpoints can be large
    pipeline_summary = json.loads(Path(outputs["summary"].path).read_text())
    summary = {
        "run_id": run_id,
        "recipe": recipe.name,
        **pipeline_summary,
        "model_dir": str((run_dir / "model").resolve()),
        "input_uri": input_uri,
        "wall_seconds": round(time.monotonic() - started, 2),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _point_latest(output_root, run_dir)
    return summary
