"""Where a Kubeflow Pipelines run stands: its state, its tasks' states, and (once it has run) its summary.

`pugc status RUN_ID` looks once; `pugc submit --wait` polls until the run ends. Task states come from the
KFP API (v2beta1 run details); the figures come from the run's `summary` artifact under the pipeline root
(the backend writes a task's outputs under <root>/<pipeline>/<run id>/<task>/<uuid>/<output>), so the
evaluation and its gate are read exactly as the run wrote them. Exit codes: 0 the run succeeded and its
gate passed, 1 the run failed (or was cancelled), 3 it succeeded but the gate failed, 4 it has not ended, and
2 the API could not be asked (unreachable, credentials refused, no such run): never read as the run's outcome.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

from pugc.checks import UserError
from pugc.evaluation import EXIT_PASSED, EXIT_RUN_FAILED, gate_exit_code

EXIT_NOT_FINISHED = 4
EXIT_COULD_NOT_ASK = 2
MISSED_POLLS = 5  # a waiting poll gives up after this many failed asks in a row (a network blip is not fatal)


class CouldNotAsk(UserError):
    """The KFP API did not answer about the run: what happened and what to do, exit 2 (not a run outcome)."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_COULD_NOT_ASK)


def ask(call: Callable, host: str | None, run_id: str, local_runs: str = "runs"):
    """`call()`, with the ways asking the API fails turned into one `CouldNotAsk` line each."""
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    where = host or "$KFP_HOST"
    try:
        return call()
    except ApiException as exc:
        raise CouldNotAsk(api_refusal(exc.status, exc.reason, where, run_id, local_runs)) from None
    except (HTTPError, OSError) as exc:
        raise CouldNotAsk(unreachable(where, getattr(exc, "reason", None) or exc)) from None


def probe(host: str | None, token: str | None, run_id: str, local_runs: str = "runs") -> None:
    """One GET of the API's healthz before a client is made, so a refusal is named for what it is: kfp.Client
    asks healthz five times and then reports only that it failed."""
    import urllib.error
    import urllib.request

    if not host:  # in-cluster discovery: kfp.Client finds the API itself
        return
    request = urllib.request.Request(f"{host.rstrip('/')}/apis/v2beta1/healthz",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        urllib.request.urlopen(request, timeout=15).close()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise CouldNotAsk(f"{host} has no Kubeflow Pipelines API (404 for /apis/v2beta1/healthz): check --host "
                              "(the UI's address, e.g. http://localhost:8080 after a port-forward)") from None
        raise CouldNotAsk(api_refusal(exc.code, exc.reason, host, run_id, local_runs)) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CouldNotAsk(unreachable(host, getattr(exc, "reason", None) or exc)) from None


def unreachable(where: str, reason) -> str:
    return (f"cannot reach Kubeflow Pipelines at {where} ({str(reason)[-160:]}): check --host (or $KFP_HOST) and "
            "the network, or port-forward the API (kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80, "
            "then --host http://localhost:8080)")


def api_refusal(status: int, reason: str | None, where: str, run_id: str, local_runs: str) -> str:
    from pathlib import Path

    if status in (400, 404):
        if (Path(local_runs) / run_id).is_dir():
            return (f"run {run_id} is a local run, not one on {where}: its summary is "
                    f"{Path(local_runs) / run_id / 'summary.json'} (pugc runs lists local runs)")
        return f"{where} has no run {run_id!r} ({status} {reason or ''}): check the run id in the Kubeflow UI's Runs list"
    if status in (401, 403):
        return (f"{where} refused the credentials ({status} {reason or ''}): refresh the token (--token, $KFP_TOKEN, "
                "or the in-cluster service account) and check its access to the run's namespace")
    return f"{where} answered {status} {reason or ''} about run {run_id}: try again; if it persists, check the API server"
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


def run_status(client, run_id: str, pipeline_root: str | None, host: str | None = None) -> RunStatus:
    """One look at the run; the summary is fetched once the run has succeeded."""
    run = ask(lambda: client.get_run(run_id), host, run_id)
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
                 timeout_seconds: float | None = None, report: Callable[[RunStatus], None] = lambda s: None,
                 report_miss: Callable[[str], None] = lambda line: None, host: str | None = None) -> RunStatus:
    """Poll until the run ends (or the timeout passes); `report` hears every change of state, `report_miss`
    every poll that could not ask (up to MISSED_POLLS in a row, then CouldNotAsk is raised). A client is made
    for each poll (`new_client()`), with the token as it is then: tokens expire during a long run."""
    started, last, missed = time.monotonic(), None, 0
    while True:
        try:
            status = run_status(ask(new_client, host, run_id), run_id, pipeline_root, host)
        except CouldNotAsk as exc:
            missed += 1
            if missed >= MISSED_POLLS:
                raise
            report_miss(f"could not ask about run {run_id} ({missed} of {MISSED_POLLS} in a row): {exc}")
            time.sleep(poll_seconds)
            continue
        missed = 0
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
