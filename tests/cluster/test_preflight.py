"""`pugc preflight` with the real `kubernetes` client against a loopback server that speaks the Kubernetes
REST paths (tests/cluster/kube_api.py), through a generated kube config: what it reports, its fixes, its exit
status."""
import pytest

from pugc.cli import main
from tests.cluster.kube_api import KubeApiServer, namespace, node, pvc, secret, service_account

NS = "kubeflow"
GPU_LABEL = {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}  # recipes/paper.yaml cluster.gpu.node_selector
WORKLOAD_IDENTITY = "iam.gke.io/gcp-service-account"
GOOGLE_SA = "pugc-runner@acme-alignment.iam.gserviceaccount.com"
REGISTRY = "europe-west4-docker.pkg.dev/acme-alignment/pugc"


def complete_cluster(ns=NS, token_data=None, google_sa=GOOGLE_SA):
    """Everything the paper recipe's runs need, in `ns`, plus one GPU node and one CPU node."""
    return [namespace(ns),
            service_account(ns, "pugc-pipeline-runner", {WORKLOAD_IDENTITY: google_sa} if google_sa else None),
            secret(ns, "hf-token", token_data or {"token": "hf_PLANTED-token-value"}),
            secret(ns, "openai-api-key", {"api-key": "sk-PLANTED"}),  # the paper's evaluator, backend openai
            pvc(ns, "pugc-model-cache"),
            node("gke-gpu-1", GPU_LABEL, gpus=8), node("gke-cpu-1", {"cloud.google.com/gke-nodepool": "default"})]


@pytest.fixture()
def kube(tmp_path, monkeypatch):
    monkeypatch.setenv("PUGC_IMAGE_REGISTRY", REGISTRY)
    with KubeApiServer() as server:
        server.config_path = server.kubeconfig(tmp_path)
        yield server


