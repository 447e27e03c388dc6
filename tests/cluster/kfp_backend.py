"""A stand-in for the open-source KFP backend's driver and launcher, for running a compiled pipeline here.

It executes the YAML the way a cluster does, not the way KFP's local runner does:
- each task runs its own compiled container command (`sh -ec ... python3 -m kfp.dsl.executor_main`), with
  `{{$}}` replaced by an executor input built as the driver builds it, under the Python environment of the
  task's image (`images`: image -> ImageEnv; others run in this process's environment), with the
  container's env variables;
- the pipeline root is the run's, as the backend takes it: the run's runtime config (`pipeline_root`, what
  `pugc submit` sent), else the kfp-launcher ConfigMap's `defaultPipelineRoot`, else the launcher's built-in
  `minio://mlpipeline/v2/artifacts` (backend/src/v2/component/launcher_v2.go); the compiled spec's
  `defaultPipelineRoot` is never read. Only a gs:// root runs here (a minio:// one fails, as it would for this
  project's service account on a cluster);
- artifact URIs live under that root, and the container sees them under the GCS mount, as the
  launcher arranges (here the mount is a local folder: a sitecustomize points KFP's `/gcs/` prefix at it);
- output artifact metadata goes through ML Metadata as the backend stores it
  (backend/src/v2/metadata/converter.go): a list comes back as {"list": [...]}, a dict as {"struct": {...}},
  a bool as 0 or 1, numbers as doubles, and a null fails the task;
- numbers reach the executor as protojson writes them (integral doubles without a fraction);
- `ParallelFor` iterations run one by one and their outputs are `Collected` as lists of artifacts, in an
  order the harness chooses (reversed by default: the backend promises none);
- `dsl.importer` makes an artifact of its URI with empty metadata;
- a parameter constant that is exactly a run placeholder (`{{$.pipeline_job_uuid}}`, `{{$.pipeline_task_name}}`)
  is filled in, as the driver does from backend 2.5 (the project compiles none); output parameters are read
  from the executor output;
- output artifact URIs follow the driver's layout, `<root>/<pipeline>/<run id>/<task key>/<uuid>/<output>`;
- a task with `triggerPolicy.condition` (`dsl.If`/`Elif`/`Else`) runs only when the condition holds: the
  driver resolves the task's inputs, then evaluates the CEL expression over the executor input, where
  `inputs.parameter_values['name']` is an input parameter (backend/src/v2/driver dag.go and container.go,
  backend/src/v2/expression). A task not triggered runs nothing and produces nothing (`RunResult.skipped`).

- the launcher downloads every input artifact to the task's own disk before the command runs and uploads the
  outputs after it succeeded (backend/src/v2/component/launcher_v2.go, downloadArtifacts and
  uploadOutputArtifacts): each task sees a private copy of its inputs under its own `/gcs`, and the bytes
  moved each way are counted per task (`TaskRun.downloaded_bytes`, `uploaded_bytes`);
- a task whose caching is on is looked up by the driver's fingerprint (`cache_fingerprint`, after
  backend/src/v2/cacheutils/cache.go GenerateCacheKey and driver/cache.go getFingerPrint): the MLMD ids of its
  input artifacts, its resolved input parameters, its output names and types (URIs wiped), its image and its
  unresolved command; a hit reuses the earlier execution's outputs (their MLMD ids too) and runs nothing. A
  `BackendCache` shared by two `BackendRun`s is the backend's MLMD across runs; an importer with
  `reimport=False` returns the same artifact id for the same URI.

It does not schedule pods, apply kfp-kubernetes settings or retry.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import uuid
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SITE_DIR = Path(__file__).resolve().parent / "backend_site"
GCS_MOUNT_ENV = "PUGC_HARNESS_GCS_MOUNT"


@dataclass
class ImageEnv:
    """An image's Python environment rebuilt here: its interpreter, and where pugc is installed for it."""

    python: str
    pythonpath: str = ""


class UnsupportedValue(ValueError):
    """The backend refuses this metadata value (converter.go: "unknown/unsupported value type")."""


