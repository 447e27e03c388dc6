"""Where a Kubeflow Pipelines run stands: its state, its tasks' states, and (once it has run) its summary.

`pugc status RUN_ID` looks once; `pugc submit --wait` polls until the run ends. Task states come from the
KFP API (v2beta1 run details); the figures come from the run's `summary` artifact under the pipeline root
(the backend writes a task's outputs under <root>/<pipeline>/<run id>/<task>/<uuid>/<output>), so the
evaluation and its gate are read exactly as the run wrote them. Exit codes: 0 the run succeeded and its
gate passed, 1 the run failed (or was cancelled), 3 it succeeded but the gate failed, 4 it has not ended.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

from pugc.evaluation import EXIT_PASSED, EXIT_RUN_FAILED, gate_exit_code

EXIT_NOT_FINISHED = 4
SUCCEEDED = "SUCCEEDED"
ENDED = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")  # V2beta1RuntimeState values a run does not leave
SUMMARY_TASK, SUMMARY_OUTPUT = "run-summary", "summary"


@dataclass
class RunStatus:
    run_id: str
    state: str
    tasks: dict[str, str] = field(default_factory=dict)  # task display name -> state
    summary: dict | None = None
    note: str = ""  # why the figures are missing, when they are

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def exit_code(self) -> int:
        if not self.ended:
            return EXIT_NOT_FINISHED
        if self.state != SUCCEEDED or self.summary is None:
            return EXIT_RUN_FAILED
        return gate_exit_code(self.summary)


def run_status(client, run_id: str, pipeline_root: str | None) -> RunStatus:
    """One look at the run; the summary is fetched once the run has succeeded."""
    run = client.get_run(run_id)
    details = getattr(run, "run_details", None)
    tasks = {t.display_name: str(t.state) for t in (getattr(details, "task_details", None) or []) if t.display_name}
    status = RunStatus(run_id, str(run.state or "PENDING"), tasks)
    if status.state == SUCCEEDED:
        root = _run_pipeline_root(run) or pipeline_root
        if not root:
            status.note = ("the run has no pipeline root of its own, so its artifacts went to the kfp-launcher "
                           f"ConfigMap's default ({LAUNCHER_DEFAULT_ROOT} unless changed): pass --pipeline-root "
                           "with that root if it is gs://")
        else:
            try:
                status.summary = find_summary(root, run_id)
            except ValueError as error:  # e.g. a minio:// root on open-source KFP
                status.note = str(error)
            else:
                status.note = "" if status.summary else f"no {SUMMARY_TASK} summary for run {run_id} under {root}"
    return status


def wait_for_run(new_client: Callable, run_id: str, pipeline_root: str | None, poll_seconds: float = 30.0,
                 timeout_seconds: float | None = None, report: Callable[[RunStatus], None] = lambda s: None) -> RunStatus:
    """Poll until the run ends (or the timeout passes); `report` hears every change of state. A client is made
    for each poll (`new_client()`), with the token as it is then: tokens expire during a long run."""
    started, last = time.monotonic(), None
    while True:
        status = run_status(new_client(), run_id, pipeline_root)
        seen = (status.state, tuple(sorted(status.tasks.items())))
        if seen != last:
            report(status)
            last = seen
        if status.ended or (timeout_seconds is not None and time.monotonic() - started > timeout_seconds):
            return status
        time.sleep(poll_seconds)


# The launcher's fallback when a run carries no root and the kfp-launcher ConfigMap names none
# (backend/src/v2/component/launcher_v2.go, `defaultPipelineRoot`).
LAUNCHER_DEFAULT_ROOT = "minio://mlpipeline/v2/artifacts"


def _run_pipeline_root(run) -> str | None:
    """The root the backend used: the run's runtime config. The compiled spec's `defaultPipelineRoot` is not it:
    the API server never reads that field."""
    config = getattr(run, "runtime_config", None)
    return getattr(config, "pipeline_root", None) or None


def find_summary(pipeline_root: str, run_id: str) -> dict | None:
    """The run's summary.json: the `summary` output of its run-summary task, found under the pipeline root."""
    from pugc.gcs import client, is_gcs, split

    if not is_gcs(pipeline_root):
        raise ValueError(f"pipeline root {pipeline_root}: only gs:// roots are read (pass --pipeline-root gs://...)")
    bucket, prefix = split(pipeline_root.rstrip("/") + "/")
    for blob in client().list_blobs(bucket, prefix=prefix):
        parts = blob.name[len(prefix):].split("/")
        if run_id in parts and SUMMARY_TASK in parts and parts[-1] == SUMMARY_OUTPUT \
                and parts.index(SUMMARY_TASK) > parts.index(run_id):
            return json.loads(blob.download_as_bytes())
    return None


def describe(status: RunStatus) -> list[str]:
    """Lines for the console: the state and any task that did not succeed."""
    lines = [f"run {status.run_id}: {status.state}"]
    unfinished = {name: state for name, state in status.tasks.items() if state != SUCCEEDED}
    lines += [f"  {name}: {state}" for name, state in sorted(unfinished.items())]
    if status.note:
        lines.append(f"  {status.note}")
    return lines


__all__ = ["RunStatus", "run_status", "wait_for_run", "find_summary", "describe", "EXIT_NOT_FINISHED", "EXIT_PASSED"]
