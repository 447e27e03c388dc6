"""Many nodes: the TrainJob the dpo_training task creates for the paper recipe on 2 nodes, for Kubeflow Trainer
v2.1 (podTemplateOverrides) and v2.2+ (runtimePatches), checked field by field and against each release's own
API models (every key declared: the API server drops unknown ones with only a warning); creation, waiting,
failure, termination and clean-up against a loopback API server through the real `kubernetes` client."""
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from accelerate.commands.launch import _validate_launch_command, launch_command_parser

from pugc.components import images
from pugc.config import ConfigError, DPOTrainingConfig, build, load_recipe
from pugc.pipelines.local import compile_pipeline
from pugc.training.launch import World
from pugc.training.trainjob import (PATCH_MANAGER, TrainJobFailed, build_trainjob, job_name, launching_pod,
                                   run_trainjob, wait_budget)
from tests.cluster.backend_models import TRAINER_APIS, folders
from tests.cluster.trainer_api import COMPLETE, CREATED, TrainerApiServer, failed

TWO_NODES = ["cluster.resources.dpo_training.nodes=2", "dpo_training.gradient_accumulation_steps=4"]
PAIRS, OUTPUT = "gs://bucket/pugc/run/preference_pairs", "gs://bucket/pugc/run/dpo_model-trainjob"


OWNER = {"apiVersion": "v1", "kind": "Pod", "name": "pugc-abc-system-container-impl-1", "uid": "3f6b-uid",
         "controller": False, "blockOwnerDeletion": False}


def build_for(trainer_version: str, tmp_path) -> tuple:
    """The TrainJob built from what the compiled task receives: its parameter defaults."""
    recipe = load_recipe("paper", [*TWO_NODES, f"cluster.trainer_version={trainer_version}"])
    path = compile_pipeline(recipe, tmp_path / f"p-{trainer_version}.yaml")
    params = next(yaml.safe_load_all(path.read_text()))["root"]["inputDefinitions"]["parameters"]
    runtime, section = params["runtime"]["defaultValue"], params["dpo_training_config"]["defaultValue"]
    config = build(DPOTrainingConfig, section, "dpo_training")
    world = World(int(runtime["dpo_trainjob"]["nodes"]), int(runtime["dpo_processes_per_node"]), config.strategy)
    return recipe, build_trainjob(job_name("pugc/run-1/dpo-training/uuid-1"), runtime["dpo_trainjob"], world, PAIRS,
                                  OUTPUT, section, params["engines"]["defaultValue"]["policy"], "/cache/checkpoints/x",
                                  50, owner=OWNER)


@pytest.fixture(scope="module", params=sorted(TRAINER_APIS))
def versioned_job(request, tmp_path_factory):
    return request.param, *build_for(request.param, tmp_path_factory.mktemp(f"trainer-{request.param}"))


@pytest.fixture(scope="module")
def paper_job(tmp_path_factory):
    return build_for("2.2", tmp_path_factory.mktemp("compiled"))


def node_pod(job: dict) -> tuple[dict, dict]:
    """(pod metadata, pod spec) of the `node` job, wherever the job's Trainer version puts them."""
    if "podTemplateOverrides" in job["spec"]:
        (override,) = job["spec"]["podTemplateOverrides"]
        assert override["targetJobs"] == [{"name": "node"}]
        return override["metadata"], override["spec"]
    (patch,) = job["spec"]["runtimePatches"]
    (node_job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node_job["name"] == "node"
    template = node_job["template"]["spec"]["template"]
    return template["metadata"], template["spec"]


@pytest.fixture(scope="session")
def trainer_models() -> dict:
    root = os.environ.get("PUGC_BACKEND_MODELS")
    if not root or not (Path(root) / ".complete").exists():
        pytest.skip("PUGC_BACKEND_MODELS is not set or not built: run through `make test` (or `make backend-models`)")
    return folders(root)


def check_against(models: Path, job: dict, tmp_path) -> dict:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("check_trainjob.py")), str(models), str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_two_node_batch_must_still_multiply_out():
    with pytest.raises(ConfigError, match=r"world size \(16: .* x nodes 2\) = 256"):
        load_recipe("paper", ["cluster.resources.dpo_training.nodes=2"])


