"""A loopback HTTP server that speaks the Kubeflow Pipelines v2beta1 REST paths `pugc submit` and `pugc status`
use (healthz, experiments, runs, recurring runs, one run's details), so the real `kfp.Client` can be pointed at it.

It answers as the open-source API server does (backend/src/apiserver, resource manager): snake_case JSON
objects with server-set ids, times and states; in standalone mode an experiment's namespace is replaced by
"" (`ReplaceNamespace`), in multi-user mode an experiment without a namespace is refused; a run has no
namespace of its own (it is its experiment's), a recurring run carries its experiment's. Errors come back
as grpc-gateway status objects. Every request is recorded for the test to read.

A run's life is scripted: each GET of it moves it one step along `KFPState.progress` (default RUNNING, then
SUCCEEDED with every task SUCCEEDED); `on_end(run)` is called when it reaches its last step (a test writes
the run's artifacts there, as the run's tasks would).
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from tests.cluster.loopback import JsonHandler, LoopbackServer

API = "/apis/v2beta1"
NOW = "2026-11-28T03:00:00Z"


@dataclass
class Request:
    method: str
    path: str
    query: dict
    body: dict | None
    headers: dict


@dataclass
class KFPState:
    multi_user: bool
    tag_name: str = "2.16.0"
    requests: list[Request] = field(default_factory=list)
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    recurring_runs: dict[str, dict] = field(default_factory=dict)
    progress: list[tuple[str, dict[str, str]]] = field(default_factory=lambda: [
        ("RUNNING", {"ingest_ugc": "RUNNING"}), ("SUCCEEDED", {"ingest_ugc": "SUCCEEDED", "run_summary": "SUCCEEDED"})])
    on_end: Callable[[dict], None] = lambda run: None
    on_look: Callable[[dict], None] = lambda run: None  # called at every GetRun, before it answers
    looks: dict[str, int] = field(default_factory=dict)

    def posted(self, path: str) -> list[dict]:
        return [r.body for r in self.requests if r.method == "POST" and r.path == API + path]


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: int):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def invalid(message: str) -> ApiError:
    return ApiError(400, f"Invalid input error: {message}", 3)


class Handler(JsonHandler):
    state: KFPState  # set per server

    def do_GET(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")

    def _answer(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        headers = {key.lower(): value for key, value in self.headers.items()}
        self.state.requests.append(Request(method, url.path, query, body, headers))
        route = ROUTES.get((method, url.path)) or next(
            (fn for (m, pattern), fn in PATTERN_ROUTES.items() if m == method and re.fullmatch(pattern, url.path)), None)
        if route in PATTERN_ROUTES.values():
            query = {**query, "_path": url.path}
        try:
            if route is None:
                raise ApiError(404, f"Not Found: {method} {url.path}", 5)
            self.send_json(200, route(self.state, query, body or {}))
        except ApiError as error:
            self.send_json(error.status, {"error": error.message, "code": error.code, "message": error.message,
                                      "details": []})


def healthz(state: KFPState, query, body) -> dict:
    """As backend/src/apiserver/main.go serves it: the release (TAG_NAME) beside the mode."""
    return {"commit_sha": "unknown", "tag_name": state.tag_name, "multi_user": state.multi_user,
            "pipeline_store": "database"}


def stored_namespace(state: KFPState, namespace: str | None) -> str:
    return (namespace or "") if state.multi_user else ""


def list_experiments(state: KFPState, query: dict, body) -> dict:
    if state.multi_user and not query.get("namespace"):
        raise invalid("ListExperiments must specify a namespace in multi-user mode")
    wanted = stored_namespace(state, query.get("namespace"))
    name = None
    if query.get("filter"):
        predicates = json.loads(query["filter"])["predicates"]
        name = next(p.get("string_value", p.get("stringValue")) for p in predicates if p["key"] == "display_name")
    found = [e for e in state.experiments.values()
             if e["namespace"] == wanted and (name is None or e["display_name"] == name)]
    return {"experiments": found, "total_size": len(found)} if found else {}


def create_experiment(state: KFPState, query, body: dict) -> dict:
    if not body.get("display_name"):
        raise invalid("Experiment must have a non-empty name")
    if state.multi_user and not body.get("namespace"):
        raise invalid("Experiment must have a namespace in multi-user mode")
    experiment = {"experiment_id": str(uuid.uuid4()), "display_name": body["display_name"],
                  "description": body.get("description") or "", "created_at": NOW,
                  "namespace": stored_namespace(state, body.get("namespace")),
                  "storage_state": "AVAILABLE", "last_run_created_at": "1970-01-01T00:00:00Z"}
    state.experiments[experiment["experiment_id"]] = experiment
    return experiment


def experiment_of(state: KFPState, body: dict) -> dict:
    experiment = state.experiments.get(body.get("experiment_id") or "")
    if experiment is None:
        raise ApiError(404, f"Experiment {body.get('experiment_id')!r} not found", 5)
    if not body.get("pipeline_spec") and not body.get("pipeline_version_reference"):
        raise invalid("Neither pipeline spec nor pipeline version reference is set")
    return experiment


def create_run(state: KFPState, query, body: dict) -> dict:
    experiment = experiment_of(state, body)
    run = {"experiment_id": experiment["experiment_id"], "run_id": str(uuid.uuid4()),
           "display_name": body.get("display_name"), "storage_state": "AVAILABLE",
           "pipeline_spec": body.get("pipeline_spec"), "runtime_config": body.get("runtime_config") or {},
           "service_account": body.get("service_account") or default_service_account(state),
           "created_at": NOW, "scheduled_at": NOW, "finished_at": "1970-01-01T00:00:00Z", "state": "PENDING",
           "state_history": [{"update_time": NOW, "state": "PENDING"}]}
    state.runs[run["run_id"]] = run
    return run


def create_recurring_run(state: KFPState, query, body: dict) -> dict:
    experiment = experiment_of(state, body)
    if not (body.get("trigger") or {}).get("cron_schedule") and not (body.get("trigger") or {}).get("periodic_schedule"):
        raise invalid("A recurring run needs a trigger")
    recurring = {"recurring_run_id": str(uuid.uuid4()), "display_name": body.get("display_name"),
                 "description": body.get("description") or "", "pipeline_spec": body.get("pipeline_spec"),
                 "runtime_config": body.get("runtime_config") or {},
                 "service_account": body.get("service_account") or default_service_account(state),
                 "max_concurrency": str(body.get("max_concurrency") or 1), "trigger": body["trigger"],
                 "mode": body.get("mode") or "ENABLE", "created_at": NOW, "updated_at": NOW, "status": "ENABLED",
                 "no_catchup": bool(body.get("no_catchup")), "namespace": experiment["namespace"],
                 "experiment_id": experiment["experiment_id"]}
    state.recurring_runs[recurring["recurring_run_id"]] = recurring
    return recurring


def get_run(state: KFPState, query: dict, body) -> dict:
    """GetRun: the run, one step further along the scripted progress, with its tasks' states."""
    run_id = query["_path"].rsplit("/", 1)[-1]
    run = state.runs.get(run_id)
    if run is None:
        raise ApiError(404, f"Run {run_id!r} not found", 5)
    state.on_look(run)
    step = min(state.looks.get(run_id, 0), len(state.progress) - 1)
    state.looks[run_id] = step + 1
    run_state, tasks = state.progress[step]
    if run["state"] != run_state:
        run["state"] = run_state
        run["state_history"].append({"update_time": NOW, "state": run_state})
        if step == len(state.progress) - 1:
            run["finished_at"] = NOW
            state.on_end(run)
    run["run_details"] = {"task_details": [
        {"run_id": run_id, "task_id": str(uuid.uuid5(uuid.NAMESPACE_URL, run_id + name)), "display_name": name,
         "state": task_state, "create_time": NOW} for name, task_state in tasks.items()]}
    return run


def default_service_account(state: KFPState) -> str:
    return "default-editor" if state.multi_user else "pipeline-runner"


ROUTES = {
    ("GET", f"{API}/healthz"): healthz,
    ("GET", f"{API}/experiments"): list_experiments,
    ("POST", f"{API}/experiments"): create_experiment,
    ("POST", f"{API}/runs"): create_run,
    ("POST", f"{API}/recurringruns"): create_recurring_run,
}
PATTERN_ROUTES = {("GET", rf"{API}/runs/[\w-]+"): get_run}


class KFPApiServer(LoopbackServer):
    """`with KFPApiServer(multi_user=True) as server:` then `kfp.Client(host=server.url)`."""

    def __init__(self, multi_user: bool):
        self.state = KFPState(multi_user=multi_user)
        super().__init__(type("BoundHandler", (Handler,), {"state": self.state}))
