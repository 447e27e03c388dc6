"""Compile the pipeline, and run it on this machine with KFP's local SubprocessRunner.

A local run writes runs/<run_id>/: summary.json, preference_pairs.jsonl, rejected.jsonl (every record that
did not make it, with stage and reason), model/ (the DPO checkpoint), evaluation.jsonl (every evaluation prompt
judged, trained vs baseline), recipe.yaml (resolved), pipeline.log
(the runner's full output), artifacts/ (every task's outputs as KFP wrote them); runs/latest points at the
newest run.
"""
from __future__ import annotations

import builtins
import contextlib
import dataclasses
import io
import json
import logging
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

from kfp import compiler, local

from pugc.config import Recipe, dump_recipe
from pugc.summary import FAILED_MARKER
from pugc.pipelines.platform import settings_of
from pugc.pipelines.pugc_pipeline import build_pipeline

log = logging.getLogger(__name__)


def compile_pipeline(recipe: Recipe, path: str | os.PathLike, target: str = "kfp",
                     pipeline_root: str | None = None) -> Path:
    """Write the pipeline YAML for `target`: `kfp` (open-source Kubeflow, with kfp-kubernetes settings) or
    `vertex` (Vertex AI Pipelines: one document, accelerator enum names, no kfp-kubernetes)."""
    compiler.Compiler().compile(build_pipeline(recipe, target, pipeline_root), str(path))
    if target == "kfp":
        from pugc.pipelines.backends import describe_loss, downlevel_file

        loss = describe_loss(recipe.cluster.kfp_version, downlevel_file(path, recipe.cluster.kfp_version))
        if loss:
            log.warning("%s", loss)
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
_TASK_DONE = re.compile(r"Task '([\w-]+)' finished with status (\w+)")
# pugc's own per-stage result lines (stage_runner, training, summary): "<stage>: in 58, out 40, ..."
_STAGE_RESULT = re.compile(r" INFO pugc\.[\w.]+: (\w+): ((?:in \d|merged \d|\d).*)$")
_WARNING = re.compile(r" (?:WARNING|ERROR) pugc\.[\w.]+: (.*)$")
STAGE_ALIASES = {"ingest": "ingest_ugc"}


def _readable(detail: str) -> str:
    """A stage's result line for the console: no per-task timing, one shard unsaid, long floats rounded."""
    detail = re.sub(r" \(\d+\.\d+s\)$", "", detail).replace("merged 1 shards: ", "")
    return re.sub(r"\d+\.\d{4,}", lambda m: f"{float(m.group()):.3g}", detail)


def stage_plan(task_names: dict[str, str]) -> list[tuple[str, list[str]]]:
    """The DAG's stages in order, each with its task names: shard merges fold into their stage, the input
    fingerprint into ingest. `task_names` is what `build_pipeline` recorded ({task key: KFP task name})."""
    plan: dict[str, list[str]] = {}
    for key, name in task_names.items():
        stage = "ingest_ugc" if key == "input_fingerprint" else key.removesuffix("_merge")
        plan.setdefault(stage, []).append(name)
    return list(plan.items())


def local_task_names(pipeline_spec) -> dict[str, str]:
    """{task name: the name the local runner logs it by}: a task's component name less `comp-`, which KFP
    makes unique across sub-pipelines (round 2's `dpo-training` runs as `dpo-training-2`). Tasks inside a
    round are named `<round task>/<task>`, as `build_pipeline` records them; loops and conditions are seen
    through."""
    from google.protobuf import json_format

    spec = json_format.MessageToDict(pipeline_spec)
    names: dict[str, str] = {}

    def walk(dag: dict, prefix: str) -> None:
        for name, task in dag.get("tasks", {}).items():
            component = task["componentRef"]["name"]
            if "dag" in spec["components"][component]:
                walk(spec["components"][component]["dag"], f"{prefix}{name}/" if name.startswith("round-") else prefix)
            else:
                names[f"{prefix}{name}"] = component.removeprefix("comp-")

    walk(spec["root"]["dag"], "")
    return names


def task_plan(recipe: Recipe) -> list[tuple[str, list[str]]]:
    task_names: dict[str, str] = {}
    build_pipeline(recipe, import_input=False, task_names=task_names)
    return stage_plan(task_names)


def stage_label(stage: str) -> str:
    """`round_2.dpo_training` (a round's stage) -> `dpo_training (round 2)`; other stages as they are."""
    round_key, _, name = stage.rpartition(".")
    return f"{name} ({round_key.replace('_', ' ')})" if round_key else name


