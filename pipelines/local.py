"""Compile the pipeline, and run it on this machine with KFP's local SubprocessRunner.

A local run writes runs/<run_id>/: summary.json, preference_pairs.jsonl, rejected.jsonl (every record that
did not make it, with stage and reason), model/ (the DPO checkpoint), recipe.yaml (resolved), pipeline.log
(the runner's full output), artifacts/ (every task's outputs as KFP wrote them); runs/latest points at the
newest run.
"""
from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

from kfp import compiler, local

from pugc.config import Recipe, dump_recipe
from pugc.pipelines.pugc_pipeline import build_pipeline


def compile_pipeline(recipe: Recipe, path: str | os.PathLike, target: str = "kfp",
                     pipeline_root: str | None = None) -> Path:
    """Write the pipeline YAML for `target`: `kfp` (open-source Kubeflow, with kfp-kubernetes settings) or
    `vertex` (Vertex AI Pipelines: one document, accelerator enum names, no kfp-kubernetes)."""
    compiler.Compiler().compile(build_pipeline(recipe, target, pipeline_root), str(path))
    return Path(path)


def new_run_id(recipe: Recipe) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{recipe.name}-{recipe.digest()[:6]}"


def _point_latest(output_root: Path, run_dir: Path) -> None:
    link = output_root / "latest"
    tmp = output_root / ".latest.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)  # atomic: readers see the old run or the new one, never no link


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# What reaches the console: pugc's own progress lines, task start/finish, and anything that went wrong.
_CONSOLE_LINE = re.compile(r" (INFO|WARNING|ERROR) pugc\b|Executing task|finished with status|Traceback|Error\b")


class ConsoleFilter(io.TextIOBase):
    """Everything the local runner prints goes to a log file; the console gets the lines worth reading
    (KFP's executor dumps each task's full executor input, hundreds of lines per task)."""

    def __init__(self, log_file, console):
        self.log_file, self.console, self.pending = log_file, console, ""

    def write(self, text: str) -> int:
        self.log_file.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if _CONSOLE_LINE.search(_ANSI.sub("", line)):
                self.console.write(line.strip() + "\n")
        return len(text)

    def flush(self) -> None:
        self.log_file.flush()
        self.console.flush()


class PipelineFailed(RuntimeError):
    """A task of the local run failed; the message names the task, its error and the full log."""


_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.*)$")


def _failure_message(runner_message: str, log_path: Path) -> str:
    task = re.search(r"Inner task failed: \S*'([\w-]+)'", _ANSI.sub("", runner_message))
    errors = [m for m in map(_ERROR_LINE.match, _ANSI.sub("", log_path.read_text(encoding="utf-8")).splitlines())
              if m and m.group(1) != "RuntimeError"]
    cause = f"{errors[-1].group(1)}: {errors[-1].group(2)}" if errors else _ANSI.sub("", runner_message)
    return f"task {task.group(1) if task else '?'} failed: {cause} (full log: {log_path})"


@contextlib.contextmanager
def _quiet_local_runner(log_path: Path):
    """Route the runner's output through ConsoleFilter; silence its warnings about settings that only a
    cluster honours (resources, custom images): those are checked on the compiled YAML instead."""
    original_print = builtins.print  # the runner re-binds print per task and can leave it indented after loops
    with open(log_path, "a", encoding="utf-8") as log_file, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
        console = sys.stdout
        with contextlib.redirect_stdout(ConsoleFilter(log_file, console)):
            try:
                yield
            except RuntimeError as exc:
                raise PipelineFailed(_failure_message(str(exc), log_path)) from None
            finally:
                builtins.print = original_print


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
    with _quiet_local_runner(run_dir / "pipeline.log"):
        outputs = build_pipeline(recipe, import_input=False)(input_uri=input_uri).outputs
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