def preflight(kube, capsys, *args, recipe="paper"):
    code = main(["preflight", "--recipe", recipe, "--kubeconfig", str(kube.config_path), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def line(out, subject):
    """The check line (OK/MISSING/WARN) about `subject`."""
    return next(text for text in out.splitlines() if subject in text and text.split()[0] in ("OK", "MISSING", "WARN"))


def fix_after(out, subject):
    lines = out.splitlines()
    index = lines.index(line(out, subject))
    return lines[index + 1].strip().removeprefix("fix: ")


def test_all_present_is_ok_and_reads_exactly_the_objects_the_recipe_names(kube, capsys):
    kube.add(*complete_cluster())
    code, out, err = preflight(kube, capsys, "--kube-context", "loopback")
    assert code == 0, out + err
    statuses = [text.split()[0] for text in out.splitlines()[1:-1]]
    assert statuses == ["OK"] * 8, out
    assert "GPU nodes cloud.google.com/gke-accelerator=nvidia-h100-80gb: 1 node(s), 8 nvidia.com/gpu" in out
    assert f"service account kubeflow/pugc-pipeline-runner: Workload Identity {GOOGLE_SA}" in out
    assert "secret kubeflow/openai-api-key: key 'api-key' -> OPENAI_API_KEY" in out  # the evaluate task's grader
    assert f"OK       image registry: {REGISTRY}" in out
    assert "OK       recipe: no placeholder project, bucket or registry" in out
    assert "0 missing, 0 warning(s): ready to submit" in out
    paths = [path for path, _ in kube.requests]
    assert paths == ["/api/v1/namespaces/kubeflow", "/api/v1/namespaces/kubeflow/serviceaccounts/pugc-pipeline-runner",
                     "/api/v1/namespaces/kubeflow/secrets/hf-token", "/api/v1/namespaces/kubeflow/secrets/openai-api-key",
                     "/api/v1/namespaces/kubeflow/persistentvolumeclaims/pugc-model-cache", "/api/v1/nodes"]
    assert kube.requests[-1][1]["labelSelector"] == "cloud.google.com/gke-accelerator=nvidia-h100-80gb"
    assert set(kube.authorizations) == {"Bearer PLANTED-kube-token"}
    assert "hf_PLANTED" not in out and "sk-PLANTED" not in out  # a Secret's value is read, never printed


@pytest.mark.parametrize("google_sa", ["pugc-runner@my-gcp-project.iam.gserviceaccount.com",
                                       "pugc-runner@PROJECT_ID.iam.gserviceaccount.com"])
def test_the_placeholder_workload_identity_annotation_is_refused(kube, capsys, google_sa):
    kube.add(*complete_cluster(google_sa=google_sa))
    code, out, _ = preflight(kube, capsys)
    assert code == 1
    subject = "service account kubeflow/pugc-pipeline-runner"
    assert line(out, subject).startswith(f"MISSING  {subject}: annotation {WORKLOAD_IDENTITY} is the placeholder "
                                         f"{google_sa}")
    assert "manifests/components/gke/kustomization.yaml" in line(out, subject)
    assert fix_after(out, subject) == (f"kubectl -n kubeflow annotate serviceaccount pugc-pipeline-runner --overwrite "
                                       f"{WORKLOAD_IDENTITY}=pugc-runner@$PROJECT_ID.iam.gserviceaccount.com")
    assert sum(text.startswith("MISSING") for text in out.splitlines()) == 1, out


def test_a_service_account_without_workload_identity_is_a_warning(kube, capsys):
    kube.add(*complete_cluster(google_sa=None))
    code, out, _ = preflight(kube, capsys)
    assert code == 0
    assert line(out, "service account").startswith(f"WARN     service account kubeflow/pugc-pipeline-runner: no "
                                                   f"{WORKLOAD_IDENTITY} annotation")


def test_a_missing_service_account_says_the_shipped_manifest_still_holds_the_placeholder(kube, capsys):
    kube.add(*complete_cluster())
    del kube.objects["/api/v1/namespaces/kubeflow/serviceaccounts/pugc-pipeline-runner"]
    code, out, _ = preflight(kube, capsys)
    assert code == 1  # the repository's manifests/components/gke ships pugc-runner@my-gcp-project
    assert ("manifests/components/gke/kustomization.yaml still names the placeholder "
            "pugc-runner@my-gcp-project.iam.gserviceaccount.com") in line(out, "service account")


@pytest.mark.parametrize("setting, word", [
    ("cluster.pipeline_root=gs://BUCKET/pugc", "BUCKET"),
    ("dpo_training.export_uri=gs://my-bucket/models/pugc", "my-bucket"),
    ("cluster.vertex.hf_token_secret=projects/PROJECT/secrets/hf-token", "PROJECT"),
])
def test_a_recipe_value_still_naming_a_placeholder_is_refused(kube, capsys, setting, word):
    kube.add(*complete_cluster())
    code, out, _ = preflight(kube, capsys, "--set", setting)
    key, value = setting.split("=", 1)
    assert code == 1
    assert line(out, f"recipe {key}") == f"MISSING  recipe {key}: {value!r} still holds the placeholder {word}"
    assert fix_after(out, f"recipe {key}") == f"set {key} to your own value in the recipe (or --set {key}=...)"


def test_the_image_registry_unset_warns_and_a_placeholder_one_is_refused(kube, capsys, monkeypatch):
    kube.add(*complete_cluster())
    monkeypatch.delenv("PUGC_IMAGE_REGISTRY")
    code, out, _ = preflight(kube, capsys)
    assert code == 0 and line(out, "image registry").startswith("WARN     image registry: PUGC_IMAGE_REGISTRY is not set")
    monkeypatch.setenv("PUGC_IMAGE_REGISTRY", "us-docker.pkg.dev/PROJECT_ID/pugc")
    code, out, _ = preflight(kube, capsys)
    assert code == 1 and "still holds the placeholder PROJECT_ID" in line(out, "image registry")


def test_gated_models_without_a_token_secret_are_refused(kube, capsys):
    kube.add(*complete_cluster())
    code, out, _ = preflight(kube, capsys, "--set", "cluster.hf_token_secret=null")
    assert code == 1
    assert line(out, "HF_TOKEN secret") == (
        "MISSING  HF_TOKEN secret: cluster.hf_token_secret is not set, but engines.policy.model "
        "mistralai/Mistral-7B-Instruct-v0.2 is gated on the Hugging Face Hub: its download needs a token")
    assert fix_after(out, "HF_TOKEN secret").startswith("kubectl -n kubeflow create secret generic hf-token")
    # a recipe of ungated models may go without one (a warning)
    code, out, _ = preflight(kube, capsys, "--set", "cluster.hf_token_secret=null",
                             "--set", "engines.policy.model=Qwen/Qwen2.5-0.5B-Instruct",
                             "--set", "engines.generator.model=Qwen/Qwen2.5-0.5B-Instruct")
    assert code == 0 and line(out, "HF_TOKEN secret").startswith("WARN")


@pytest.mark.parametrize("target, setting", [("vertex", "cluster.vertex.hf_token_secret"),
                                             ("kfp", "cluster.hf_token_secret")])
def test_compiling_gated_models_without_a_token_says_so(tmp_path, capsys, monkeypatch, target, setting):
    from pugc import preflight as checks
    from pugc.config import load_recipe

    recipe = load_recipe("paper", ["cluster.hf_token_secret=null"])
    warning = checks.token_warning(recipe, target)
    assert warning.startswith("engines.policy.model mistralai/Mistral-7B-Instruct-v0.2 and engines.generator.model "
                              "meta-llama/Meta-Llama-3-70B-Instruct are gated")
    assert f"{setting} is not set" in warning
    given = load_recipe("paper", [f"{setting}=projects/acme/secrets/hf-token" if target == "vertex" else
                                  f"{setting}=hf-token"])
    assert checks.token_warning(given, target) is None


@pytest.mark.parametrize("missing, subject, fix", [
    ("/api/v1/namespaces/kubeflow", "namespace kubeflow", "kubectl create namespace kubeflow"),
    ("/api/v1/namespaces/kubeflow/serviceaccounts/pugc-pipeline-runner",
     "service account kubeflow/pugc-pipeline-runner", "kubectl apply -k manifests/overlays/standalone"),
    ("/api/v1/namespaces/kubeflow/secrets/hf-token", "secret kubeflow/hf-token",
     'kubectl -n kubeflow create secret generic hf-token --from-literal=token="$HF_TOKEN" --dry-run=client -o yaml '
     "| kubectl apply -f -"),
    ("/api/v1/namespaces/kubeflow/persistentvolumeclaims/pugc-model-cache",
     "persistentvolumeclaim kubeflow/pugc-model-cache", "kubectl apply -k manifests/overlays/standalone"),
], ids=["namespace", "service-account", "hf-secret", "pvc"])
def test_each_missing_object_is_reported_with_its_fix_and_fails(kube, capsys, missing, subject, fix):
    kube.add(*complete_cluster())
    del kube.objects[missing]
    code, out, _ = preflight(kube, capsys)
    assert code == 1
    assert line(out, subject).startswith(f"MISSING  {subject}: not found")
    assert fix_after(out, subject) == fix
    assert sum(text.startswith("MISSING") for text in out.splitlines()) == 1, out
    assert "1 missing" in out.splitlines()[-1]


@pytest.mark.parametrize("data, problem", [
    ({"hf_token": "hf_PLANTED"}, "has no key 'token' (holds hf_token)"),
    ({"token": ""}, "key 'token' is empty"),
])
def test_a_secret_without_the_recipes_key_is_missing(kube, capsys, data, problem):
    kube.add(*complete_cluster(token_data=data))
    code, out, _ = preflight(kube, capsys)
    assert code == 1 and problem in line(out, "secret kubeflow/hf-token")


def test_a_pending_cache_claim_is_not_ready(kube, capsys):
    kube.add(*complete_cluster(), pvc(NS, "pugc-model-cache", phase="Pending"))
    code, out, _ = preflight(kube, capsys)
    assert code == 1
    assert "is Pending, not Bound" in line(out, "persistentvolumeclaim kubeflow/pugc-model-cache")
    assert fix_after(out, "persistentvolumeclaim") == (
        "kubectl -n kubeflow describe pvc pugc-model-cache; kubectl -n kubeflow get job pugc-model-cache-permissions")


def test_no_gpu_node_is_a_warning_with_the_node_pool_command_not_a_failure(kube, capsys):
    kube.add(*[obj for obj in complete_cluster() if obj["metadata"]["name"] != "gke-gpu-1"])
    code, out, _ = preflight(kube, capsys)
    assert code == 0
    assert line(out, "GPU nodes").startswith("WARN     GPU nodes cloud.google.com/gke-accelerator=nvidia-h100-80gb: none now")
    assert fix_after(out, "GPU nodes") == ("gcloud container node-pools create pugc-gpu --cluster CLUSTER "
                                           "--accelerator type=nvidia-h100-80gb,count=8 --enable-autoscaling "
                                           "--min-nodes 0 --max-nodes 4")


def test_profile_namespace_with_an_openai_judge_checks_its_key_secret(kube, capsys):
    profile = "team-alignment"
    kube.add(*complete_cluster(ns=profile))
    del kube.objects[f"/api/v1/namespaces/{profile}/secrets/openai-api-key"]
    code, out, _ = preflight(kube, capsys, "--namespace", profile, "--set", "engines.judge.backend=openai",
                             "--set", "engines.judge.options={api_key_env: JUDGE_API_KEY}")
    assert code == 1
    subject = f"secret {profile}/openai-api-key"
    assert line(out, subject).startswith(f"MISSING  {subject}: not found")
    assert fix_after(out, subject).startswith(
        f'kubectl -n {profile} create secret generic openai-api-key --from-literal=api-key="$JUDGE_API_KEY"')
    kube.add(secret(profile, "openai-api-key", {"api-key": "sk-PLANTED"}))
    del kube.objects[f"/api/v1/namespaces/{profile}/serviceaccounts/pugc-pipeline-runner"]
    code, out, _ = preflight(kube, capsys, "--namespace", profile, "--set", "engines.judge.backend=openai")
    assert code == 1 and line(out, subject).startswith("OK")
    assert fix_after(out, "service account") == ("kubectl kustomize manifests/overlays/multi-user | "
                                                 f"sed 's/kubeflow-user-example-com/{profile}/g' | kubectl apply -f -")


def test_secrets_this_user_may_not_read_are_a_warning(kube, capsys):
    kube.add(*complete_cluster())
    kube.forbidden.add("secrets")
    code, out, _ = preflight(kube, capsys)
    assert code == 0
    assert line(out, "secrets").startswith("WARN     secrets: not allowed to read it")
    assert fix_after(out, "WARN     secrets") == "kubectl auth can-i get secrets -n kubeflow"


def test_unreachable_api_server_is_one_clear_line_and_a_non_zero_exit(kube, capsys):
    code, out, err = preflight(kube, capsys, "--kube-context", "elsewhere")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("pugc preflight: cannot reach the Kubernetes API server at http://127.0.0.1:")
    assert "Connection refused" in err and not kube.requests


def test_a_missing_kube_config_or_namespace_is_one_line_too(tmp_path, capsys, monkeypatch):
    code = main(["preflight", "--recipe", "paper", "--kubeconfig", str(tmp_path / "absent")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("pugc preflight: cannot load the kube config") and "Traceback" not in err
    code = main(["preflight", "--recipe", "tiny"])  # tiny names no namespace
    assert code == 2 and "no namespace: pass --namespace or set cluster.namespace" in capsys.readouterr().err


def test_preflight_module_imports_neither_kfp_nor_kubernetes_until_a_check_runs():
    import subprocess
    import sys

    probe = "import sys, pugc.preflight; print(sorted(m for m in ('kfp', 'kubernetes') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def trainjob_crd(field: str) -> dict:
    """The TrainJob CRD as the API server serves it, its spec's schema naming `field` for the pod settings."""
    spec = {"type": "object", "properties": {"trainer": {"type": "object"}, field: {"type": "array"}}}
    schema = {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "trainjobs.trainer.kubeflow.org"},
            "spec": {"group": "trainer.kubeflow.org", "scope": "Namespaced",
                     "names": {"plural": "trainjobs", "kind": "TrainJob"},
                     "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": schema}]}}


CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/trainjobs.trainer.kubeflow.org"
RUNTIME_PATH = "/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes/torch-distributed"
TWO_NODES = ["--set", "cluster.resources.dpo_training.nodes=2", "--set", "dpo_training.gradient_accumulation_steps=4"]


@pytest.mark.parametrize("installed_field, recipe_version, ok", [
    ("podTemplateOverrides", "2.1", True), ("runtimePatches", "2.2", True),
    ("runtimePatches", "2.1", False), ("podTemplateOverrides", "2.2", False)])
def test_a_multi_node_recipe_checks_the_trainer_release_it_targets(kube, capsys, installed_field, recipe_version, ok):
    kube.add(*complete_cluster()).add_at(CRD_PATH, trainjob_crd(installed_field))
    kube.add_at(RUNTIME_PATH, {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
                               "metadata": {"name": "torch-distributed"}, "spec": {}})
    code, out, _ = preflight(kube, capsys, *TWO_NODES, "--set", f"cluster.trainer_version={recipe_version}")
    if ok:
        assert code == 0 and f"Kubeflow Trainer {recipe_version}: {installed_field}" in out
    else:
        assert code == 1 and f"not {'runtimePatches' if recipe_version == '2.2' else 'podTemplateOverrides'}" in out
        other = "2.2" if recipe_version == "2.1" else "2.1"
        assert fix_after(out, "trainjobs.trainer.kubeflow.org") == f'set cluster.trainer_version: "{other}" in the recipe'


def test_a_multi_node_recipe_without_trainer_installed_is_missing(kube, capsys):
    kube.add(*complete_cluster())
    code, out, _ = preflight(kube, capsys, *TWO_NODES)
    assert code == 1 and "Kubeflow Trainer is not installed" in line(out, "trainjobs.trainer.kubeflow.org")
