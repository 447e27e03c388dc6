"""Training that outgrows one node: a Kubeflow Trainer v2 `TrainJob` (trainer.kubeflow.org/v1alpha1) running the
same entry point (pugc.training.launch) on N nodes x G GPUs, created, awaited and deleted by the dpo_training task.

The object is a plain dict shaped as the API defines it (the `kubeflow-trainer-api` models of both versions
validate it in the tests); the `kubernetes` client, already in the trainer image, sends it. Pairs are read
from and the checkpoint written to the pipeline root (gs://); the task then copies the checkpoint into its
Model artifact, so lineage is what it is for a single-pod run.

The node pods' settings (service account, cache volume, /dev/shm, placement, no Istio sidecar) go where the
installed Trainer takes them (`cluster.trainer_version`, which `pugc preflight` checks against the CRD):
Trainer v2.1 (Kubeflow 1.11, 26.03) has `spec.podTemplateOverrides`, v2.2 and later `spec.runtimePatches`
(kubeflow/trainer pkg/apis/trainer/v1alpha1/trainjob_types.go at v2.1.0 and v2.2.0); an API server drops the
field its version lacks with only a warning, so the wrong one would run the nodes without any of them.
v2.2+ also takes `activeDeadlineSeconds`. The job is owned by the launching pod (KFP gives it KFP_POD_NAME and
KFP_POD_UID: backend/src/v2/compiler/argocompiler/common.go), so deleting that pod garbage-collects it; the
task also deletes it on SIGTERM (a terminated run) and stops waiting before its own deadline.
"""
from __future__ import annotations

import hashlib
import logging
import os
import signal
import time

from pugc.training.launch import TRAINJOB_RENDEZVOUS, World, entry_args, launch_command, mixed_precision

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
NODE = "node"  # the replicated job and container name of Kubeflow Trainer's torch runtimes
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
CACHE_VOLUME, SHM_VOLUME = "model-cache", "dshm"
PATCH_MANAGER = "pugc.local/dpo-training"  # v2.2+ refuses a runtime patch's manager without a domain prefix
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}  # NCCL and rendezvous traffic must not go through Envoy
CLEANUP_MARGIN_S = 300  # the wait ends this long before the task's deadline, so the job is still deleted
TRAINER_VERSIONS = ("2.1", "2.2")  # where the node pods' settings go: podTemplateOverrides, runtimePatches


def job_name(scope: str) -> str:
    """A DNS-1035 name unique per run and task (`checkpoint.task_scope`), stable across the task's retries (a
    retry finds its own job)."""
    return "pugc-dpo-" + hashlib.sha256(scope.encode()).hexdigest()[:12]


def build_trainjob(name: str, settings: dict, world: World, pairs_uri: str, output_uri: str, section: dict,
                   policy: dict, checkpoint_dir: str | None = None, save_steps: int = 50,
                   owner: dict | None = None) -> dict:
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
    spec = {"runtimeRef": {"apiGroup": GROUP, "kind": settings.get("runtime_kind", "ClusterTrainingRuntime"),
                           "name": settings["runtime"]},
            "trainer": trainer}
    version = str(settings.get("trainer_version") or "2.2")
    if version == "2.1":
        spec["podTemplateOverrides"] = [_pod_override(settings)]
    else:
        spec["runtimePatches"] = [_pod_patch(settings)]
        if settings.get("timeout_seconds"):
            spec["activeDeadlineSeconds"] = int(settings["timeout_seconds"])
    metadata = {"name": name, "namespace": settings["namespace"],
                "labels": {"app.kubernetes.io/part-of": "pugc", **settings.get("labels", {})}}
    if owner:
        metadata["ownerReferences"] = [owner]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainJob", "metadata": metadata, "spec": spec}


def launching_pod() -> dict | None:
    """An owner reference to the pod this task runs in, from what KFP sets on every task's container."""
    name, uid = os.environ.get("KFP_POD_NAME"), os.environ.get("KFP_POD_UID")
    if not (name and uid):
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid, "controller": False,
            "blockOwnerDeletion": False}


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


def _node_pod(settings: dict) -> dict:
    """Volumes, mounts, placement and identity of every node's pod (the fields both Trainer versions take)."""
    volumes = [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": settings["shm_size"]}}]
    mounts = [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}]
    if settings.get("cache_pvc"):
        volumes.append({"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": settings["cache_pvc"]}})
        mounts.append({"name": CACHE_VOLUME, "mountPath": settings["cache_path"]})
    pod = {"volumes": volumes, "containers": [{"name": NODE, "volumeMounts": mounts}],
           "nodeSelector": settings.get("node_selector", {}), "tolerations": settings.get("tolerations", [])}
    if settings.get("service_account"):
        pod["serviceAccountName"] = settings["service_account"]
    return pod


def _pod_patch(settings: dict) -> dict:
    """Trainer v2.2+: a runtime patch of the `node` job's pod template, with a security context (v2.1 has none
    to override: the image's non-root user applies there)."""
    pod = {**_node_pod(settings),
           "securityContext": {"runAsUser": int(settings["run_as_user"]), "runAsNonRoot": True}}  # KFP: floats
    template = {"metadata": {"annotations": dict(NO_SIDECAR)}, "spec": pod}
    job_patch = {"name": NODE, "template": {"spec": {"template": template}}}
    return {"manager": PATCH_MANAGER, "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [job_patch]}}}}


def _pod_override(settings: dict) -> dict:
    """Trainer v2.1: a pod template override of the `node` job (metadata labels and annotations, and the pod
    spec fields it allows)."""
    return {"targetJobs": [{"name": NODE}], "metadata": {"annotations": dict(NO_SIDECAR)}, "spec": _node_pod(settings)}


# ------------------------------------------------------------------------------------------ submit, await
class TrainJobFailed(RuntimeError):
    """The TrainJob ended Failed; the message carries its reason."""


def wait_budget(timeout_seconds: float | None) -> float | None:
    """How long to wait for the job: the task's own timeout less a margin, so the task (not the kubelet, at the
    pod's deadline) ends the wait and deletes the job."""
    if not timeout_seconds:
        return None
    return max(float(timeout_seconds) - CLEANUP_MARGIN_S, float(timeout_seconds) / 2)


class Terminated(RuntimeError):
    """The task got SIGTERM (the run was terminated, or the pod is being deleted)."""


def _on_sigterm(signum, frame):
    raise Terminated("SIGTERM: the run was terminated; deleting the TrainJob")


def run_trainjob(job: dict, poll_seconds: float = 30, timeout_seconds: float | None = None, api_client=None) -> dict:
    """Create `job` (or find it, on a retried task), stream its conditions into the log until it completes or
    fails, log its pods' last lines, delete it (also on SIGTERM and on the wait's timeout, which ends before the
    task's: `wait_budget`). Returns the final TrainJob; raises TrainJobFailed."""
    from kubernetes import client

    api_client = api_client or _api_client()
    custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    _create(custom, job)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _in_main_thread() else None
    try:
        final = _await(custom, namespace, name, poll_seconds, wait_budget(timeout_seconds))
        _log_pods(core, namespace, name)
        condition = _condition(final, "Failed")
        if condition:
            raise TrainJobFailed(f"TrainJob {namespace}/{name} failed: {condition.get('reason', '')}: "
                                 f"{condition.get('message', '')}")
        return final
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        log.info("TrainJob %s/%s deleted", namespace, name)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


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
