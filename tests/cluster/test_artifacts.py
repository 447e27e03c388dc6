"""What a cluster touches, checked by the strongest tool that runs here: hadolint on the Dockerfiles,
kustomize + strict schema validation on the manifests, JSON-schema validation of the CI workflows."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCKERFILES = sorted(ROOT.glob("images/*/Dockerfile"))
# Each overlay and the namespace its runs execute in: standalone KFP runs every pod in its own namespace,
# multi-user KFP in the profile namespace. base/ has no namespace and is not deployable by itself.
RUN_NAMESPACES = {"standalone": "kubeflow", "standalone-judge": "kubeflow",
                  "multi-user": "kubeflow-user-example-com", "multi-user-judge": "kubeflow-user-example-com"}
OVERLAYS = sorted((ROOT / "manifests" / "overlays").iterdir())


def tool(name):
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_pass_hadolint(dockerfile):
    result = subprocess.run([tool("hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_are_pinned_and_run_as_non_root(dockerfile):
    text = dockerfile.read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
    assert ":" in base and not base.endswith(":latest"), base
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), users
    assert "install --no-cache-dir --no-deps ." in text  # pugc itself, its dependencies pinned separately
    requirements = dockerfile.parent / "requirements.txt"
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert "==" in line, f"{requirements}: {line} is not pinned"
    assert set(p.parent.name for p in DOCKERFILES) == {"base", "vllm", "trainer"}


def render(overlay: Path) -> str:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl (with kustomize) is not installed on this machine")
    return subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=True).stdout


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("kubernetes-validate"), "--strict", "-k", "1.33.0", "--quiet", str(path)],
                          capture_output=True, text=True)


def rendered_docs(overlay: str) -> dict:
    return {(d["kind"], d["metadata"]["name"]): d
            for d in yaml.safe_load_all(render(ROOT / "manifests" / "overlays" / overlay)) if d}


def test_every_overlay_is_listed_with_its_run_namespace():
    assert {overlay.name for overlay in OVERLAYS} == set(RUN_NAMESPACES)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_every_overlay_renders_and_validates_strictly(overlay, tmp_path):
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(render(overlay))
    result = validate(rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered.read_text()) if d}
    assert {"ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim", "Job"} <= kinds


@pytest.mark.parametrize("overlay", sorted(RUN_NAMESPACES))
def test_everything_lands_in_the_run_namespace_and_no_namespace_is_owned(overlay):
    """The PVC, the runner's account and its RBAC, the cache Job (and the judge) live where runs execute; the
    namespace itself belongs to the KFP install or the Profile controller, so no overlay creates it."""
    namespace = RUN_NAMESPACES[overlay]
    docs = rendered_docs(overlay)
    assert not any(kind == "Namespace" for kind, _ in docs)
    assert {d["metadata"].get("namespace") for d in docs.values()} == {namespace}, overlay
    (subject,) = docs[("RoleBinding", "pugc-pipeline-runner")]["subjects"]
    assert (subject["name"], subject["namespace"]) == ("pugc-pipeline-runner", namespace)


def test_strict_validation_catches_a_misspelt_field(tmp_path):
    rendered = render(ROOT / "manifests" / "overlays" / "standalone-judge").replace("readinessProbe:", "readynessProbe:")
    (tmp_path / "broken.yaml").write_text(rendered)
    assert validate(tmp_path / "broken.yaml").returncode != 0


@pytest.mark.parametrize("overlay", ["standalone-judge", "multi-user-judge"])
def test_gke_overlays_wire_identity_cache_and_judge(overlay):
    docs = rendered_docs(overlay)
    account = docs[("ServiceAccount", "pugc-pipeline-runner")]
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")
    assert docs[("PersistentVolumeClaim", "pugc-model-cache")]["spec"]["accessModes"] == ["ReadWriteMany"]
    rules = docs[("Role", "pugc-pipeline-runner")]["rules"]
    assert not any("secrets" in r["resources"] or "*" in r["verbs"] for r in rules)
    pod = docs[("Deployment", "pugc-judge")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["volumes"]
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "pugc-model-cache"}} in pod["volumes"]
    assert "--enable-prefix-caching" in container["args"] and pod["securityContext"]["runAsNonRoot"] is True
    assert docs[("Deployment", "pugc-judge")]["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert docs[("Service", "pugc-judge")]["spec"]["ports"][0]["port"] == 8000


def checkov():
    import os

    for candidate in (os.environ.get("PUGC_CHECKOV"), ROOT / ".venv" / "tools" / "checkov" / "bin" / "checkov",
                      shutil.which("checkov")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.skip("checkov is not installed (make test installs it and sets PUGC_CHECKOV)")


def test_manifests_pass_checkov_with_every_skip_explained(tmp_path):
    files = []
    for overlay in OVERLAYS:
        rendered = tmp_path / f"{overlay.name}.yaml"
        rendered.write_text(render(overlay))
        files += ["-f", str(rendered)]
    config = ROOT / "manifests" / ".checkov.yaml"
    result = subprocess.run([checkov(), "--config-file", str(config), *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Failed checks: 0" in result.stdout
    skipped = yaml.safe_load(config.read_text())["skip-check"]
    text = config.read_text()
    for check in skipped:  # each skip carries its reason in a comment right above it
        assert re.search(rf"#[^\n]*{check}[^\n]*\n(\s*#.*\n)*\s*- {check}", text), check


@pytest.mark.parametrize("template, name, key", [
    ("hf-token-secret.template.yaml", "hf-token", "token"),
    ("openai-api-key-secret.template.yaml", "openai-api-key", "api-key"),
])
def test_secret_templates_hold_no_value_match_the_recipe_and_are_not_applied(template, name, key):
    from pugc.config import load_recipe

    path = ROOT / "manifests" / "base" / template
    secret = yaml.safe_load(path.read_text())
    assert secret["stringData"] == {key: ""} and secret["metadata"]["name"] == name
    assert "namespace" not in secret["metadata"]  # created in the run namespace with kubectl -n
    assert template not in yaml.safe_load((ROOT / "manifests/base/kustomization.yaml").read_text())["resources"]
    assert validate(path).returncode == 0
    cluster = load_recipe("paper").cluster
    assert (name, key) in {(cluster.hf_token_secret, cluster.hf_token_secret_key),
                           (cluster.openai_api_key_secret, cluster.openai_api_key_secret_key)}


@pytest.mark.parametrize("overlay", sorted(RUN_NAMESPACES))
def test_cache_job_makes_the_volume_root_writable_for_the_task_user_with_least_privilege(overlay):
    from pugc.config import ClusterConfig

    docs = rendered_docs(overlay)
    job = docs[("Job", "pugc-model-cache-permissions")]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    uid = ClusterConfig().run_as_user
    assert f"chown {uid}:{uid} /cache" in " ".join(container["args"])
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "pugc-model-cache"}} in pod["volumes"]
    assert {"name": "model-cache", "mountPath": ClusterConfig().model_cache_path} in container["volumeMounts"]
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert security.get("privileged") is False and pod["automountServiceAccountToken"] is False
    assert container["resources"]["limits"] and job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    policy = docs[("NetworkPolicy", "pugc-model-cache-permissions")]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy and "egress" not in policy
    assert policy["podSelector"]["matchLabels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()


def test_the_cache_job_can_be_applied_again(tmp_path):
    """Its command, run twice over a folder as on a fresh volume, with chmod refused where root no longer owns
    the folder (the container has CHOWN but not FOWNER): the second run leaves the handed-over folder alone."""
    import os

    job = next(d for d in yaml.safe_load_all((ROOT / "manifests/base/job-model-cache-permissions.yaml").read_text())
               if d["kind"] == "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    cache = tmp_path / "cache"
    cache.mkdir()
    command = container["args"][0].replace("/cache", str(cache))
    no_fowner = ('chmod() { [ "$(stat -c %u "$2")" = 0 ] || { echo "chmod: Operation not permitted" >&2; return 1; }; '
                 'command chmod "$@"; }; ')
    for attempt in range(2):
        done = subprocess.run(["sh", "-c", no_fowner + command], capture_output=True, text=True)
        assert done.returncode == 0, (attempt, done.stderr)
    assert (os.stat(cache).st_uid, oct(os.stat(cache).st_mode & 0o777)) == (10001, "0o775")
    assert "already belongs to uid 10001" in done.stdout


def test_checkov_skip_annotations_are_on_the_cache_job_only_and_each_gives_its_reason():
    for overlay in RUN_NAMESPACES:
        for (kind, name), doc in rendered_docs(overlay).items():
            skips = {k: v for k, v in (doc["metadata"].get("annotations") or {}).items() if k.startswith("checkov.io/skip")}
            if (kind, name) != ("Job", "pugc-model-cache-permissions"):
                assert not skips, (overlay, kind, name)
                continue
            checks = sorted(value.split("=", 1)[0] for value in skips.values())
            assert checks == ["CKV_K8S_23", "CKV_K8S_25", "CKV_K8S_40"]
            assert all(len(value.split("=", 1)[1].split()) >= 5 for value in skips.values())


@pytest.mark.parametrize("path, schema", [
    (".github/workflows/tests.yml", "vendor.github-workflows"),
    (".github/workflows/retrain.yml", "vendor.github-workflows"),
    (".github/workflows/images.yml", "vendor.github-workflows"),
    ("images/cloudbuild.yaml", "vendor.cloudbuild"),
])
def test_ci_files_validate_against_their_schemas(path, schema):
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", schema, str(ROOT / path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_retrain_workflow_triggers_and_authenticates_without_keys():
    workflow = yaml.safe_load((ROOT / ".github/workflows/retrain.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert {"workflow_dispatch", "schedule", "push"} <= set(triggers)
    assert triggers["push"]["paths"] == ["recipes/**"]  # new data lands in the bucket; the schedule reads it
    assert workflow["permissions"]["id-token"] == "write"
    steps = workflow["jobs"]["submit"]["steps"]
    assert any(s.get("uses", "").startswith("google-github-actions/auth@") for s in steps)
    assert any("pugc submit" in s.get("run", "") for s in steps)
    assert "credentials_json" not in (ROOT / ".github/workflows/retrain.yml").read_text()
    names = [s.get("name", "") for s in steps]
    images = steps[names.index(next(n for n in names if n.startswith("This commit's images")))]
    assert names.index(images["name"]) < names.index("Submit")  # submits only with its own commit's images
    assert 'PUGC_IMAGE_TAG=$tag' in images["run"] and 'tag="${commit:0:12}"' in images["run"]
    # the tag is the last commit that changed what the images workflow builds from: exactly its paths
    built_from = yaml.safe_load((ROOT / ".github/workflows/images.yml").read_text())[True]["push"]["paths"]
    log = images["run"].split("git log -1 --format=%H --", 1)[1].split(")", 1)[0].replace("\\\n", " ").split()
    assert sorted(path.removesuffix("/**") for path in built_from) == sorted(log)
    assert workflow["jobs"]["submit"]["steps"][0]["with"]["fetch-depth"] == 0