def test_each_trainjob_fits_its_own_trainer_release_and_not_the_other(versioned_job, trainer_models, tmp_path):
    version, _, job = versioned_job
    assert check_against(trainer_models[f"trainer-{version}"], job, tmp_path) == {"error": None, "unknown": []}
    other = next(v for v in TRAINER_APIS if v != version)
    unknown = check_against(trainer_models[f"trainer-{other}"], job, tmp_path)["unknown"]
    lost = {"2.1": {"$.spec.podTemplateOverrides"}, "2.2": {"$.spec.runtimePatches", "$.spec.activeDeadlineSeconds"}}
    assert set(unknown) == lost[version]  # what the other release's API server would drop without a word


def test_the_node_pods_get_identity_volumes_placement_and_no_sidecar_in_either_release(versioned_job):
    version, recipe, job = versioned_job
    metadata, pod = node_pod(job)
    assert metadata["annotations"] == {"sidecar.istio.io/inject": "false"}  # NCCL must not go through Envoy
    assert pod["serviceAccountName"] == "pugc-pipeline-runner"
    assert {v["name"] for v in pod["volumes"]} == {"model-cache", "dshm"}
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert job["metadata"]["ownerReferences"] == [OWNER]  # deleted with the launching pod
    if version == "2.2":
        assert job["spec"]["runtimePatches"][0]["manager"] == PATCH_MANAGER and "/" in PATCH_MANAGER
        assert job["spec"]["activeDeadlineSeconds"] == recipe.cluster.resources["dpo_training"].timeout_seconds
        assert pod["securityContext"] == {"runAsUser": recipe.cluster.run_as_user, "runAsNonRoot": True}
    else:  # v2.1 has no deadline and no security context to override: the task's wait and the image's user
        assert "activeDeadlineSeconds" not in job["spec"] and "securityContext" not in pod


def test_the_owner_is_the_pod_kfp_names_in_the_task(monkeypatch):
    monkeypatch.delenv("KFP_POD_NAME", raising=False)
    assert launching_pod() is None  # a local run: no owner
    monkeypatch.setenv("KFP_POD_NAME", OWNER["name"])
    monkeypatch.setenv("KFP_POD_UID", OWNER["uid"])
    assert launching_pod() == OWNER


def test_the_wait_ends_before_the_tasks_deadline_so_the_job_is_deleted_by_the_task():
    assert wait_budget(86400) == 86400 - 300 and wait_budget(400) == 200 and wait_budget(None) is None


def test_paper_trainjob_spec_field_by_field(paper_job):
    recipe, job = paper_job
    assert (job["apiVersion"], job["kind"]) == ("trainer.kubeflow.org/v1alpha1", "TrainJob")
    assert job["metadata"]["namespace"] == "kubeflow" and job["metadata"]["name"].startswith("pugc-dpo-")
    assert job["metadata"]["labels"] == {"app.kubernetes.io/part-of": "pugc", "team": "alignment"}
    assert job["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                                         "name": "torch-distributed"}
    trainer = job["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"], trainer["image"]) == (2, 8, images.TRAINER)
    assert trainer["resourcesPerNode"]["limits"] == {"nvidia.com/gpu": "8", "cpu": "32", "memory": "256Gi"}
    env = {e["name"]: e for e in trainer["env"]}
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf-token", "key": "token"}}
    assert env["HF_HOME"]["value"] == "/cache/huggingface"
    _, pod = node_pod(job)
    assert pod["serviceAccountName"] == "pugc-pipeline-runner"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model-cache"]["persistentVolumeClaim"] == {"claimName": "pugc-model-cache"}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Gi"}
    (container,) = pod["containers"]
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]} == {"dshm": "/dev/shm", "model-cache": "/cache"}
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["securityContext"] == {"runAsUser": recipe.cluster.run_as_user, "runAsNonRoot": True}


def test_paper_trainjob_command_launches_sixteen_zero3_processes_over_two_nodes(paper_job):
    _, job = paper_job
    command = job["spec"]["trainer"]["command"]
    assert command[:3] == ["python", "-m", "accelerate.commands.launch"]
    # Kubernetes expands $(VAR) from the env the Trainer's torch runtime gives each node
    expanded = [{"$(PET_NODE_RANK)": "1", "$(PET_MASTER_ADDR)": "pugc-dpo-node-0-0.pugc-dpo", "$(PET_MASTER_PORT)": "29400"}
                .get(arg, arg) for arg in command[3:]]
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(expanded))
    assert (args.num_processes, args.num_machines, args.machine_rank, args.main_process_port) == (16, 2, 1, 29400)
    assert args.use_deepspeed and args.zero_stage == 3 and args.training_script == "pugc.training.launch"
    entry = dict(zip(args.training_script_args[::2], args.training_script_args[1::2]))
    assert (entry["--pairs"], entry["--output"], entry["--strategy-label"]) == (PAIRS, OUTPUT, "trainjob")
    assert entry["--checkpoint-dir"] == "/cache/checkpoints/x"


