"""`pugc preflight`: before a submission, ask the Kubernetes API whether what a run needs is in place.

Checks, in the namespace where the recipe's runs execute (`cluster.namespace` or --namespace): the namespace;
the runs' service account; the Hugging Face token Secret and, when a role uses `backend: openai`, the API key
Secret, each holding the key the recipe names; the model-cache PVC, Bound; and nodes that carry the recipe's
GPU node selector (none is only a warning: a node pool that scales from zero has none until a task asks).
Each line says OK, MISSING or WARN, with the command that fixes it. Anything MISSING makes the exit status 1.

Only the official `kubernetes` client is used (imported when a check runs, never kfp), with the kube config
(`--kubeconfig`, $KUBECONFIG or ~/.kube/config, `--kube-context`) or, inside a pod, the in-cluster config.
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator

from pugc.config import Recipe

OK, MISSING, WARN = "OK", "MISSING", "WARN"
STANDALONE_NAMESPACE = "kubeflow"  # manifests/overlays/standalone
PROFILE_NAMESPACE = "kubeflow-user-example-com"  # manifests/overlays/multi-user, edit for your profile
CACHE_JOB = "pugc-model-cache-permissions"
GPU_RESOURCE = "nvidia.com/gpu"
REQUEST_TIMEOUT_S = 10


@dataclass
class Check:
    status: str  # OK | MISSING | WARN
    subject: str  # e.g. "secret kubeflow/hf-token"
    detail: str = ""
    fix: str = ""  # the command that fixes it


class ClusterUnreachable(Exception):
    """No kube config, or the API server cannot be reached or refuses the credentials: one line for the user."""


class Forbidden(Exception):
    def __init__(self, resource: str, namespace: str | None):
        super().__init__(resource)
        self.resource, self.namespace = resource, namespace


# ---------------------------------------------------------------------------------------------- the client
def core_api(kube_context: str | None = None, kubeconfig: str | None = None):
    """A CoreV1Api from the kube config (or, with neither flag nor config file, the in-cluster config)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig or os.environ.get("KUBECONFIG"), context=kube_context,
                                client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        if kube_context or kubeconfig:
            raise ClusterUnreachable(f"cannot load the kube config: {exc}") from None
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException:
            raise ClusterUnreachable(f"no kube config ({exc}) and not inside a cluster: "
                                     "pass --kubeconfig/--kube-context or set $KUBECONFIG") from None
    configuration.retries = 1  # a refused connection is reported at once, not after urllib3's 3 retries
    return client.CoreV1Api(client.ApiClient(configuration))


