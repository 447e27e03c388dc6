"""Per-task platform settings from the recipe's `cluster:` section, applied in one place, per compile target.

- every task: display name, caching, cpu/memory requests and limits;
  on open-source KFP also pod labels and a non-root security context;
- model tasks (LLM stages, DPO): HF_HOME under the model cache; on KFP also the Hugging Face token from a
  Kubernetes Secret (by name: its value never enters the pipeline), the model-cache PVC, and /dev/shm as a
  memory-backed emptyDir;
- tasks whose engine role uses `backend: openai`: on KFP the API key from a Kubernetes Secret, as that
  engine's `api_key_env` variable. Only those tasks: the key reaches no pod that does not call the server,
  and a missing Secret (the reference is not optional) blocks only the tasks that need it;
- GPU tasks: accelerator type and count (a Kubernetes resource name for KFP, an enum name for Vertex),
  retries with exponential backoff; on KFP also node selector, tolerations and timeout;
- hand-off tasks (pugc.handoff): on KFP the Hub token (handoff.hub.token_secret) as HF_TOKEN on upload_to_hub
  and the Model Registry token (handoff.model_registry.token_secret) on register_model, each on its task alone;
- caching as the recipe says, except `input_fingerprint`, which always runs: it reads what the input URI
  holds now, and ingest takes it as a parameter, so new files under an unchanged URI miss the cache from
  ingest on (a recurring run's parameters are fixed when it is scheduled, so this must happen at run time).

Vertex AI cannot load kfp-kubernetes settings, so the `vertex` target leaves them out.
"""
from __future__ import annotations

from pugc.config import ClusterConfig, EngineConfig, EnginesConfig, HandoffConfig, ResourceSpec

TARGETS = ("kfp", "vertex")
MODEL_TASKS = ("ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "response_sampling", "reward_scoring",
               "dpo_training", "evaluate", "safety_eval")
HF_TOKEN_ENV = "HF_TOKEN"
SHM_VOLUME = "dshm"
NEVER_CACHED = ("input_fingerprint",)
ARGO_DEFAULT_WINDOW_S = 3600  # what KFP compiles when a retry names no backoff_max_duration


PREVIOUS_ROUND = "_previous"  # a round's evaluation against the previous round: the evaluation's tasks again


def settings_of(task_key: str) -> str:
    """The task whose recipe settings a task takes: `evaluate_previous_merge` those of `evaluate_merge`."""
    return task_key.replace(PREVIOUS_ROUND, "")


def apply_platform(cluster: ClusterConfig, tasks: dict, target: str = "kfp",
                   engines: EnginesConfig | None = None, handoff: HandoffConfig | None = None) -> None:
    if target not in TARGETS:
        raise ValueError(f"compile target {target!r} is not one of {', '.join(TARGETS)}")
    for key, task in tasks.items():
        task.set_display_name(key)
        name = settings_of(key)
        spec = cluster.resources.get(name) or ResourceSpec()
        task.set_caching_options(cluster.caching and name not in NEVER_CACHED)
        if runs_as_custom_job(spec, target):  # machine, disk, GPUs and env went into the job (task_component)
            _retry(task, cluster.gpu.retry, spec, target)
            continue
        _compute(task, spec)
        if target == "kfp":
            _pod(task, cluster, spec)
        if name in MODEL_TASKS:
            _model_task(task, cluster, target)
        if target == "kfp" and engines is not None:
            _openai_key(task, cluster, openai_engine_of(name, engines))
        if spec.accelerator_count > 0:
            _gpu_task(task, cluster, spec, target)
        if target == "kfp" and handoff is not None:
            _handoff_token(task, name, handoff)


def _handoff_token(task, name: str, handoff: HandoffConfig) -> None:
    from kfp import kubernetes

    from pugc.handoff import HUB_TOKEN_ENV, REGISTRY_TOKEN_ENV

    if name == "upload_to_hub" and handoff.hub is not None:
        kubernetes.use_secret_as_env(task, handoff.hub.token_secret, {handoff.hub.token_secret_key: HUB_TOKEN_ENV})
    registry = handoff.model_registry
    if name == "register_model" and registry is not None and registry.token_secret:
        kubernetes.use_secret_as_env(task, registry.token_secret, {registry.token_secret_key: REGISTRY_TOKEN_ENV})


def _compute(task, spec: ResourceSpec) -> None:
    if spec.cpu_request is not None:
        task.set_cpu_request(str(spec.cpu_request))
    if spec.cpu_limit is not None:
        task.set_cpu_limit(str(spec.cpu_limit))
    if spec.memory_request is not None:
        task.set_memory_request(str(spec.memory_request))
    if spec.memory_limit is not None:
        task.set_memory_limit(str(spec.memory_limit))