def test_trainjob_is_created_awaited_logged_and_deleted(paper_job, caplog):
    _, job = paper_job
    caplog.set_level(logging.INFO, logger="pugc")
    with TrainerApiServer([[], [CREATED], [CREATED, COMPLETE]]) as api:
        final = run_trainjob(job, poll_seconds=0.01, api_client=api.client())
    assert api.created == [job] and api.deleted == [job["metadata"]["name"]]
    assert final["status"]["conditions"][-1]["type"] == "Complete"
    text = caplog.text
    assert "created: 2 nodes x 8 GPUs" in text and "Complete=True JobSetCompleted" in text
    assert "step 4/4 loss 0.69" in text and "deleted" in text


def test_failed_trainjob_fails_the_task_with_its_reason_and_is_deleted(paper_job):
    _, job = paper_job
    script = [[CREATED], [CREATED, failed("BackoffLimitExceeded", "node-1-0 exited with code 137 (OOMKilled)")]]
    with TrainerApiServer(script) as api, pytest.raises(TrainJobFailed, match="BackoffLimitExceeded: node-1-0 exited"):
        run_trainjob(job, poll_seconds=0.01, api_client=api.client())
    assert api.deleted == [job["metadata"]["name"]]


def test_retried_task_waits_for_the_job_it_already_created(paper_job):
    _, job = paper_job
    with TrainerApiServer([[CREATED, COMPLETE]]) as api:
        api.create("/apis/trainer.kubeflow.org/v1alpha1/namespaces/kubeflow/trainjobs", job)
        run_trainjob(job, poll_seconds=0.01, api_client=api.client())
    assert len(api.created) == 1 and api.deleted == [job["metadata"]["name"]]


def test_vertex_target_refuses_several_nodes(tmp_path):
    with pytest.raises(ValueError, match="nodes > 1 creates a Kubeflow Trainer TrainJob: kfp target only"):
        compile_pipeline(load_recipe("paper", TWO_NODES), tmp_path / "v.yaml", "vertex")


def test_task_role_may_create_follow_and_delete_trainjobs():
    from pathlib import Path

    rules = yaml.safe_load((Path(__file__).parents[2] / "manifests/base/role.yaml").read_text())["rules"]
    granted = {(group, resource): set(rule["verbs"]) for rule in rules
               for group in rule["apiGroups"] for resource in rule["resources"]}
    assert {"create", "get", "delete"} <= granted[("trainer.kubeflow.org", "trainjobs")]
    assert "list" in granted[("", "pods")] and "get" in granted[("", "pods/log")]


TERMINATED_RUN = """
import sys
from kubernetes import client
from pugc.training.trainjob import run_trainjob
import json
configuration = client.Configuration()
configuration.host = sys.argv[1]
job = json.loads(sys.argv[2])
print("waiting", flush=True)
run_trainjob(job, poll_seconds=0.05, api_client=client.ApiClient(configuration))
"""


def test_a_terminated_task_deletes_its_trainjob(paper_job):
    """SIGTERM (a terminated run, a deleted pod) ends the wait and still deletes the job."""
    _, job = paper_job
    with TrainerApiServer([[CREATED]]) as api:  # the job never ends
        process = subprocess.Popen([sys.executable, "-c", TERMINATED_RUN, api.client().configuration.host,
                                    json.dumps(job)], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "waiting"
        deadline = time.monotonic() + 30
        while not api.created and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode != 0 and api.deleted == [job["metadata"]["name"]]


def test_the_role_grants_the_launcher_its_config_map_and_no_secret():
    """A gs:// root (pugc submit always sends one) needs no MinIO Secret; the root driver reads kfp-launcher."""
    rules = yaml.safe_load((Path(__file__).parents[2] / "manifests/base/role.yaml").read_text())["rules"]
    configmaps = [rule for rule in rules if "configmaps" in rule["resources"]]
    assert configmaps == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kfp-launcher"],
                           "verbs": ["get"]}]
    assert not [rule for rule in rules if "secrets" in rule["resources"]]