class TaskFailed(RuntimeError):
    pass


# ------------------------------------------------------------------------------ ML Metadata round trip
def to_mlmd(value: Any) -> tuple[str, Any]:
    """StructValueToMLMDValue: how the launcher stores one metadata value."""
    if value is None:
        raise UnsupportedValue("unknown/unsupported value type *structpb.Value_NullValue")
    if isinstance(value, bool):
        return "int", int(value)
    if isinstance(value, str):
        return "string", value
    if isinstance(value, (int, float)):
        return "double", float(value)
    if isinstance(value, list):
        return "struct", {"list": value}
    if isinstance(value, dict):
        return "struct", {"struct": value}
    raise UnsupportedValue(f"unknown/unsupported value type {type(value).__name__}")


def from_mlmd(kind: str, value: Any) -> Any:
    """toRuntimeArtifact: how the driver hands a stored value to the next task."""
    return float(value) if kind in ("int", "double") else value


def through_mlmd(metadata: dict) -> dict:
    return {key: from_mlmd(*to_mlmd(value)) for key, value in metadata.items()}


def protojson(value: Any) -> Any:
    """Numbers as Go's protojson writes a structpb number: 2.0 -> 2, 0.5 -> 0.5."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: protojson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [protojson(v) for v in value]
    return value


# ------------------------------------------------------------------------------------ trigger conditions
_CEL_TOKENS = re.compile(r"""\s*(?:(?P<param>inputs\.parameter_values\[(?P<quote>['"])(?P<name>[^'"]+)(?P=quote)\])"""
                         r"""|(?P<string>'[^'\\]*'|"[^"\\]*")|(?P<number>-?\d+(?:\.\d+)?)"""
                         r"""|(?P<op>==|!=|<=|>=|&&|\|\||[<>!()])|(?P<word>true|false|int|double|string))""")
_CEL_TO_PYTHON = {"&&": " and ", "||": " or ", "!": " not ", "true": "True", "false": "False",
                  "int": "int", "double": "float", "string": "str"}


def cel_condition(condition: str, parameter_values: dict) -> bool:
    """The subset of CEL the KFP compiler writes for dsl.If/Elif/Else: comparisons of input parameters with
    literals, `&&`, `||`, `!`, parentheses, int()/double()/string(). Anything else raises, naming it."""
    python, position = [], 0
    while position < len(condition.rstrip()):
        match = _CEL_TOKENS.match(condition, position)
        if not match:
            raise NotImplementedError(f"CEL the harness does not evaluate: {condition[position:]!r} in {condition!r}")
        position = match.end()
        if match["param"]:
            if match["name"] not in parameter_values:
                raise KeyError(f"condition {condition!r} reads input parameter {match['name']!r}, which the task lacks")
            python.append(repr(parameter_values[match["name"]]))
        elif match["string"] or match["number"]:
            python.append(match["string"] or match["number"])
        else:
            token = match["op"] or match["word"]
            python.append(_CEL_TO_PYTHON.get(token, f" {token} "))
    result = eval("".join(python), {"__builtins__": {}, "int": int, "float": float, "str": str})  # noqa: S307
    if not isinstance(result, bool):
        raise ValueError(f"evaluation error: return type is not bool, got {result!r} ({condition!r})")
    return result


# ------------------------------------------------------------------------------------------- the run
@dataclass
class Artifact:
    uri: str
    schema_title: str
    metadata: dict = field(default_factory=dict)
    mlmd_id: int = 0

    def runtime(self) -> dict:
        return {"name": str(self.mlmd_id), "uri": self.uri, "metadata": self.metadata,
                "type": {"schemaTitle": self.schema_title}}


@dataclass
class TaskRun:
    path: str  # e.g. "for-loop-2[1]/ugc-filter"
    image: str
    python: str  # the interpreter of the image's environment it ran in
    returncode: int
    log: Path | None
    outputs: dict[str, list[Artifact]]
    cached: bool = False  # served from the cache: nothing ran
    fingerprint: str = ""
    downloaded_bytes: int = 0  # input artifacts the launcher copied to the task's disk
    uploaded_bytes: int = 0


@dataclass
class BackendCache:
    """What the backend keeps across runs: cached executions by fingerprint (their outputs and output
    parameters), the artifact ids of imported URIs, and one sequence of MLMD ids."""

    executions: dict[str, tuple[dict, dict]] = field(default_factory=dict)
    imported: dict[str, int] = field(default_factory=dict)
    ids: Any = field(default_factory=lambda: itertools.count(1))


def cache_fingerprint(container: dict, component: dict, params: dict, artifacts: dict) -> str:
    """The driver's cache key of a container task (cacheutils/cache.go GenerateCacheKey): input artifacts by
    MLMD id (not URI, not content), input parameters as resolved, output artifact names/types/metadata with the
    URI wiped, output parameter types, and the container's image with its command and args as compiled
    (placeholders unresolved). Hashed as sha256 over its JSON (GenerateFingerPrint). Run id and task name are
    not in it, unless a task takes them as parameters."""
    outputs = component.get("outputDefinitions", {})
    key = {
        "inputArtifactNames": {name: {"artifactNames": [str(a.mlmd_id) for a in found]}
                               for name, found in sorted(artifacts.items())},
        "inputParameterValues": params,
        "outputArtifactsSpec": {name: {"name": name, "type": {"schemaTitle": d["artifactType"]["schemaTitle"]},
                                       "metadata": {}} for name, d in outputs.get("artifacts", {}).items()},
        "outputParametersSpec": {name: d["parameterType"] for name, d in outputs.get("parameters", {}).items()},
        "containerSpec": {"image": container["image"], "cmdArgs": container["command"] + container.get("args", [])},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


@dataclass
class RunResult:
    run_id: str
    tasks: list[TaskRun]
    outputs: dict  # task path -> {artifact key: [Artifact]}
    skipped: list[str] = field(default_factory=list)  # paths of tasks whose trigger condition was false

    def task(self, path: str) -> TaskRun:
        return next(t for t in self.tasks if t.path == path)

    def artifact(self, path: str, key: str) -> Artifact:
        return self.task(path).outputs[key][0]


LAUNCHER_DEFAULT_ROOT = "minio://mlpipeline/v2/artifacts"  # launcher_v2.go `defaultPipelineRoot`


def backend_pipeline_root(runtime_config: dict, launcher_config: dict | None = None) -> str:
    """The root a run's tasks write under: the run's runtime config, else the kfp-launcher ConfigMap, else the
    launcher's default. The compiled spec's `defaultPipelineRoot` plays no part."""
    return (runtime_config.get("pipeline_root") or (launcher_config or {}).get("defaultPipelineRoot")
            or LAUNCHER_DEFAULT_ROOT)


def _download_from_gcs(uri: str, target: Path) -> int:
    """Every object under `uri` (a file, or a prefix of files) from Cloud Storage (here its emulator)."""
    from google.cloud import storage

    bucket_name, _, prefix = uri[len("gs://"):].partition("/")
    total = 0
    for blob in storage.Client().list_blobs(bucket_name, prefix=prefix):
        local = target if blob.name == prefix else target / blob.name[len(prefix):].lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(local))
        total += local.stat().st_size
    return total


class BackendRun:
    def __init__(self, pipeline_yaml: str | os.PathLike, workdir: str | os.PathLike, runtime_config: dict,
                 images: dict[str, ImageEnv] | None = None, env: dict[str, str] | None = None,
                 run_id: str = "run-1", collect_reversed: bool = True, launcher_config: dict | None = None,
                 cache: BackendCache | None = None, mount: str | os.PathLike | None = None):
        """`runtime_config`: the run's, as the API server stored it ({"pipeline_root", "parameters"})."""
        documents = list(yaml.safe_load_all(Path(pipeline_yaml).read_text()))
        self.spec = documents[0]
        self.workdir = Path(workdir)
        self.mount = Path(mount) if mount else self.workdir / "gcs"  # the bucket's contents: shared by runs
        self.runtime_config = runtime_config
        self.root = backend_pipeline_root(runtime_config, launcher_config).rstrip("/")
        if not self.root.startswith("gs://"):
            raise TaskFailed(f"the launcher would write every artifact under {self.root}, not a gs:// root: this "
                             "harness serves only gs:// (the project's service account reads no MinIO Secret)")
        self.images = images or {}
        self.env = env or {}
        self.run_id = run_id
        self.collect_reversed = collect_reversed
        self.cache = cache or BackendCache()
        self.ids = self.cache.ids
        self.tasks: list[TaskRun] = []
        self.skipped: list[str] = []

    # -------------------------------------------------------------------------------- public
    def run(self, parameters: dict | None = None) -> RunResult:
        """The run with its runtime config's parameters (and `parameters`, for tests) over the defaults."""
        root = self.spec["root"]
        values = {name: definition.get("defaultValue")
                  for name, definition in root.get("inputDefinitions", {}).get("parameters", {}).items()}
        values.update(self.runtime_config.get("parameters") or {})
        values.update(parameters or {})
        outputs: dict = {}
        self._run_dag(root["dag"], values, {}, "", outputs)
        return RunResult(self.run_id, self.tasks, outputs, self.skipped)

    def local_path(self, uri: str) -> Path:
        return self.mount / uri[len("gs://"):]

    # ---------------------------------------------------------------------------------- DAGs
    def _run_dag(self, dag: dict, params: dict, artifacts: dict, scope: str, outputs: dict,
                 output_params: dict | None = None) -> dict:
        """The DAG's tasks in order; returns its output artifacts, and puts its output parameters (a sub-DAG's,
        as a round's model URI) into `output_params`."""
        produced: dict[str, dict[str, list[Artifact]]] = {}
        produced_params: dict[str, dict[str, Any]] = {}
        for name in self._order(dag["tasks"]):
            task = dag["tasks"][name]
            task_params = self._params(task, params, name, produced_params)
            path = f"{scope}{name}"
            policy = task.get("triggerPolicy", {})
            if policy.get("strategy") not in (None, "ALL_UPSTREAM_TASKS_SUCCEEDED"):
                raise NotImplementedError(f"{name}: trigger strategy {policy['strategy']} is not emulated")
            if policy.get("condition") and not cel_condition(policy["condition"], protojson(task_params)):
                self.skipped.append(path)
                produced[name], produced_params[name] = {}, {}
                continue
            task_artifacts = self._artifacts(task, artifacts, produced)
            component = self.spec["components"][task["componentRef"]["name"]]
            if "parameterIterator" in task:
                produced[name] = self._loop(task, component, task_params, task_artifacts, path, outputs)
            elif "dag" in component:
                produced_params[name] = {}
                produced[name] = self._run_dag(component["dag"], task_params, task_artifacts, f"{path}/", outputs,
                                               produced_params[name])
            else:
                cached = bool(task.get("cachingOptions", {}).get("enableCache"))
                produced[name], produced_params[name] = self._execute(component, task_params, task_artifacts, path,
                                                                      cached)
            outputs[path] = produced[name]
        for key, out in dag.get("outputs", {}).get("parameters", {}).items():
            source = out["valueFromParameter"]
            if output_params is not None:
                output_params[key] = produced_params[source["producerSubtask"]][source["outputParameterKey"]]
        return {key: [a for selector in out["artifactSelectors"]
                      for a in produced[selector["producerSubtask"]][selector["outputArtifactKey"]]]
                for key, out in dag.get("outputs", {}).get("artifacts", {}).items()}

    @staticmethod
    def _order(tasks: dict) -> list[str]:
        """Tasks in an order where every producer runs before its consumers."""
        def needs(task: dict) -> set[str]:
            upstream = set(task.get("dependentTasks", []))
            for kind in ("parameters", "artifacts"):
                for ref in task.get("inputs", {}).get(kind, {}).values():
                    for key in ("taskOutputArtifact", "taskOutputParameter"):
                        if key in ref:
                            upstream.add(ref[key]["producerTask"])
            return upstream

        order, pending = [], dict(sorted(tasks.items()))
        while pending:
            ready = [n for n, t in pending.items() if needs(t) <= set(order)]
            if not ready:
                raise ValueError(f"cycle or unknown producer among {sorted(pending)}")
            order.extend(ready)
            for n in ready:
                pending.pop(n)
        return order

    def _params(self, task: dict, params: dict, task_name: str, produced_params: dict) -> dict:
        """Inputs as the driver resolves them; a constant that is exactly a run placeholder is filled in."""
        placeholders = {"{{$.pipeline_job_uuid}}": self.run_id, "{{$.pipeline_task_name}}": task_name}
        resolved = {}
        for name, ref in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in ref:
                resolved[name] = params[ref["componentInputParameter"]]
            elif "runtimeValue" in ref:
                constant = ref["runtimeValue"]["constant"]
                resolved[name] = placeholders.get(constant, constant) if isinstance(constant, str) else constant
            elif "taskOutputParameter" in ref:
                source = ref["taskOutputParameter"]
                resolved[name] = produced_params[source["producerTask"]][source["outputParameterKey"]]
            else:
                raise NotImplementedError(f"parameter {name}: {ref}")
        return resolved

    @staticmethod
    def _artifacts(task: dict, artifacts: dict, produced: dict) -> dict[str, list[Artifact]]:
        resolved = {}
        for name, ref in task.get("inputs", {}).get("artifacts", {}).items():
            if "componentInputArtifact" in ref:
                resolved[name] = artifacts[ref["componentInputArtifact"]]
            else:
                source = ref["taskOutputArtifact"]
                resolved[name] = produced[source["producerTask"]][source["outputArtifactKey"]]
        return resolved

    def _loop(self, task: dict, component: dict, params: dict, artifacts: dict, path: str, outputs: dict) -> dict:
        iterator = task["parameterIterator"]
        items = json.loads(iterator["items"]["raw"])
        collected: dict[str, list[Artifact]] = {}
        for index, item in enumerate(items):
            iteration = self._run_dag(component["dag"], {**params, iterator["itemInput"]: item}, artifacts,
                                      f"{path}[{index}]/", outputs)
            for key, found in iteration.items():
                collected.setdefault(key, []).extend(found)
        if self.collect_reversed:
            collected = {key: found[::-1] for key, found in collected.items()}
        return collected

    # ---------------------------------------------------------------------------- executors
    def _execute(self, component: dict, params: dict, artifacts: dict, path: str,
                 caching: bool = False) -> tuple[dict, dict]:
        """Run one container task (or serve it from the cache); returns its output artifacts and parameters."""
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        if "importer" in executor:
            uri = params[executor["importer"]["artifactUri"]["runtimeParameter"]]
            known = self.cache.imported.setdefault(uri, next(self.ids))  # reimport=False: the same artifact
            return {"artifact": [Artifact(uri, executor["importer"]["typeSchema"]["schemaTitle"], {}, known)]}, {}
        container = executor["container"]
        fingerprint = cache_fingerprint(container, component, params, artifacts)
        if caching and fingerprint in self.cache.executions:
            outputs, parameters = self.cache.executions[fingerprint]
            self.tasks.append(TaskRun(path, container["image"], "", 0, None, outputs, cached=True,
                                      fingerprint=fingerprint))
            return outputs, parameters
        task_dir = self.workdir / "tasks" / path.replace("/", "__")
        task_dir.mkdir(parents=True, exist_ok=True)
        # <root>/<pipeline>/<run id>/<task key>/<uuid>/<output>: the driver's layout (backend 2.14+, launcher_v2.go
        # GenerateOutputURI), with a uuid drawn once per task execution (a retry keeps it)
        task_root = f"{self.root}/{self.spec['pipelineInfo']['name']}/{self.run_id}/{path.rsplit('/', 1)[-1]}/{uuid.uuid4()}"
        outputs = {
            name: [Artifact(f"{task_root}/{name}", d["artifactType"]["schemaTitle"])]
            for name, d in component.get("outputDefinitions", {}).get("artifacts", {}).items()
        }
        parameter_names = component.get("outputDefinitions", {}).get("parameters", {})
        executor_input = protojson({
            "inputs": {
                "parameterValues": params,
                "artifacts": {name: {"artifacts": [a.runtime() for a in found]} for name, found in artifacts.items()},
            },
            "outputs": {
                "artifacts": {name: {"artifacts": [a.runtime() for a in found]} for name, found in outputs.items()},
                "parameters": {name: {"outputFile": str(task_dir / f"parameter-{name}")} for name in parameter_names},
                "outputFile": str(task_dir / "executor_output.json"),
            },
        })
        disk = task_dir / "gcs"  # the pod's own /gcs: an emptyDir the launcher fills
        downloaded = sum(self._download(a.uri, disk) for found in artifacts.values() for a in found)
        for found in outputs.values():
            (disk / found[0].uri[len("gs://"):]).parent.mkdir(parents=True, exist_ok=True)
        log = task_dir / "log.txt"
        image = self.images.get(container["image"], ImageEnv(sys.executable))
        returncode = self._launch(container, image, executor_input, log, disk)
        run = TaskRun(path, container["image"], image.python, returncode, log, outputs, fingerprint=fingerprint,
                      downloaded_bytes=downloaded)
        self.tasks.append(run)
        if returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise TaskFailed(f"task {path} ({container['image']}) exited {returncode}:\n{tail}")
        written = self._record_outputs(task_dir / "executor_output.json", outputs, path)
        run.uploaded_bytes = sum(self._upload(found[0].uri, disk) for found in outputs.values())
        parameters = {name: written.get("parameterValues", {})[name] for name in parameter_names}
        if caching:
            self.cache.executions[fingerprint] = (outputs, parameters)
        return outputs, parameters

    def _download(self, uri: str, disk: Path) -> int:
        """An input artifact copied to the task's disk, as the launcher does (every file under the URI); its
        bytes. The run's own artifacts live under the mount; an imported input in the GCS emulator."""
        if not uri.startswith("gs://"):
            return 0
        target = disk / uri[len("gs://"):]
        source = self.local_path(uri)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        else:
            return _download_from_gcs(uri, target)
        return sum(p.stat().st_size for p in ([target] if target.is_file() else target.rglob("*")) if p.is_file())

    def _upload(self, uri: str, disk: Path) -> int:
        """A task's output copied back to the remote root after the task succeeded; its bytes."""
        source = disk / uri[len("gs://"):]
        if not source.exists():
            return 0
        target = self.local_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return sum(p.stat().st_size for p in ([source] if source.is_file() else source.rglob("*")) if p.is_file())

    def _launch(self, container: dict, image: ImageEnv, executor_input: dict, log: Path, disk: Path) -> int:
        serialized = json.dumps(executor_input)
        argv = [part.replace("{{$}}", serialized) for part in container["command"] + container.get("args", [])]
        leftover = [part for part in argv if "{{$." in part]
        if leftover:
            raise NotImplementedError(f"placeholders the harness does not fill: {leftover}")
        env = {**os.environ, **{e["name"]: e["value"] for e in container.get("env", [])}, **self.env,
               GCS_MOUNT_ENV: str(disk)}
        env["PATH"] = f"{Path(image.python).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE_DIR), image.pythonpath, env.get("PYTHONPATH")) if p)
        with open(log, "w") as out:
            return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                  cwd=log.parent).returncode

    def _record_outputs(self, executor_output: Path, outputs: dict[str, list[Artifact]], path: str) -> dict:
        written = json.loads(executor_output.read_text()) if executor_output.is_file() else {}
        for name, found in outputs.items():
            artifact = found[0]
            entries = written.get("artifacts", {}).get(name, {}).get("artifacts", [])
            metadata = entries[0].get("metadata", {}) if entries else {}
            try:
                artifact.metadata = through_mlmd(metadata)
            except UnsupportedValue as exc:
                raise TaskFailed(f"task {path}: output {name}: failed to convert RuntimeArtifact to MLMD "
                                 f"artifact: {exc}") from None
            artifact.mlmd_id = next(self.ids)
        return written