def _pod(task, cluster: ClusterConfig, spec: ResourceSpec) -> None:
    from kfp import kubernetes

    for key, value in {"app.kubernetes.io/part-of": "pugc", **cluster.labels}.items():
        kubernetes.add_pod_label(task, key, value)
    kubernetes.set_security_context(task, run_as_user=cluster.run_as_user, run_as_non_root=True)
    if spec.timeout_seconds:
        kubernetes.set_timeout(task, spec.timeout_seconds)


def _model_task(task, cluster: ClusterConfig, target: str) -> None:
    if target != "kfp":
        for variable in vertex_model_env(cluster):
            task.set_env_variable(variable["name"], variable["value"])
        return
    task.set_env_variable("HF_HOME", f"{cluster.model_cache_path}/huggingface")
    task.set_env_variable("VLLM_CACHE_ROOT", f"{cluster.model_cache_path}/vllm")
    from kfp import kubernetes

    if cluster.hf_token_secret:
        kubernetes.use_secret_as_env(task, cluster.hf_token_secret, {cluster.hf_token_secret_key: HF_TOKEN_ENV})
    if cluster.model_cache_pvc:
        kubernetes.mount_pvc(task, cluster.model_cache_pvc, cluster.model_cache_path)
    kubernetes.empty_dir_mount(task, SHM_VOLUME, "/dev/shm", medium="Memory", size_limit=cluster.shm_size)


def openai_engine_of(task_name: str, engines: EnginesConfig) -> EngineConfig | None:
    """The engine a task calls through `backend: openai`, if any (by its stage's engine role)."""
    from pugc.stages import STAGE_SPECS

    spec = STAGE_SPECS.get(task_name)
    if task_name == "evaluate":  # its remote model: the one that grades
        engine = engines.grader
    else:
        engine = getattr(engines, spec.engine_role) if spec and spec.engine_role else None
    return engine if engine is not None and engine.backend == "openai" else None


def _openai_key(task, cluster: ClusterConfig, engine: EngineConfig | None) -> None:
    if engine is None or not cluster.openai_api_key_secret:
        return
    from kfp import kubernetes

    from pugc.engines.openai_engine import OPTION_DEFAULTS

    env_var = engine.options.get("api_key_env") or OPTION_DEFAULTS["api_key_env"]
    kubernetes.use_secret_as_env(task, cluster.openai_api_key_secret, {cluster.openai_api_key_secret_key: env_var})


def _gpu_task(task, cluster: ClusterConfig, spec: ResourceSpec, target: str) -> None:
    gpu = cluster.gpu
    if target == "vertex":
        task.set_accelerator_type(spec.vertex_accelerator_type or gpu.vertex_accelerator_type)
    else:
        task.set_accelerator_type(spec.accelerator_type or "nvidia.com/gpu")
    task.set_accelerator_limit(spec.accelerator_count)
    _retry(task, gpu.retry, spec, target)
    if target != "kfp":
        return
    from kfp import kubernetes

    for key, value in {**gpu.node_selector, **spec.node_selector}.items():
        kubernetes.add_node_selector(task, key, value)
    for toleration in gpu.tolerations:
        kubernetes.add_toleration(task, key=toleration.key, operator=toleration.operator, value=toleration.value,
                                  effect=toleration.effect)


def _retry(task, retry, spec: ResourceSpec, target: str) -> None:
    if retry.max_retries > 0:
        task.set_retry(num_retries=retry.max_retries, backoff_duration=retry.backoff_duration,
                       backoff_factor=retry.backoff_factor,
                       backoff_max_duration=retry.backoff_max_duration or _default_window(retry, spec, target))


def _default_window(retry, spec: ResourceSpec, target: str) -> str | None:
    """KFP: the window that covers every try. Vertex AI caps the window at one hour: its default."""
    return f"{retry_window_s(retry, spec.timeout_seconds)}s" if target == "kfp" else None


def seconds(duration: str | int | float) -> float:
    """'90s', '2m', '1h' or a number of seconds."""
    text = str(duration).strip()
    units = {"s": 1, "m": 60, "h": 3600}
    if text[-1:] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def retry_window_s(retry, timeout_seconds: int | None) -> int:
    """How long after its first start a task may still be retried, as Argo counts it: every try running to
    its timeout plus every backoff wait. Without a timeout there is nothing to derive it from."""
    if not timeout_seconds:
        return ARGO_DEFAULT_WINDOW_S
    waits = sum(seconds(retry.backoff_duration) * retry.backoff_factor ** i for i in range(retry.max_retries))
    return int((retry.max_retries + 1) * timeout_seconds + waits)