def read(call: Callable, resource: str, namespace: str | None, *args, **kwargs):
    """The API object, or None when the API server answers NotFound."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        return call(*args, _request_timeout=REQUEST_TIMEOUT_S, **kwargs)
    except ApiException as exc:
        if exc.status == 404:
            return None
        if exc.status == 403:
            raise Forbidden(resource, namespace) from None
        raise ClusterUnreachable(f"the Kubernetes API server answered {exc.status} {exc.reason} "
                                 f"reading {resource}") from None
    except urllib3.exceptions.HTTPError as exc:
        host = call.__self__.api_client.configuration.host
        raise ClusterUnreachable(f"cannot reach the Kubernetes API server at {host}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).split(": ", 1)[-1] if "Failed to establish" in str(reason) else str(reason)


# ------------------------------------------------------------------------------------------------ checks
def check_namespace(namespace: str, api) -> Check:
    subject = f"namespace {namespace}"
    if read(api.read_namespace, "namespaces", None, namespace):
        return Check(OK, subject)
    detail = ("standalone KFP runs its pods in its own namespace: is Kubeflow Pipelines installed here?"
              if namespace == STANDALONE_NAMESPACE else "multi-user Kubeflow: the Profile controller creates it")
    return Check(MISSING, subject, f"not found ({detail})", f"kubectl create namespace {namespace}")


def check_service_account(namespace: str, name: str | None, api) -> Check:
    if not name:
        return Check(WARN, "service account", "cluster.service_account is not set: runs use the backend's "
                     "default (pipeline-runner, or default-editor on multi-user), without PUGC's Workload Identity")
    subject = f"service account {namespace}/{name}"
    if read(api.read_namespaced_service_account, "serviceaccounts", namespace, name, namespace):
        return Check(OK, subject)
    return Check(MISSING, subject, "not found", apply_overlay(namespace))


def check_secret(namespace: str, name: str | None, key: str, env_var: str, setting: str, api) -> Check:
    if not name:
        return Check(WARN, f"{env_var} secret", f"cluster.{setting} is not set: tasks get no {env_var}")
    subject = f"secret {namespace}/{name}"
    fix = (f'kubectl -n {namespace} create secret generic {name} --from-literal={key}="${env_var}" '
           f"--dry-run=client -o yaml | kubectl apply -f -")
    secret = read(api.read_namespaced_secret, "secrets", namespace, name, namespace)
    if secret is None:
        return Check(MISSING, subject, "not found", fix)
    data = secret.data or {}
    if key not in data:
        held = ", ".join(sorted(data)) or "no keys"
        return Check(MISSING, subject, f"has no key {key!r} (holds {held}); the recipe reads {key!r}", fix)
    if not base64.b64decode(data[key] or ""):
        return Check(MISSING, subject, f"key {key!r} is empty", fix)
    return Check(OK, subject, f"key {key!r} -> {env_var}")


def check_pvc(namespace: str, name: str | None, api) -> Check:
    if not name:
        return Check(WARN, "model cache", "cluster.model_cache_pvc is not set: every model task downloads again")
    subject = f"persistentvolumeclaim {namespace}/{name}"
    claim = read(api.read_namespaced_persistent_volume_claim, "persistentvolumeclaims", namespace, name, namespace)
    if claim is None:
        return Check(MISSING, subject, "not found", apply_overlay(namespace))
    phase = claim.status.phase if claim.status else None
    if phase != "Bound":
        return Check(MISSING, subject,
                     f"is {phase or 'without a phase'}, not Bound (a WaitForFirstConsumer class binds when the "
                     f"{CACHE_JOB} Job mounts it; see the events)",
                     f"kubectl -n {namespace} describe pvc {name}; kubectl -n {namespace} get job {CACHE_JOB}")
    return Check(OK, subject, f"Bound to {claim.spec.volume_name}")


def check_gpu_nodes(selector: dict[str, str], gpus_per_task: int, api) -> Check:
    label_selector = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
    subject = f"GPU nodes {label_selector}"
    nodes = read(api.list_node, "nodes", None, label_selector=label_selector)
    items = nodes.items if nodes else []
    if not items:
        return Check(WARN, subject, "none now: fine for a node pool that scales from zero (the autoscaler adds "
                     "one when a task asks), else tasks stay Pending", gpu_pool_fix(selector, gpus_per_task))
    allocatable = sum(int((n.status.allocatable or {}).get(GPU_RESOURCE, 0)) for n in items if n.status)
    return Check(OK, subject, f"{len(items)} node(s), {allocatable} {GPU_RESOURCE} allocatable")


TRAINJOB_CRD = "trainjobs.trainer.kubeflow.org"
# where each Trainer release takes the node pods' settings (pugc.training.trainjob)
POD_SETTINGS_FIELD = {"2.1": "podTemplateOverrides", "2.2": "runtimePatches"}


def check_trainer(version: str, runtime: str, api) -> Check:
    """A multi-node recipe: the TrainJob CRD is installed and takes the node pods' settings where
    `cluster.trainer_version` puts them (its API server would drop the other field with only a warning)."""
    from kubernetes import client

    crd = read(client.ApiextensionsV1Api(api.api_client).read_custom_resource_definition,
               "customresourcedefinitions", None, TRAINJOB_CRD)
    if crd is None:
        return Check(MISSING, f"CRD {TRAINJOB_CRD}", "Kubeflow Trainer is not installed (dpo_training.nodes > 1 "
                     "creates a TrainJob)", "see manifests/README.md, Kubeflow Trainer")
    fields = set()
    for served in crd.spec.versions or []:
        spec = ((served.schema.open_apiv3_schema.properties or {}).get("spec") if served.schema else None)
        fields |= set((spec.properties or {}) if spec else ())
    has = [v for v, field in POD_SETTINGS_FIELD.items() if field in fields]
    if version not in has:
        installed = has[0] if has else "unknown"
        return Check(MISSING, f"CRD {TRAINJOB_CRD}", f"takes {', '.join(POD_SETTINGS_FIELD[v] for v in has) or 'neither'}"
                     f", not {POD_SETTINGS_FIELD[version]} (cluster.trainer_version {version})",
                     f"set cluster.trainer_version: \"{installed}\" in the recipe")
    found = read(client.CustomObjectsApi(api.api_client).get_cluster_custom_object, "clustertrainingruntimes", None,
                 "trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes", runtime)
    if found is None:
        return Check(MISSING, f"ClusterTrainingRuntime {runtime}", "not found (cluster.trainjob_runtime)",
                     "see manifests/README.md, Kubeflow Trainer runtimes")
    return Check(OK, f"Kubeflow Trainer {version}", f"{POD_SETTINGS_FIELD[version]}, runtime {runtime}")


# ------------------------------------------------------------------------------------------------- fixes
def apply_overlay(namespace: str) -> str:
    if namespace == STANDALONE_NAMESPACE:
        return "kubectl apply -k manifests/overlays/standalone"
    if namespace == PROFILE_NAMESPACE:
        return "kubectl apply -k manifests/overlays/multi-user"
    return (f"kubectl kustomize manifests/overlays/multi-user | sed 's/{PROFILE_NAMESPACE}/{namespace}/g' "
            "| kubectl apply -f -")


def gpu_pool_fix(selector: dict[str, str], gpus_per_task: int) -> str:
    accelerator = selector.get("cloud.google.com/gke-accelerator")
    if accelerator:
        return (f"gcloud container node-pools create pugc-gpu --cluster CLUSTER "
                f"--accelerator type={accelerator},count={gpus_per_task} --enable-autoscaling "
                f"--min-nodes 0 --max-nodes 4")
    labels = " ".join(f"{key}={value}" for key, value in sorted(selector.items()))
    return f"kubectl label nodes NODE {labels}"


# ------------------------------------------------------------------------------------------------- plan
def gpu_selectors(recipe: Recipe) -> list[tuple[dict[str, str], int]]:
    """Each distinct node selector of the recipe's GPU tasks, with the most GPUs one of its tasks asks for."""
    cluster = recipe.cluster
    wanted: dict[tuple, int] = {}
    for spec in cluster.resources.values():
        selector = {**cluster.gpu.node_selector, **spec.node_selector}
        if spec.accelerator_count > 0 and selector:
            key = tuple(sorted(selector.items()))
            wanted[key] = max(wanted.get(key, 0), spec.accelerator_count)
    return [(dict(key), count) for key, count in wanted.items()]


