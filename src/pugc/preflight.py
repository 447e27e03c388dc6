"""`pugc preflight`: before a submission, ask the Kubernetes API whether what a run needs is in place.

Checks, in the namespace where the recipe's runs execute (`cluster.namespace` or --namespace): the namespace;
the runs' service account; the Hugging Face token Secret and, when a role uses `backend: openai`, the API key
Secret, each holding the key the recipe names; the model-cache PVC, Bound; and nodes that carry the recipe's
GPU node selector (none is only a warning: a node pool that scales from zero has none until a task asks).
Placeholders are refused: the service account's Workload Identity annotation as shipped
(`pugc-runner@my-gcp-project...`, `PROJECT_ID`), a recipe value or `$PUGC_IMAGE_REGISTRY` still naming
`BUCKET`, `PROJECT` or `my-project`; and a recipe whose models are gated on the Hugging Face Hub needs its token
Secret (`cluster.hf_token_secret`). Each line says OK, MISSING or WARN, with the command that fixes it. Anything
MISSING makes the exit status 1.

Only the official `kubernetes` client is used (imported when a check runs, never kfp), with the kube config
(`--kubeconfig`, $KUBECONFIG or ~/.kube/config, `--kube-context`) or, inside a pod, the in-cluster config.
"""
from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from pugc.config import Recipe

OK, MISSING, WARN = "OK", "MISSING", "WARN"
STANDALONE_NAMESPACE = "kubeflow"  # manifests/overlays/standalone
PROFILE_NAMESPACE = "kubeflow-user-example-com"  # manifests/overlays/multi-user, edit for your profile
CACHE_JOB = "pugc-model-cache-permissions"
GPU_RESOURCE = "nvidia.com/gpu"
REQUEST_TIMEOUT_S = 10
WORKLOAD_IDENTITY = "iam.gke.io/gcp-service-account"
GKE_COMPONENT = "manifests/components/gke/kustomization.yaml"  # where the annotation is set
CHECKOUT = Path(__file__).resolve().parents[2]  # the repository, when pugc runs from a checkout

# What the shipped files hold until someone fills in their own: a project, bucket or registry placeholder, as a
# whole word (`gs://BUCKET/...`, `projects/PROJECT/...`, `pugc-runner@my-gcp-project.iam...`).
PLACEHOLDER = re.compile(r"(?<![A-Za-z0-9_-])(PROJECT_ID|PROJECT|BUCKET|REGION|my-gcp-project|my-project|"
                         r"my-bucket|your-project(?:-id)?|your-bucket)(?![A-Za-z0-9_-])")
# Hub organisations whose models ask each user to accept terms before a download (a token is then required).
GATED_PREFIXES = ("meta-llama/", "mistralai/", "google/gemma", "google/medgemma", "CohereForAI/", "CohereLabs/",
                  "bigcode/starcoder2")


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
    account = read(api.read_namespaced_service_account, "serviceaccounts", namespace, name, namespace)
    if account is None:
        shipped = shipped_placeholder()
        detail = "not found" + (f" (and {GKE_COMPONENT} still names the placeholder {shipped}: set your Google "
                                f"service account there before applying)" if shipped else "")
        return Check(MISSING, subject, detail, apply_overlay(namespace))
    google = ((account.metadata.annotations or {}) if account.metadata else {}).get(WORKLOAD_IDENTITY)
    if not google:
        return Check(WARN, subject, f"no {WORKLOAD_IDENTITY} annotation: on GKE its pods get no Workload Identity, "
                     "so no bucket access", annotate_fix(namespace, name))
    found = placeholder(google)
    if found:
        return Check(MISSING, subject, f"annotation {WORKLOAD_IDENTITY} is the placeholder {google} ({found}): "
                     f"set your Google service account in {GKE_COMPONENT} and apply the overlay again",
                     annotate_fix(namespace, name))
    return Check(OK, subject, f"Workload Identity {google}")


def check_secret(namespace: str, name: str | None, key: str, env_var: str, setting: str, api,
                 gated: list[tuple[str, str]] | None = None) -> Check:
    if not name:
        if gated:
            where, model = gated[0]
            return Check(MISSING, f"{env_var} secret", f"cluster.{setting} is not set, but {where} {model} is gated "
                         "on the Hugging Face Hub: its download needs a token",
                         f"kubectl -n {namespace} create secret generic hf-token --from-literal={key}=\"$HF_TOKEN\"; "
                         f"then set cluster.{setting}: hf-token in the recipe")
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


def check_recipe_placeholders(recipe: Recipe, api=None) -> list[Check]:
    """Recipe values (URIs, Secret Manager names) still naming a placeholder: one MISSING line each."""
    found = [Check(MISSING, f"recipe {key}", f"{value!r} still holds the placeholder {word}",
                   f"set {key} to your own value in the recipe (or --set {key}=...)")
             for key, value, word in recipe_placeholders(recipe)]
    return found or [Check(OK, "recipe", "no placeholder project, bucket or registry")]