class ConsoleFilter(io.TextIOBase):
    """Everything the local runner prints goes to the log file; the console gets one line per finished stage
    ("[3/9] relevance_filter  in 58, out 40 ...  4.2s") and pugc's warnings. A stage is finished when its last
    task is (an LLM stage's merge), so internal tasks never reach the console. Colour only on a terminal."""

    def __init__(self, log_file, console, plan: list[tuple[str, list[str]]] = ()):
        self.log_file, self.console, self.pending = log_file, console, ""
        self.plan = list(plan)
        self.last_task = {tasks[-1]: stage for stage, tasks in self.plan}
        self.width = max([18, *(len(stage_label(stage)) for stage, _ in self.plan)])
        self.details: dict[str, str] = {}
        self.colour = bool(getattr(console, "isatty", lambda: False)())
        self.since = time.monotonic()
        self.finished = 0

    def write(self, text: str) -> int:
        self.log_file.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._read(_ANSI.sub("", line).rstrip())
        return len(text)

    def _read(self, line: str) -> None:
        if (result := _STAGE_RESULT.search(line)) and "input records" not in line:
            self.details[STAGE_ALIASES.get(result.group(1), result.group(1))] = result.group(2)
        elif warning := _WARNING.search(line):
            self._say(f"  ! {warning.group(1)}", "33")
        elif (done := _TASK_DONE.search(line)) and done.group(1) in self.last_task and done.group(2) == "SUCCESS":
            self._stage_done(self.last_task[done.group(1)])

    def _stage_done(self, stage: str) -> None:
        # numbered as they finish, so the console counts up: stages that run side by side (export_model and
        # run_summary) finish in either order
        self.finished += 1
        index = self.finished
        now = time.monotonic()
        detail = _readable(self.details.get(settings_of(stage.rpartition(".")[2]), ""))
        counter = f"[{index}/{len(self.plan)}]".ljust(len(f"[{len(self.plan)}/{len(self.plan)}]"))  # columns line up
        self._say(f"{counter} {stage_label(stage):<{self.width}} {detail:<52} "
                  f"{now - self.since:6.1f}s", "32")
        self.since = now

    def _say(self, text: str, colour: str) -> None:
        self.console.write(f"\x1b[{colour}m{text}\x1b[0m\n" if self.colour else text + "\n")
        self.console.flush()

    def flush(self) -> None:
        self.log_file.flush()
        self.console.flush()


class PipelineFailed(RuntimeError):
    """A task of the local run failed; the message names the task, its error and the full log."""


# An exception line of the log, "module.Error: message". Matched on a line's first characters only: a log line
# can hold any text (an error quoting its input), and the dotted prefix would backtrack over a long one.
_ERROR_HEAD = re.compile(r"\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): ")
_ERROR_HEAD_CHARS = 200


def _error_line(line: str) -> tuple[str, str] | None:
    match = _ERROR_HEAD.match(line[:_ERROR_HEAD_CHARS])
    return (match.group(1), line[match.end():]) if match else None


def _failure_message(runner_message: str, log_path: Path) -> str:
    task = re.search(r"Inner task failed: \S*'([\w-]+)'", _ANSI.sub("", runner_message))
    errors = [e for e in map(_error_line, _ANSI.sub("", log_path.read_text(encoding="utf-8")).splitlines())
              if e and e[0] != "RuntimeError"]
    cause = f"{errors[-1][0]}: {errors[-1][1]}" if errors else _ANSI.sub("", runner_message)
    if errors and errors[-1][0] == "BudgetExceededError":  # not a fault: the budget's line says it all
        return f"{errors[-1][1]} (task {task.group(1) if task else '?'}; full log: {log_path})"
    return f"task {task.group(1) if task else '?'} failed: {cause} (full log: {log_path})"


@contextlib.contextmanager
def _quiet_local_runner(log_path: Path, plan: list[tuple[str, list[str]]]):
    """Route the runner's output through ConsoleFilter; silence its warnings about settings that only a
    cluster honours (resources, custom images): those are checked on the compiled YAML instead."""
    original_print = builtins.print  # the runner re-binds print per task and can leave it indented after loops
    with open(log_path, "a", encoding="utf-8") as log_file, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
        console = sys.stdout
        with contextlib.redirect_stdout(ConsoleFilter(log_file, console, plan)):
            try:
                yield
            except RuntimeError as exc:
                raise PipelineFailed(_failure_message(str(exc), log_path)) from None
            finally:
                builtins.print = original_print


def with_input(recipe: Recipe, input_uri: str) -> Recipe:
    """The recipe as run: input.uri is the input actually read, so the saved recipe.yaml tells the truth."""
    return dataclasses.replace(recipe, input=dataclasses.replace(recipe.input, uri=input_uri))


