"""The compiled pipeline YAML, for both targets: DAG shape, images, per-task platform settings, parameters."""
import dataclasses
import json
import os
import sys

import pytest
import yaml

from pugc.config import STAGE_CONFIGS, build, load_recipe
from pugc.pipelines.local import compile_pipeline

LLM_STAGES = ["ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "response_sampling", "reward_scoring"]
GPU_STAGES = LLM_STAGES + ["dpo_training", "evaluate"]
CPU_TASKS = ["ingest_ugc", "held_out_split", "preference_pairs", "evaluation_gate", "run_summary"]


def compiled(tmp_path, recipe_name, overrides=(), target="kfp", pipeline_root=None):
    recipe = load_recipe(recipe_name, overrides)
    path = compile_pipeline(recipe, tmp_path / f"{recipe_name}-{target}.yaml", target, pipeline_root)
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[0], (docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(docs) > 1 else {}), path


def executor_name(stage):
    return f"exec-{stage.replace('_', '-')}"


def container(spec, stage):
    return spec["deploymentSpec"]["executors"][executor_name(stage)]["container"]


def task_spec(spec, stage):
    """The task of `stage`, looked up in the root DAG or inside its shard loop."""
    for task in spec["root"]["dag"]["tasks"].values():
        if task["taskInfo"]["name"] == stage:
            return task
        if task["taskInfo"]["name"] == f"{stage}-shards":
            return next(iter(spec["components"][task["componentRef"]["name"]]["dag"]["tasks"].values()))
    raise KeyError(stage)


def test_dag_reads_like_the_method(tmp_path):
    """ingest -> each LLM stage as a shard loop + merge -> pairs -> DPO, and a summary of everything."""
    spec, _, _ = compiled(tmp_path, "paper", ["cluster.shards=4", "cluster.resources.reward_scoring.shards=8"])
    tasks = spec["root"]["dag"]["tasks"]
    by_name = {t["taskInfo"]["name"]: key for key, t in tasks.items()}
    chain = ["ingest_ugc"]
    for stage in LLM_STAGES:
        chain += [f"{stage}-shards", f"{stage}_merge"] + (["held_out_split"] if stage == "relevance_filter" else [])
    chain += ["preference_pairs", "dpo_training"]
    evaluation = ["evaluate-shards", "evaluate_merge", "evaluation_gate", "gate-passed"]
    assert set(by_name) == set(chain) | set(evaluation) | {"run_summary", "ugc_source", "input_fingerprint"}
    assert sorted(tasks[by_name["ingest_ugc"]]["dependentTasks"]) == sorted(
        [by_name["ugc_source"], by_name["input_fingerprint"]])
    # stages that join text by id also read the document table (ingest) and the question table (relevance);
    # held_out_split reads the documents to decontaminate the training questions
    tables = {"relevance_filter-shards": ["ingest_ugc"], "held_out_split": ["ingest_ugc"],
              "reward_scoring-shards": ["ingest_ugc", "relevance_filter_merge"],
              "preference_pairs": ["relevance_filter_merge"]}
    for before, after in zip(chain, chain[1:]):
        expected = sorted(by_name[name] for name in [before, *tables.get(after, [])])
        assert sorted(tasks[by_name[after]]["dependentTasks"]) == expected, after
    assert sorted(tasks[by_name["evaluate-shards"]]["dependentTasks"]) == sorted(
        by_name[t] for t in ("dpo_training", "held_out_split", "ingest_ugc"))
    for before, after in zip(evaluation[:-1], evaluation[1:-1]):
        assert tasks[by_name[after]]["dependentTasks"] == [by_name[before]], after
    gate = tasks[by_name["gate-passed"]]  # the export runs only when the gate said so
    assert gate["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--evaluation-gate-Output'] == 'passed'")
    export = spec["components"][gate["componentRef"]["name"]]["dag"]["tasks"]
    assert [t["taskInfo"]["name"] for t in export.values()] == ["export_model"]
    for stage in LLM_STAGES:
        loop = tasks[by_name[f"{stage}-shards"]]
        shards = 8 if stage == "reward_scoring" else 4
        assert loop["parameterIterator"]["items"]["raw"] == str(list(range(shards)))
    for stage in [*GPU_STAGES, *CPU_TASKS]:
        assert task_spec(spec, stage)["cachingOptions"].get("enableCache") is True, stage


def test_new_data_under_the_same_uri_cannot_be_served_from_cache(tmp_path):
    """The fingerprint task always runs and feeds ingest, so ingest's cache key changes with the data."""
    spec, _, _ = compiled(tmp_path, "paper")
    fingerprint = task_spec(spec, "input_fingerprint")
    assert not fingerprint["cachingOptions"].get("enableCache")
    source = task_spec(spec, "ingest_ugc")["inputs"]["parameters"]["input_fingerprint"]["taskOutputParameter"]
    assert source["producerTask"] == next(k for k, t in spec["root"]["dag"]["tasks"].items()
                                          if t["taskInfo"]["name"] == "input_fingerprint")


def test_no_task_input_holds_anything_run_specific(tmp_path):
    """The backend's cache key holds every resolved input parameter: a run id among them would make every key
    unique. Checkpoints are scoped by the task's output URI at run time instead (checkpoint.task_scope)."""
    spec, _, _ = compiled(tmp_path, "paper", ["rounds=2", "cluster.shards=2"])
    assert "{{$.pipeline_job" not in json.dumps(spec) and "{{$.pipeline_task" not in json.dumps(spec)
    for component in [spec["root"], *spec["components"].values()]:
        for task in (component.get("dag") or {}).get("tasks", {}).values():
            assert not {"run_id", "task_name"} & set(task.get("inputs", {}).get("parameters", {})), task["taskInfo"]


def test_a_task_scope_is_read_from_the_output_uri_the_backend_gives_every_try():
    from pugc.checkpoint import task_scope

    uri = "gs://bucket/root/pugc/4f6c-run/reward-scoring/9e1d-uuid/scored_responses"
    assert task_scope(uri) == "pugc/4f6c-run/reward-scoring/9e1d-uuid"
    assert task_scope(uri.replace("9e1d-uuid", "77aa-uuid")) != task_scope(uri)  # another driver run, another scope


def test_kfp_retry_window_covers_every_try_of_the_timeout(tmp_path):
    """Argo counts backoff.maxDuration from the first start: a 24 h task that fails after an hour must still
    be retried, so the window holds 3 tries of 24 h plus the waits between them (120 s, then 240 s)."""
    spec, _, _ = compiled(tmp_path, "paper")
    retry = task_spec(spec, "reward_scoring")["retryPolicy"]
    assert retry["backoffMaxDuration"] == f"{3 * 86400 + 120 + 240}s"
    vertex, _, _ = compiled(tmp_path, "paper", target="vertex")
    assert task_spec(vertex, "reward_scoring")["retryPolicy"]["backoffMaxDuration"] == "3600s"  # Vertex's cap


def test_merge_tasks_take_resources_from_the_recipe(tmp_path):
    spec, _, _ = compiled(tmp_path, "paper", ["cluster.resources.reward_scoring_merge={memory_limit: 16Gi}"])
    merge = next(t for t in spec["root"]["dag"]["tasks"].values() if t["taskInfo"]["name"] == "reward_scoring_merge")
    executor = spec["components"][merge["componentRef"]["name"]]["executorLabel"]
    assert spec["deploymentSpec"]["executors"][executor]["container"]["resources"]["resourceMemoryLimit"] == "16Gi"


def test_kfp_target_carries_every_platform_setting_on_every_gpu_task(tmp_path):
    spec, platform, _ = compiled(tmp_path, "paper")
    recipe = load_recipe("paper")
    cluster = recipe.cluster
    for stage in GPU_STAGES:
        resources = container(spec, stage)["resources"]
        wanted = cluster.resources[stage]
        assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu", stage
        assert int(resources["accelerator"]["resourceCount"]) == wanted.accelerator_count >= 1, stage
        assert resources["resourceMemoryLimit"] == wanted.memory_limit and resources["resourceCpuLimit"] == wanted.cpu_limit
        pod = platform[executor_name(stage)]
        assert pod["nodeSelector"]["labels"] == cluster.gpu.node_selector, stage
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"], stage
        assert {"mountPath": "/dev/shm", "medium": "Memory", "sizeLimit": cluster.shm_size,
                "volumeName": "dshm"} in pod["emptyDirMounts"], stage
        secrets = {entry["secretName"]: entry for entry in pod["secretAsEnv"]}
        # the paper recipe's evaluator is served (OpenAI API): only evaluate, which calls it, gets its key
        assert set(secrets) == ({"hf-token", "openai-api-key"} if stage == "evaluate" else {"hf-token"}), stage
        secret = secrets["hf-token"]
        assert secret["secretName"] == cluster.hf_token_secret == "hf-token"
        assert secret["keyToEnv"] == [{"secretKey": "token", "envVar": "HF_TOKEN"}]
        assert pod["pvcMount"][0]["mountPath"] == "/cache" and pod["pvcMount"][0]["constant"] == cluster.model_cache_pvc
        assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": "10001"}
        assert pod["podMetadata"]["labels"]["team"] == "alignment"
        assert int(pod["activeDeadlineSeconds"]) == wanted.timeout_seconds
        env = {e["name"]: e["value"] for e in container(spec, stage)["env"]}
        assert env["HF_HOME"] == "/cache/huggingface"
        retry = task_spec(spec, stage)["retryPolicy"]
        assert retry["maxRetryCount"] == cluster.gpu.retry.max_retries and retry["backoffFactor"] == 2.0
    for stage in CPU_TASKS:
        assert "accelerator" not in container(spec, stage).get("resources", {}), stage
        pod = platform[executor_name(stage)]
        assert "tolerations" not in pod and "secretAsEnv" not in pod and "nodeSelector" not in pod, stage


def openai_key_refs(pod):
    return [(s["secretName"], s["keyToEnv"]) for s in pod.get("secretAsEnv", []) if s["secretName"] == "openai-api-key"]


def test_openai_key_comes_from_its_secret_only_on_tasks_whose_role_uses_openai(tmp_path):
    """The judge on a shared server (its own key variable), the generator on another (the default variable);
    the policy stays on vLLM, so sampling and DPO never see the key."""
    _, platform, _ = compiled(tmp_path, "paper", ["engines.judge.backend=openai",
                                                  "engines.judge.options={api_key_env: JUDGE_API_KEY}",
                                                  "engines.generator.backend=openai"])
    wanted = {"reward_scoring": "JUDGE_API_KEY", "ugc_filter": "OPENAI_API_KEY", "safety_screen": "OPENAI_API_KEY",
              "instruction_gen": "OPENAI_API_KEY", "relevance_filter": "OPENAI_API_KEY"}
    for stage, env_var in wanted.items():
        assert openai_key_refs(platform[executor_name(stage)]) == [
            ("openai-api-key", [{"secretKey": "api-key", "envVar": env_var}])], stage
    for stage in ["response_sampling", "dpo_training", *CPU_TASKS]:
        assert openai_key_refs(platform.get(executor_name(stage), {})) == [], stage
    assert platform[executor_name("reward_scoring")]["secretAsEnv"][0]["secretName"] == "hf-token"  # still there


def test_no_openai_key_reference_without_an_openai_role_or_without_the_secret_setting(tmp_path):
    _, platform, _ = compiled(tmp_path, "paper", ["engines.evaluator=null"])
    assert not any(openai_key_refs(pod) for pod in platform.values())
    _, platform, _ = compiled(tmp_path, "paper")  # the paper recipe's evaluator is served: evaluate alone holds the key
    assert [name for name, pod in platform.items() if openai_key_refs(pod)] == [executor_name("evaluate")]
    _, platform, _ = compiled(tmp_path, "paper", ["engines.judge.backend=openai", "cluster.openai_api_key_secret=null"])
    assert not any(openai_key_refs(pod) for pod in platform.values())


def worker_pool(spec, stage):
    """The Vertex custom job a GPU task launches: its one worker pool (machine, disk, container)."""
    task = task_spec(spec, stage)
    (pool,) = spec["components"][task["componentRef"]["name"]]["inputDefinitions"]["parameters"][
        "worker_pool_specs"]["defaultValue"]
    return pool


def test_vertex_target_is_one_document_with_gpu_tasks_as_custom_jobs_and_loads_as_a_pipeline_job(tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    recipe = load_recipe("paper")
    spec, platform, path = compiled(tmp_path, "paper", ["cluster.vertex.hf_token_secret=projects/p/secrets/hf"],
                                    target="vertex")
    assert platform == {} and "platforms" not in path.read_text()
    for stage in GPU_STAGES:
        wanted = recipe.cluster.resources[stage]
        pool = worker_pool(spec, stage)
        machine = pool["machine_spec"]
        assert machine["accelerator_type"] == "NVIDIA_H100_80GB", stage
        assert machine["accelerator_count"] == wanted.accelerator_count, stage
        assert machine["machine_type"] == f"a3-highgpu-{wanted.accelerator_count}g", stage
        disk = 500 if stage in ("ugc_filter", "safety_screen", "instruction_gen", "relevance_filter") else 200
        assert pool["disk_spec"] == {"boot_disk_size_gb": disk, "boot_disk_type": "pd-ssd"}, stage
        assert pool["container_spec"]["env"] == [{"name": "PUGC_HF_TOKEN_SECRET", "value": "projects/p/secrets/hf"}]
        assert pool["container_spec"]["image_uri"].split("/")[-1].split(":")[0] in ("vllm", "trainer")
        assert "retryPolicy" in task_spec(spec, stage), stage
    assert "accelerator" not in container(spec, "preference_pairs").get("resources", {})
    job = aiplatform.PipelineJob(
        display_name="pugc-test", template_path=str(path), pipeline_root="gs://bucket/pugc",
        parameter_values={"input_uri": "gs://bucket/ugc/"}, project="test-project", location="us-central1",
        credentials=AnonymousCredentials())
    runtime = job.to_dict()["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == "gs://bucket/pugc"
    assert runtime["parameterValues"]["input_uri"] == "gs://bucket/ugc/"


def test_vertex_gpu_tasks_run_as_the_service_account_the_job_is_submitted_with(tmp_path, capsys):
    """A custom job without a service account runs as the Custom Code Service Agent; each GPU task takes the
    pipeline's `vertex_service_account` parameter, which `pugc submit --service-account` fills."""
    from pugc.cli import main

    spec, _, path = compiled(tmp_path, "paper", ["rounds=2"], target="vertex")
    assert spec["root"]["inputDefinitions"]["parameters"]["vertex_service_account"]["defaultValue"] == ""
    def is_custom_job(task):
        inputs = spec["components"][task["componentRef"]["name"]].get("inputDefinitions", {})
        return "worker_pool_specs" in inputs.get("parameters", {})

    custom_jobs = [task for component in [spec["root"], *spec["components"].values()]
                   for task in (component.get("dag") or {}).get("tasks", {}).values() if is_custom_job(task)]
    assert len(custom_jobs) >= 7  # five LLM stages, DPO and evaluate (twice in a later round)
    for task in custom_jobs:
        assert "componentInputParameter" in task["inputs"]["parameters"]["service_account"], task["taskInfo"]
    code = main(["submit", "--recipe", "paper", "--target", "vertex", "--dry-run", "--pipeline-root", "gs://b/r",
                 "--input", "gs://b/u", "--project", "p", "--service-account", "runner@p.iam.gserviceaccount.com",
                 "-o", str(tmp_path / "v.yaml")])
    plan = json.loads(capsys.readouterr().out)
    assert code == 0 and plan["parameters"]["vertex_service_account"] == "runner@p.iam.gserviceaccount.com"
    assert plan["extra"]["vertex_runtime_config"]["parameterValues"]["vertex_service_account"] == \
        "runner@p.iam.gserviceaccount.com"


def test_vertex_rejects_unknown_parameters_offline(tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    _, _, path = compiled(tmp_path, "paper", target="vertex")
    with pytest.raises(ValueError):
        aiplatform.PipelineJob(display_name="x", template_path=str(path), pipeline_root="gs://b/p",
                               parameter_values={"inptu_uri": "gs://b"}, project="p", location="us-central1",
                               credentials=AnonymousCredentials())


def test_pipeline_root_from_recipe_or_flag(tmp_path):
    spec, _, _ = compiled(tmp_path, "paper", ["cluster.pipeline_root=gs://from-recipe/pugc"])
    assert spec["defaultPipelineRoot"] == "gs://from-recipe/pugc"
    spec, _, _ = compiled(tmp_path, "paper", ["cluster.pipeline_root=gs://from-recipe/pugc"],
                          pipeline_root="gs://from-flag/pugc")
    assert spec["defaultPipelineRoot"] == "gs://from-flag/pugc"


def test_no_secret_value_in_compiled_yaml(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_PLANTED-fake-token-value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-PLANTED-fake-key")
    for target in ("kfp", "vertex"):
        _, _, path = compiled(tmp_path, "paper", ["engines.judge.backend=openai"], target=target)
        text = path.read_text()
        assert "PLANTED" not in text


def test_images_come_from_one_module_tagged_with_the_commit(tmp_path):
    from pugc.components import images

    spec, _, _ = compiled(tmp_path, "paper")
    assert container(spec, "reward_scoring")["image"] == images.INFERENCE
    assert container(spec, "dpo_training")["image"] == images.TRAINER
    assert container(spec, "preference_pairs")["image"] == images.BASE
    assert images.TAG == (os.environ.get("PUGC_IMAGE_TAG") or images.source_commit())  # this commit's code
    assert images.BASE.endswith(f":{images.TAG}") and len(images.TAG) == images.COMMIT_CHARS
    # Images carry kfp and pugc: the command must not pip-install kfp at start-up.
    assert "pip install" not in " ".join(container(spec, "reward_scoring")["command"])


def test_a_digest_file_pins_every_image(tmp_path):
    """CI's push writes the digests; a reference with one cannot be served by another image of the same tag."""
    import subprocess

    digests = {name: "sha256:" + f"{i}" * 64 for i, name in enumerate(("base", "vllm", "trainer"), start=1)}
    (tmp_path / "digests.json").write_text(json.dumps(digests))
    code = "from pugc.components import images; print(images.BASE); print(images.TRAINER)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PUGC_IMAGE_DIGESTS": str(tmp_path / "digests.json"),
                              "PUGC_IMAGE_TAG": "abc123", "PUGC_IMAGE_REGISTRY": "r.example/p"}).stdout.split()
    assert out == [f"r.example/p/base:abc123@{digests['base']}", f"r.example/p/trainer:abc123@{digests['trainer']}"]


def test_tiny_recipe_requests_no_accelerator(tmp_path):
    spec, _, _ = compiled(tmp_path, "tiny")
    for stage in GPU_STAGES + CPU_TASKS:
        assert "accelerator" not in container(spec, stage).get("resources", {}), stage


@pytest.mark.parametrize("recipe_name", ["tiny", "paper"])
def test_parameter_defaults_rebuild_the_same_typed_configs(tmp_path, recipe_name):
    """What a component rebuilds from the compiled defaults (numbers as floats, nulls left out) is the recipe."""
    recipe = load_recipe(recipe_name, ["ugc_filter.threshold=null"])
    spec = next(yaml.safe_load_all(compile_pipeline(recipe, tmp_path / "p.yaml").read_text()))
    params = spec["root"]["inputDefinitions"]["parameters"]
    for stage, cls in STAGE_CONFIGS.items():
        rebuilt = build(cls, params[f"{stage}_config"]["defaultValue"], stage)
        assert rebuilt == getattr(recipe, stage), stage
    assert params["recipe_digest"]["defaultValue"] == recipe.digest()


def test_every_optional_config_field_defaults_to_none():
    """KFP dict parameters cannot carry null, so nulls are left out; that is only lossless if None is the default."""
    import typing

    from pugc import config as cfg

    classes = [c for c in vars(cfg).values() if dataclasses.is_dataclass(c) and isinstance(c, type)]
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if type(None) in typing.get_args(hints[field.name]):
                assert field.default is None, f"{cls.__name__}.{field.name}"


def test_typo_fails_before_compiling(tmp_path):
    from pugc.cli import main

    out = tmp_path / "never.yaml"
    assert main(["compile", "--recipe", "paper", "--set", "reward_scoring.temprature=1", "-o", str(out)]) == 2
    assert not out.exists()


def test_lineage_starts_at_the_data_through_an_importer(tmp_path):
    for target in ("kfp", "vertex"):
        spec, _, _ = compiled(tmp_path, "paper", target=target)
        tasks = spec["root"]["dag"]["tasks"]
        importer = next(t for t in tasks.values() if t["taskInfo"]["name"] == "ugc_source")
        assert importer["inputs"]["parameters"]["uri"]["componentInputParameter"] == "input_uri"
        source = task_spec(spec, "ingest_ugc")["inputs"]["artifacts"]["source"]["taskOutputArtifact"]
        assert source["producerTask"] == "importer"


def test_reports_for_people_are_html_artifacts(tmp_path):
    spec, _, _ = compiled(tmp_path, "paper")
    outputs = {name: spec["components"][f"comp-{name.replace('_', '-')}"]["outputDefinitions"]["artifacts"]
               for name in ("preference_pairs", "dpo_training", "run_summary")}
    assert outputs["preference_pairs"]["pairs_report"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert outputs["dpo_training"]["loss_curve"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert outputs["dpo_training"]["dpo_model"]["artifactType"]["schemaTitle"] == "system.Model"
    assert outputs["run_summary"]["report"]["artifactType"]["schemaTitle"] == "system.Markdown"


def test_vertex_checkpoints_go_through_cloud_storage_fuse(tmp_path):
    from pugc.config import ConfigError

    spec, _, _ = compiled(tmp_path, "paper", ["cluster.vertex.checkpoint_root=/gcs/bucket/ckpt"], target="vertex")
    runtime = spec["root"]["inputDefinitions"]["parameters"]["runtime"]["defaultValue"]
    assert runtime["checkpoint_root"] == "/gcs/bucket/ckpt"
    with pytest.raises(ConfigError, match="share no volume"):
        compiled(tmp_path, "paper", ["cluster.vertex.checkpoint_root=/cache/checkpoints"], target="vertex")


def test_vertex_gpu_count_without_a_known_machine_names_the_setting(tmp_path):
    with pytest.raises(ValueError, match="cluster.resources.reward_scoring: .*set vertex_machine_type"):
        compiled(tmp_path, "paper", ["cluster.resources.reward_scoring.accelerator_count=3"], target="vertex")


def round_tasks(spec, index):
    return spec["components"][spec["root"]["dag"]["tasks"][f"round-{index}"]["componentRef"]["name"]]["dag"]["tasks"]


def test_each_training_round_is_its_own_group_trained_from_the_previous_round(tmp_path):
    """rounds: 3 unrolls into three sub-pipelines in sequence; round r > 1 samples and trains from round r-1's
    model; the gate and the export act on the last round's model."""
    spec, executors, _ = compiled(tmp_path, "paper", ["rounds=3"])
    tasks = spec["root"]["dag"]["tasks"]
    assert {f"round-{r}" for r in (1, 2, 3)} <= set(tasks)
    assert not {"preference-pairs", "dpo-training"} & set(tasks)  # only inside the rounds
    for r in (1, 2, 3):
        inner = round_tasks(spec, r)
        assert {"round-split", "preference-pairs", "dpo-training", "evaluation-gate", "round-report"} <= set(inner)
        split = inner["round-split"]["inputs"]["parameters"]
        assert (split["round_index"]["runtimeValue"]["constant"], split["round_count"]["runtimeValue"]["constant"]) \
            == (r, 3)
        training = inner["dpo-training"]["inputs"]["artifacts"]
        loop = next(t for t in inner.values() if t["taskInfo"]["name"] == "response_sampling-shards")
        sampling_loop = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
        sampling = next(iter(sampling_loop.values()))["inputs"]["artifacts"]
        report = inner["round-report"]["inputs"]["artifacts"]
        if r == 1:  # the base policy: no model handed in, no comparison with a previous round
            assert "policy_model" not in training and "policy_model" not in sampling
            assert "previous_evaluate_dropped" not in report
        else:  # the drops of the comparison with the previous round reach the run's rejected records
            merge = report["previous_evaluate_dropped"]["taskOutputArtifact"]
            assert merge["outputArtifactKey"] == "dropped" and merge["producerTask"].startswith("merge-shards")
        if r > 1:
            assert training["policy_model"] == {"componentInputArtifact": "policy_model"}
            assert "policy_model" in sampling
            handed = tasks[f"round-{r}"]["inputs"]["artifacts"]["policy_model"]["taskOutputArtifact"]
            assert handed == {"outputArtifactKey": "dpo_model", "producerTask": f"round-{r - 1}"}
            assert f"round-{r - 1}" in tasks[f"round-{r}"]["dependentTasks"]
        training_exec = spec["components"][inner["dpo-training"]["componentRef"]["name"]]["executorLabel"]
        assert spec["deploymentSpec"]["executors"][training_exec]["container"]["resources"]["accelerator"]
        assert executors[training_exec]["tolerations"]  # the cluster settings reach tasks inside a round
    gate = tasks["evaluation-gate"]["inputs"]["artifacts"]["judged"]["taskOutputArtifact"]
    assert gate == {"outputArtifactKey": "judged", "producerTask": "round-3"}
    condition = next(t for t in tasks.values() if t["taskInfo"]["name"] == "gate-passed")
    export = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]["export-model"]
    assert export["inputs"]["parameters"]["model_uri"]["componentInputParameter"].endswith("round-3-model_uri")
    assert "artifacts" not in export["inputs"] or "dpo_model" not in export["inputs"]["artifacts"]
    summary = tasks["run-summary"]["inputs"]["artifacts"]
    assert summary["rounds"]["taskOutputArtifact"]["producerTask"] == "round-3"


def test_one_round_keeps_the_flat_dag():
    from pugc.pipelines.pugc_pipeline import build_pipeline

    names: dict = {}
    build_pipeline(load_recipe("tiny"), import_input=False, task_names=names)
    assert not any(key.startswith("round_") for key in names)
    assert ["response_sampling", "dpo_training", "evaluation_gate"] == [
        key for key in names if key in ("response_sampling", "dpo_training", "evaluation_gate")]


def test_no_cpu_task_receives_a_model_artifact(tmp_path):
    """KFP's launcher downloads every input artifact whole before a task starts (backend/src/v2/component/
    launcher_v2.go, downloadArtifacts): a CPU task that only reads figures or copies a model takes a small
    report artifact or the model's URI instead of a 14-29 GB checkpoint."""
    from pugc.components import images

    spec, _, _ = compiled(tmp_path, "paper", ["rounds=2"])
    executors = spec["deploymentSpec"]["executors"]
    for name, component in spec["components"].items():
        executor = executors.get(component.get("executorLabel", ""), {}).get("container")
        if not executor or executor["image"] != images.BASE:
            continue
        types = {a["artifactType"]["schemaTitle"] for a in component.get("inputDefinitions", {}).get("artifacts", {}).values()}
        assert "system.Model" not in types, name


def test_a_safety_prompt_set_adds_safety_eval_and_holds_the_export_behind_it(tmp_path):
    spec, _, _ = compiled(tmp_path, "paper", ["evaluation.safety.prompts=[gs://b/safety_prompts.jsonl]",
                                              "evaluation.gate.max_harm_rate_increase=0.0"])
    tasks = spec["root"]["dag"]["tasks"]
    by_name = {t["taskInfo"]["name"]: t for t in tasks.values()}
    assert by_name["safety_eval"]["dependentTasks"] == ["dpo-training"]
    gate = spec["components"][by_name["gate-passed"]["componentRef"]["name"]]["dag"]["tasks"]
    (safety_condition,) = gate.values()
    assert safety_condition["taskInfo"]["name"] == "safety-passed"
    assert "safety-eval-Output'] == 'passed'" in safety_condition["triggerPolicy"]["condition"]
    inner = spec["components"][safety_condition["componentRef"]["name"]]["dag"]["tasks"]
    assert [t["taskInfo"]["name"] for t in inner.values()] == ["export_model"]
    spec, _, _ = compiled(tmp_path, "paper")  # no safety prompts: no task
    assert "safety_eval" not in {t["taskInfo"]["name"] for t in spec["root"]["dag"]["tasks"].values()}
