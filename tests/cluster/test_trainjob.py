"""Many nodes: the TrainJob the dpo_training task creates for the paper recipe on 2 nodes, checked field by
field and against the Kubeflow Trainer API models; creation, waiting, failure and clean-up against a loopback
API server through the real `kubernetes` client."""
import logging

import pytest
import yaml
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

from pugc.components import images
from pugc.config import ConfigError, DPOTrainingConfig, build, load_recipe
from pugc.pipelines.local import compile_pipeline
from pugc.training.launch import World
from pugc.training.trainjob import TrainJobFailed, build_trainjob, job_name, run_trainjob
from tests.cluster.trainer_api import COMPLETE, CREATED, TrainerApiServer, failed

TWO_NODES = ["cluster.resources.dpo_training.nodes=2", "dpo_training.gradient_accumulation_steps=4"]
PAIRS, OUTPUT = "gs://bucket/pugc/run/preference_pairs", "gs://bucket/pugc/run/dpo_model-trainjob"


@pytest.fixture(scope="module")
def paper_job(tmp_path_factory):
    """The TrainJob built from what the compiled task receives: its parameter defaults."""
    recipe = load_recipe("paper", TWO_NODES)
    path = compile_pipeline(recipe, tmp_path_factory.mktemp("compiled") / "p.yaml")
    params = next(yaml.safe_load_all(path.read_text()))["root"]["inputDefinitions"]["parameters"]
    runtime, section = params["runtime"]["defaultValue"], params["dpo_training_config"]["defaultValue"]
    config = build(DPOTrainingConfig, section, "dpo_training")
    world = World(int(runtime["dpo_trainjob"]["nodes"]), int(runtime["dpo_processes_per_node"]), config.strategy)
    return recipe, build_trainjob(job_name("pugc/run-1/dpo-training/uuid-1"), runtime["dpo_trainjob"], world, PAIRS, OUTPUT,
                                  section, params["engines"]["defaultValue"]["policy"], "/cache/checkpoints/x", 50)


def test_two_node_batch_must_still_multiply_out():
    with pytest.raises(ConfigError, match=r"world size \(16: .* x nodes 2\) = 256"):
        load_recipe("paper", ["cluster.resources.dpo_training.nodes=2"])


def test_paper_trainjob_fits_the_trainer_api_models(paper_job):
    _, job = paper_job
    assert TrainerV1alpha1TrainJob.from_dict(job).to_dict() == job  # nothing misspelt, nothing dropped


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
    (patch,) = job["spec"]["runtimePatches"]
    (node_job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node_job["template"]["spec"]["template"]["spec"]
    assert node_job["name"] == "node" and pod["serviceAccountName"] == "pugc-pipeline-runner"
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