def check_registry(api=None) -> Check:
    """The registry compiled into every task's image (components/images.py reads $PUGC_IMAGE_REGISTRY)."""
    registry = os.environ.get("PUGC_IMAGE_REGISTRY", "")
    fix = "export PUGC_IMAGE_REGISTRY=REGION-docker.pkg.dev/PROJECT_ID/pugc (where `make push` pushed the images)"
    if not registry:
        return Check(WARN, "image registry", "PUGC_IMAGE_REGISTRY is not set here: a pipeline compiled in this "
                     "shell names images no cluster can pull (pugc/base:...)", fix)
    word = placeholder(registry)
    if word:
        return Check(MISSING, "image registry", f"PUGC_IMAGE_REGISTRY={registry} still holds the placeholder {word}",
                     fix.replace("REGION-docker.pkg.dev/PROJECT_ID", "<your region>-docker.pkg.dev/<your project>"))
    return Check(OK, "image registry", registry)


# ------------------------------------------------------------------------------------------- placeholders
def placeholder(value: str) -> str | None:
    """The placeholder word in `value` (a project, bucket or region left as shipped), if any."""
    match = PLACEHOLDER.search(value)
    return match.group(1) if match else None


def shipped_placeholder(path: Path | None = None) -> str | None:
    """The Workload Identity annotation in the checkout's GKE component, when it is still a placeholder."""
    path = path or CHECKOUT / GKE_COMPONENT
    try:
        text = path.read_text()
    except OSError:
        return None  # an installed package: no manifests to read
    for value in re.findall(r"value:\s*(\S+@\S+)", text):
        if placeholder(value):
            return value
    return None


def _strings(value, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{key}[{index}]")
    elif isinstance(value, str):
        yield key, value


def recipe_placeholders(recipe: Recipe) -> list[tuple[str, str, str]]:
    """(key, value, placeholder) for every location-like recipe value (gs://, /gcs/, projects/..., a registry
    host, a Google service account) that still names a placeholder, such as gs://BUCKET/pugc."""
    found = []
    for key, value in _strings(recipe.to_dict()):
        if re.search(r"gs://|^/gcs/|projects/|\.pkg\.dev|gserviceaccount\.com", value):
            word = placeholder(value)
            if word:
                found.append((key, value, word))
    return found


def gated_models(recipe: Recipe) -> list[tuple[str, str]]:
    """(recipe key, hub id) of the models a cluster task downloads from the Hub that are gated there (accept the
    terms on the model page, then a token is needed). Roles served over `backend: openai` download nothing,
    except the policy, which is also trained from its weights."""
    engines = recipe.engines
    found = []
    for role in ("policy", "generator", "judge", "evaluator"):
        engine = getattr(engines, role)
        if engine is None or (engine.backend == "openai" and role != "policy"):
            continue
        if engine.model.startswith(GATED_PREFIXES):
            found.append((f"engines.{role}.model", engine.model))
    baseline = getattr(recipe.evaluation, "baseline", None)
    if isinstance(baseline, str) and baseline.startswith(GATED_PREFIXES):
        found.append(("evaluation.baseline", baseline))
    return found


def token_warning(recipe: Recipe, target: str) -> str | None:
    """What `pugc compile`/`submit` say when the recipe's gated models would reach the cluster without a token."""
    gated = gated_models(recipe)
    if not gated:
        return None
    models = " and ".join(f"{where} {model}" for where, model in gated)
    verb = "is" if len(gated) == 1 else "are"
    if target == "vertex" and not recipe.cluster.vertex.hf_token_secret:
        return (f"{models} {verb} gated on the Hugging Face Hub and cluster.vertex.hf_token_secret is not set, so "
                "their Vertex tasks cannot download them: store the token in Secret Manager (gcloud secrets create "
                "hf-token --data-file=-) and set cluster.vertex.hf_token_secret: projects/PROJECT_ID/secrets/hf-token")
    if target == "kfp" and not recipe.cluster.hf_token_secret:
        return (f"{models} {verb} gated on the Hugging Face Hub and cluster.hf_token_secret is not set, so their "
                "tasks cannot download them: create the hf-token Secret (manifests/README.md) and set "
                "cluster.hf_token_secret: hf-token")
    return None


# ------------------------------------------------------------------------------------------------- fixes
def annotate_fix(namespace: str, name: str) -> str:
    return (f"kubectl -n {namespace} annotate serviceaccount {name} --overwrite "
            f"{WORKLOAD_IDENTITY}=pugc-runner@$PROJECT_ID.iam.gserviceaccount.com")


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
    """Roles served over `backend: openai`, whose tasks get the API key (the evaluator: the evaluate task's)."""
    return [role for role in ("policy", "generator", "judge", "evaluator")
            if getattr(recipe.engines, role) is not None and getattr(recipe.engines, role).backend == "openai"]


def planned_checks(recipe: Recipe, namespace: str) -> Iterator[Callable]:
    cluster = recipe.cluster
    yield partial(check_namespace, namespace)
    yield partial(check_service_account, namespace, cluster.service_account)
    yield partial(check_secret, namespace, cluster.hf_token_secret, cluster.hf_token_secret_key, "HF_TOKEN",
                  "hf_token_secret", gated=gated_models(recipe))
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
    yield partial(check_recipe_placeholders, recipe)
    yield check_registry


def run_checks(recipe: Recipe, namespace: str, api) -> list[Check]:
    checks = []
    for check in planned_checks(recipe, namespace):
        try:
            result = check(api)
            checks.extend(result if isinstance(result, list) else [result])
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