def run_local(recipe: Recipe, input_uri: str, output_root: str | os.PathLike = "runs", run_id: str | None = None) -> dict:
    """Run the pipeline into output_root/run_id/. A run that fails or is interrupted leaves a `FAILED` file
    with the reason in its folder (and no summary.json), so no half-written folder looks finished."""
    from pugc.checks import UserError

    output_root = Path(output_root)
    if "://" not in input_uri:
        input_uri = str(Path(input_uri).resolve())
    recipe = with_input(recipe, input_uri)
    run_id = run_id or new_run_id(recipe)
    run_dir = output_root / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise UserError(f"run folder {run_dir} already exists: pick another --run-id or remove it") from None
    print(f"pugc run {run_id}: recipe {recipe.name}, input {input_uri}\n"
          f"  folder {run_dir}/  log {run_dir / 'pipeline.log'}", flush=True)
    try:
        summary = _run(recipe, input_uri, run_dir, run_id)
    except BaseException as exc:
        reason = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else str(exc).splitlines()[0][:500]
        (run_dir / FAILED_MARKER).write_text(f"{reason}\n", encoding="utf-8")
        raise
    _point_latest(output_root, run_dir)
    return summary


def _run(recipe: Recipe, input_uri: str, run_dir: Path, run_id: str) -> dict:
    (run_dir / "recipe.yaml").write_text(dump_recipe(recipe))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str((run_dir / "artifacts").resolve()),
               raise_on_error=True)
    started, started_at = time.monotonic(), time.strftime("%Y-%m-%d %H:%M:%S %Z")
    task_names: dict[str, str] = {}
    pipeline = build_pipeline(recipe, import_input=False, task_names=task_names, local=True)
    logged_as = local_task_names(pipeline.pipeline_spec)
    task_names = {key: logged_as.get(name, name) for key, name in task_names.items()}
    with _quiet_local_runner(run_dir / "pipeline.log", stage_plan(task_names)):
        outputs = pipeline(input_uri=input_uri).outputs
    shutil.copyfile(outputs["preference_pairs"].path, run_dir / "preference_pairs.jsonl")
    shutil.copyfile(outputs["rejected"].path, run_dir / "rejected.jsonl")
    os.replace(outputs["dpo_model"].path, run_dir / "model")  # moved, not copied: checkpoints can be large
    shutil.copyfile(outputs["model_card"].path, run_dir / "model" / "README.md")  # the card goes with the model
    shutil.copyfile(outputs["dataset_card"].path, run_dir / "preference_pairs.md")
    pipeline_summary = json.loads(Path(outputs["summary"].path).read_text())
    summary = {
        "run_id": run_id,
        "recipe": recipe.name,
        "status": "succeeded",
        **pipeline_summary,
        "model_dir": str((run_dir / "model").resolve()),
        "input_uri": input_uri,
        "started": started_at,
        "wall_seconds": round(time.monotonic() - started, 2),
    }
    from pugc.cost import account

    # the local runner held no accelerator: 0 GPU-hours, and what the recipe's resources would have held
    summary["cost"] = account(recipe, summary["stages"], summary["preference_pairs"], local=True)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.copyfile(outputs["judged"].path, run_dir / "evaluation.jsonl")
    write_reports(run_dir / "reports", summary, {"pairs_report": outputs["pairs_report"].path,
                                                 "loss_curve": outputs["loss_curve"].path,
                                                 "evaluation_report": outputs["evaluation_report"].path},
                  tiny=uses_tiny_models(recipe))
    return summary


def uses_tiny_models(recipe: Recipe) -> bool:
    from pugc.models import TINY_PREFIX

    return any(str(getattr(recipe.engines, role).model).startswith(TINY_PREFIX)
               for role in ("generator", "policy", "judge"))


def write_reports(folder: Path, summary: dict, task_reports: dict[str, str], tiny: bool = False) -> Path:
    """reports/: the tasks' HTML reports as .html files and the run summary, each linking back to an index
    that is the run's dashboard; with tiny models, every page says their text is meaningless."""
    from pugc.reports import index_html, run_summary_html, with_navigation

    folder.mkdir(exist_ok=True)
    names = [*task_reports, "run_summary"]
    pages = {name: Path(path).read_text(encoding="utf-8") for name, path in task_reports.items()}
    pages["run_summary"] = run_summary_html(summary)
    pages["index"] = index_html(summary, names)
    for name, html_page in pages.items():
        (folder / f"{name}.html").write_text(with_navigation(html_page, names, tiny), encoding="utf-8")
    return folder / "index.html"
