"""Training that outgrows one node: a Kubeflow Trainer v2 `TrainJob` (trainer.kubeflow.org/v1alpha1) running the
same entry point (pugc.training.launch) on N nodes x G GPUs, created, awaited and deleted by the dpo_training task.

The object is a plain dict shaped as the API defines it (the `kubeflow-trainer-api` models validate it in the
tests); the `kubernetes` client, already in the trainer image, sends it. Pairs are read from and the checkpoint
written to the pipeline root (gs://); the task then copies the checkpoint into its Model artifact, so lineage
is what it is for a single-pod run.
"""
from __future__ import annotations

import hashlib
import logging
import time

from pugc.training.launch import TRAINJOB_RENDEZVOUS, World, entry_args, launch_command, mixed_precision

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
NODE = "node"  # the replicated job and container name of Kubeflow Trainer's torch runtimes
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
CACHE_VOLUME, SHM_VOLUME = "model-cache", "dshm"


def job_name(scope: str) -> str:
    """A DNS-1035 name unique per run and task (`checkpoint.task_scope`), stable across the task's retries (a
    retry finds its own job)."""
    return "pugc-dpo-" + hashlib.sha256(scope.encode()).hexdigest()[:12]


def build_trainjob(name: str, settings: dict, world: World, pairs_uri: str, output_uri: str, section: dict,
                   policy: dict, checkpoint_dir: str | None = None, save_steps: int = 50) -> dict:
    """The TrainJob for `world` (nodes x GPUs per node). `settings` is the runtime's `dpo_trainjob` entry
    (pipelines/platform.py): image, namespace, runtime, service account, HF token Secret, cache PVC, shm,
    node selector, tolerations, labels, user, resources per node."""
    entry = entry_args(pairs_uri, output_uri, section, policy, checkpoint_dir, save_steps, strategy_label="trainjob")
    command = launch_command(world, entry, on_gpu=True, rendezvous=TRAINJOB_RENDEZVOUS, python="python",
                             precision=mixed_precision(section))
    trainer = {
        "image": settings["image"], "command": command, "numNodes": world.nodes,
        "numProcPerNode": world.processes_per_node, "env": _env(settings),
        "resourcesPerNode": _resources(settings, world.processes_per_node),
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainJob",
        "metadata": {"name": name, "namespace": settings["namespace"],
                     "labels": {"app.kubernetes.io/part-of": "pugc", **settings.get("labels", {})}},
        "spec": {"runtimeRef": {"apiGroup": GROUP, "kind": settings.get("runtime_kind", "ClusterTrainingRuntime"),
                                "name": settings["runtime"]},
                 "trainer": trainer, "runtimePatches": [_pod_patch(settings)]},
    }


def _env(settings: dict) -> list[dict]:
    env = [{"name": "HF_HOME", "value": f"{settings['cache_path']}/huggingface"},
           {"name": "PYTHONUNBUFFERED", "value": "1"}]
    if settings.get("hf_token_secret"):
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": settings["hf_token_secret"], "key": settings.get("hf_token_secret_key", "token")}}})
    return env


def _resources(settings: dict, gpus: int) -> dict:
    limits = {settings.get("accelerator_type", "nvidia.com/gpu"): str(gpus)}
    for key in ("cpu", "memory"):
        if settings.get(key):
            limits[key] = str(settings[key])
    return {"limits": limits, "requests": dict(limits)}


def _pod_patch(settings: dict) -> dict:
    """Volumes, mounts, placement and identity of every node's pod, as a runtime patch of the `node` job."""
    volumes = [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": settings["shm_size"]}}]
    mounts = [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}]
    if settings.get("cache_pvc"):
        volumes.append({"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": settings["cache_pvc"]}})
        mounts.append({"name": CACHE_VOLUME, "mountPath": settings["cache_path"]})
    pod = {"volumes": volumes, "containers": [{"name": NODE, "volumeMounts": mounts}],
           "securityContext": {"runAsUser": int(settings["run_as_user"]), "runAsNonRoot": True},  # KFP: floats
           "nodeSelector": settings.get("node_selector", {}), "tolerations": settings.get("tolerations", [])}
    if settings.get("service_account"):
        pod["serviceAccountName"] = settings["service_account"]
    job_patch = {"name": NODE, "template": {"spec": {"template": {"spec": pod}}}}
    return {"manager": "pugc", "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [job_patch]}}}}


# ------------------------------------------------------------------------------------------ submit, await
class TrainJobFailed(RuntimeError):
    """The TrainJob ended Failed; the message carries its reason."""


def run_trainjob(job: dict, poll_seconds: float = 30, timeout_seconds: float | None = None, api_client=None) -> dict:
    """Create `job` (or find it, on a retried task), stream its conditions into the log until it completes or
    fails, log its pods' last lines, delete it. Returns the final TrainJob; raises TrainJobFailed."""
    from kubernetes import client

    api_client = api_client or _api_client()
    custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    _create(custom, job)
    try:
        final = _await(custom, namespace, name, poll_seconds, timeout_seconds)
        _log_pods(core, namespace, name)
        condition = _condition(final, "Failed")
        if condition:
            raise TrainJobFailed(f"TrainJob {namespace}/{name} failed: {condition.get('reason', '')}: "
                                 f"{condition.get('message', '')}")
        return final
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        log.info("TrainJob %s/%s deleted", namespace, name)


def _api_client():
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def _create(custom, job: dict) -> None:
    from kubernetes.client.exceptions import ApiException

    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, job)
        log.info("TrainJob %s/%s created: %d nodes x %s GPUs", namespace, name, job["spec"]["trainer"]["numNodes"],
                 job["spec"]["trainer"]["numProcPerNode"])
    except ApiException as exc:
        if exc.status != 409:
            raise
        log.info("TrainJob %s/%s exists (a retried task): waiting for it", namespace, name)


def _condition(job: dict, kind: str) -> dict | None:
    conditions = (job.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind and c.get("status") == "True"), None)


def _await(custom, namespace: str, name: str, poll_seconds: float, timeout_seconds: float | None) -> dict:
    deadline = time.monotonic() + timeout_seconds if timeout_seconds else None
    seen: set[tuple] = set()
    while True:
        job = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        for c in (job.get("status") or {}).get("conditions") or []:
            key = (c.get("type"), c.get("status"), c.get("reason"))
            if key not in seen:
                seen.add(key)
                log.info("TrainJob %s: %s=%s %s %s", name, *key, c.get("message", ""))
        if _condition(job, "Complete") or _condition(job, "Failed"):
            return job
        if deadline and time.monotonic() > deadline:
            raise TimeoutError(f"TrainJob {namespace}/{name} did not finish within {timeout_seconds}s")
        time.sleep(poll_seconds)


def _log_pods(core, namespace: str, name: str, lines: int = 50) -> None:
    from kubernetes.client.exceptions import ApiException

    for pod in core.list_namespaced_pod(namespace, label_selector=f"{JOBSET_LABEL}={name}").items:
        try:
            text = core.read_namespaced_pod_log(pod.metadata.name, namespace, tail_lines=lines)
        except ApiException as exc:
            text = f"(no log: {exc.reason})"
        log.info("TrainJob %s pod %s, last lines:\n%s", name, pod.metadata.name, text)