# ------------------------------------------------------------------------------- Vertex AI custom jobs
# Machine types that carry N accelerators of a kind (Vertex AI's A3, A2 and G2 families).
VERTEX_MACHINES = {
    "NVIDIA_H100_80GB": {1: "a3-highgpu-1g", 2: "a3-highgpu-2g", 4: "a3-highgpu-4g", 8: "a3-highgpu-8g"},
    "NVIDIA_A100_80GB": {1: "a2-ultragpu-1g", 2: "a2-ultragpu-2g", 4: "a2-ultragpu-4g", 8: "a2-ultragpu-8g"},
    "NVIDIA_TESLA_A100": {1: "a2-highgpu-1g", 2: "a2-highgpu-2g", 4: "a2-highgpu-4g", 8: "a2-highgpu-8g"},
    "NVIDIA_L4": {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"},
}
CUSTOM_JOB_MAX_TIMEOUT = "604800s"  # Vertex's own limit: 7 days


def runs_as_custom_job(spec: ResourceSpec, target: str) -> bool:
    return target == "vertex" and spec.accelerator_count > 0


def task_component(cluster: ClusterConfig, name: str, component, target: str):
    """The component a task runs. On Vertex AI a GPU task becomes a custom job (Google Cloud Pipeline
    Components' wrapper): the only way a pipeline task gets a chosen machine type and boot disk there."""
    spec = cluster.resources.get(name) or ResourceSpec()
    if not runs_as_custom_job(spec, target):
        return component
    from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component

    accelerator = spec.vertex_accelerator_type or cluster.gpu.vertex_accelerator_type
    return create_custom_training_job_from_component(
        component, display_name=name, machine_type=vertex_machine_type(name, spec, accelerator),
        accelerator_type=accelerator, accelerator_count=spec.accelerator_count,
        boot_disk_type=cluster.vertex.boot_disk_type,
        boot_disk_size_gb=spec.vertex_boot_disk_size_gb or cluster.vertex.boot_disk_size_gb,
        timeout=f"{spec.timeout_seconds}s" if spec.timeout_seconds else CUSTOM_JOB_MAX_TIMEOUT,
        env=vertex_model_env(cluster) if name in MODEL_TASKS else [], strategy=cluster.vertex.strategy,
        labels={"pipeline": "pugc", "task": name.replace("_", "-"), **cluster.labels},
    )


def custom_job_inputs(cluster: ClusterConfig, name: str, target: str, identity) -> dict:
    """A custom-job task's `service_account` (the pipeline's `vertex_service_account` parameter): without one,
    Vertex runs the job as the project's Custom Code Service Agent, not as the account the pipeline job was
    submitted with, and that agent reaches neither the HF token in Secret Manager nor buckets elsewhere."""
    spec = cluster.resources.get(name) or ResourceSpec()
    return {"service_account": identity} if identity is not None and runs_as_custom_job(spec, target) else {}


def vertex_machine_type(name: str, spec: ResourceSpec, accelerator: str) -> str:
    if spec.vertex_machine_type:
        return spec.vertex_machine_type
    machine = VERTEX_MACHINES.get(accelerator, {}).get(spec.accelerator_count)
    if not machine:
        raise ValueError(f"cluster.resources.{name}: no known Vertex machine holds {spec.accelerator_count} x "
                         f"{accelerator}; set vertex_machine_type")
    return machine


def vertex_model_env(cluster: ClusterConfig) -> list[dict[str, str]]:
    """Model tasks on Vertex: the token's Secret Manager name (read at run time); caches stay on the boot disk."""
    from pugc.secrets import HF_TOKEN_SECRET_ENV

    secret = cluster.vertex.hf_token_secret
    return [{"name": HF_TOKEN_SECRET_ENV, "value": secret}] if secret else []


# ------------------------------------------------------------------------------- Kubeflow Trainer TrainJob
def training_runtime(cluster: ClusterConfig, target: str, image: str) -> dict:
    """What the dpo_training task needs to create its TrainJob when the recipe asks for several nodes (a part
    of the `runtime` pipeline parameter; nothing when it trains in its own pod)."""
    spec = cluster.resources.get("dpo_training") or ResourceSpec()
    if spec.nodes <= 1:
        return {}
    if target != "kfp":
        raise ValueError("cluster.resources.dpo_training.nodes > 1 creates a Kubeflow Trainer TrainJob: kfp target only")
    from pugc.config import without_nulls

    settings = {
        "nodes": spec.nodes, "image": image, "namespace": cluster.namespace or "kubeflow",
        "runtime": cluster.trainjob_runtime, "poll_seconds": cluster.trainjob_poll_seconds,
        "trainer_version": cluster.trainer_version,
        "service_account": cluster.service_account, "hf_token_secret": cluster.hf_token_secret,
        "hf_token_secret_key": cluster.hf_token_secret_key, "cache_pvc": cluster.model_cache_pvc,
        "cache_path": cluster.model_cache_path, "shm_size": cluster.shm_size, "run_as_user": cluster.run_as_user,
        "accelerator_type": spec.accelerator_type or "nvidia.com/gpu", "cpu": spec.cpu_limit,
        "memory": spec.memory_limit, "timeout_seconds": spec.timeout_seconds,
        "node_selector": {**cluster.gpu.node_selector, **spec.node_selector},
        "tolerations": [without_nulls(vars(t).copy()) for t in cluster.gpu.tolerations],
        "labels": dict(cluster.labels),
    }
    return {"dpo_trainjob": without_nulls(settings)}