def openai_roles(recipe: Recipe) -> list[str]:
    return [role for role in ("policy", "generator", "judge") if getattr(recipe.engines, role).backend == "openai"]


def planned_checks(recipe: Recipe, namespace: str) -> Iterator[Callable]:
    cluster = recipe.cluster
    yield partial(check_namespace, namespace)
    yield partial(check_service_account, namespace, cluster.service_account)
    yield partial(check_secret, namespace, cluster.hf_token_secret, cluster.hf_token_secret_key, "HF_TOKEN",
                  "hf_token_secret")
    roles = openai_roles(recipe)
    if roles:  # the key is mounted only on tasks whose role uses backend openai (pipelines/platform.py)
        env_var = getattr(recipe.engines, roles[0]).options.get("api_key_env") or "OPENAI_API_KEY"
        yield partial(check_secret, namespace, cluster.openai_api_key_secret, cluster.openai_api_key_secret_key,
                      env_var, "openai_api_key_secret")
    yield partial(check_pvc, namespace, cluster.model_cache_pvc)
    for selector, gpus in gpu_selectors(recipe):
        yield partial(check_gpu_nodes, selector, gpus)
    training = cluster.resources.get("dpo_training")
    if training is not None and training.nodes > 1:
        yield partial(check_trainer, cluster.trainer_version, cluster.trainjob_runtime)


def run_checks(recipe: Recipe, namespace: str, api) -> list[Check]:
    checks = []
    for check in planned_checks(recipe, namespace):
        try:
            checks.append(check(api))
        except Forbidden as denied:
            where = f" -n {denied.namespace}" if denied.namespace else ""
            checks.append(Check(WARN, denied.resource, "not allowed to read it with these credentials, not checked",
                                f"kubectl auth can-i get {denied.resource}{where}"))
    return checks


def run_namespace(recipe: Recipe, namespace: str | None) -> str:
    chosen = namespace or recipe.cluster.namespace
    if not chosen:
        raise ValueError("no namespace: pass --namespace or set cluster.namespace in the recipe "
                         f"({STANDALONE_NAMESPACE} for standalone KFP, the profile namespace for multi-user)")
    return chosen


def report(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"{check.status:<8} {check.subject}" + (f": {check.detail}" if check.detail else ""))
        if check.fix and check.status != OK:
            lines.append(f"{'':<8} fix: {check.fix}")
    missing = sum(c.status == MISSING for c in checks)
    warnings = sum(c.status == WARN for c in checks)
    verdict = "ready to submit" if not missing else "fix what is MISSING before `pugc submit`"
    lines.append(f"{missing} missing, {warnings} warning(s): {verdict}")
    return "\n".join(lines)


def preflight(recipe: Recipe, namespace: str | None = None, kube_context: str | None = None,
              kubeconfig: str | None = None) -> tuple[list[Check], str]:
    """(checks, namespace checked). Raises ClusterUnreachable with one line when the API cannot answer."""
    chosen = run_namespace(recipe, namespace)
    return run_checks(recipe, chosen, core_api(kube_context, kubeconfig)), chosen
