"""The compiled pipeline run the way the open-source KFP backend runs it (tests/cluster/kfp_backend.py):
each task's own container command, artifacts under a gs:// pipeline root, metadata through ML Metadata's
conversion, `Collected` shard outputs as lists in no particular order, the input read from GCS (emulator)."""
import dataclasses
import json

import pytest

from pugc.config import load_recipe
from pugc.inprocess import run_in_process
from pugc.components import images
from tests.cluster.kfp_backend import (BackendCache, BackendRun, ImageEnv, TaskFailed, UnsupportedValue, cel_condition,
                                       through_mlmd)

PIPELINE_ROOT = "gs://pugc-pipeline-root/tiny"


def test_metadata_comes_back_as_the_backend_stores_it():
    assert through_mlmd({"rows": 3, "name": "x", "ok": True, "shard": [0, 2], "dropped": {"a": 1}}) == {
        "rows": 3.0, "name": "x", "ok": 1.0, "shard": {"list": [0, 2]}, "dropped": {"struct": {"a": 1}}}
    with pytest.raises(UnsupportedValue):
        through_mlmd({"model": None})


def test_lineage_metadata_is_flat_and_survives_the_backend():
    from pugc.lineage import decode, encode

    lineage = {"stage": "reward_scoring", "rows_in": 12, "dropped": {"unparsable_judgement": 2},
               "metrics": {"score_mean": 3.5}, "model": None, "seconds": 1.5, "merged": True}
    stored = encode(lineage)
    assert all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in stored.values())
    assert "model" not in stored
    back = decode(through_mlmd(stored))
    assert back == {"stage": "reward_scoring", "rows_in": 12, "dropped": {"unparsable_judgement": 2},
                    "metrics": {"score_mean": 3.5}, "seconds": 1.5, "merged": 1}
    assert isinstance(back["rows_in"], int)


@pytest.fixture(scope="module")
def backend_run(tmp_path_factory, sample_slice, gcs_emulator, base_env, vllm_env, pugc_site):
    """The tiny recipe with 2 shards. CPU tasks run in the base image's environment (`make base-env`), the LLM
    stages in the vllm image's (its pins with vLLM's CPU build, `make vllm-env`), DPO in this one, whose pins
    are the trainer image's (torch aside). pugc reaches each as the images install it (a built wheel)."""
    work = tmp_path_factory.mktemp("backend")
    recipe = load_recipe("tiny", ["cluster.shards=2", f"cluster.model_cache_path={work / 'cache'}"])
    cache = BackendCache()
    run, result = run_on_backend(recipe, work, gcs_emulator, "pugc-backend-input", sample_slice, base_env, vllm_env,
                                 pugc_site, cache)
    return run, result, recipe, work, cache



@pytest.mark.e2e
def test_every_task_runs_its_compiled_command_and_every_line_is_accounted_for(backend_run):
    run, result, _, _, _ = backend_run
    shard_tasks = [t.path for t in result.tasks if t.path.startswith("for-loop")]
    assert len(shard_tasks) == 14  # six LLM stages (safety_screen among them) and evaluate x two shards, each a task
    assert all(t.returncode == 0 for t in result.tasks)
    assert {t.image for t in result.tasks} == {images.BASE, images.INFERENCE, images.TRAINER}
    assert {t.python for t in result.tasks if t.image == images.INFERENCE} == {run.images[images.INFERENCE].python}
    assert {t.python for t in result.tasks if t.image == images.BASE} == {run.images[images.BASE].python}
    for task in result.tasks:  # what the project writes is flat: nothing came back converted
        for found in task.outputs.values():
            assert not any(isinstance(v, dict) for v in found[0].metadata.values()), task.path
    summary = json.loads(run.local_path(result.artifact("run-summary", "summary").uri).read_text())
    stages = summary["stages"]
    assert summary["input_lines"] == 60 and summary["quarantined"] == 2
    for name in ("ingest_ugc", "ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "reward_scoring"):
        counts = stages[name]
        assert counts["in"] == counts["out"] + sum(counts["dropped"].values()), name
    rejected = run.local_path(result.artifact("run-summary", "rejected").uri).read_text().splitlines()
    assert len(rejected) == summary["quarantined"] + sum(sum(s["dropped"].values()) for s in stages.values())
    assert summary["preference_pairs"] > 0
    evaluation = summary["evaluation"]
    assert evaluation["prompts"] == stages["held_out_split"]["dropped"]["held_out"] > 0
    assert evaluation["gate"]["passed"] is True and not result.skipped  # tiny's gate is permissive
    (export_task,) = [t for t in result.tasks if t.path.endswith("/export-model")]  # under the gate's condition
    export = run.local_path(export_task.outputs["exported"][0].uri)
    assert json.loads(export.read_text())["evaluation"]["win_rate"] == evaluation["win_rate"]


@pytest.mark.e2e
def test_two_shards_merged_from_a_shuffled_collection_equal_one_process(backend_run, tmp_path, sample_slice):
    run, result, recipe, work, _ = backend_run
    pairs = run.local_path(result.artifact("preference-pairs", "preference_pairs").uri).read_text()
    run_in_process(recipe, str(sample_slice), tmp_path)
    expected = (tmp_path / "preference_pairs.jsonl").read_text()
    key = lambda text: [(r["prompt"], r["chosen"], r["rejected"], r["instruction_id"])  # noqa: E731
                        for r in map(json.loads, text.splitlines())]
    assert key(pairs) == key(expected)
    merge = result.artifact("merge-shards-6", "merged")
    assert merge.metadata["stage"] == "reward_scoring" and merge.metadata["shards"] == 2


@pytest.mark.e2e
def test_model_artifact_metadata_reads_back_after_the_backend(backend_run):
    from pugc.lineage import decode

    run, result, _, _, _ = backend_run
    model = result.artifact("dpo-training", "dpo_model")
    lineage = decode(model.metadata)
    assert lineage["stage"] == "dpo_training" and lineage["training"]["steps"] == 4
    assert (run.local_path(model.uri) / "config.json").is_file()


def test_a_task_that_writes_null_metadata_fails_as_on_a_cluster(tmp_path):
    from kfp import compiler, dsl
    from kfp.dsl import Dataset, Output

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def writes_null(out: Output[Dataset]):
        open(out.path, "w").write("x")
        out.metadata["model"] = None

    @dsl.pipeline(name="null-metadata")
    def pipeline():
        writes_null()

    compiler.Compiler().compile(pipeline, str(tmp_path / "p.yaml"))
    with pytest.raises(TaskFailed, match="unsupported value type"):
        BackendRun(tmp_path / "p.yaml", tmp_path, {"pipeline_root": "gs://b/root"}).run()


def test_conditions_are_the_cel_the_driver_evaluates():
    gate = "inputs.parameter_values['pipelinechannel--evaluation-gate-Output'] == 'passed'"
    assert cel_condition(gate, {"pipelinechannel--evaluation-gate-Output": "passed"}) is True
    assert cel_condition(gate, {"pipelinechannel--evaluation-gate-Output": "failed"}) is False
    assert cel_condition("!(inputs.parameter_values['a'] == 'x') && int(inputs.parameter_values['n']) >= 2",
                         {"a": "y", "n": 2}) is True
    with pytest.raises(KeyError, match="which the task lacks"):
        cel_condition("inputs.parameter_values['b'] == 1", {"a": 1})
    with pytest.raises(NotImplementedError, match="size"):
        cel_condition("size(inputs.parameter_values['a']) > 1", {"a": "xy"})


@pytest.mark.parametrize("verdict, ran", [("passed", "ship"), ("failed", "hold")])
def test_if_else_runs_only_the_branch_whose_condition_holds(tmp_path, verdict, ran):
    from kfp import compiler, dsl
    from kfp.dsl import Dataset, Output

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def decide(verdict: str) -> str:
        return verdict

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def act(what: str, out: Output[Dataset]):
        open(out.path, "w").write(what)

    @dsl.pipeline(name="gated")
    def pipeline(verdict: str):
        decision = decide(verdict=verdict)
        with dsl.If(decision.output == "passed", name="ship-branch"):
            act(what="ship").set_display_name("ship")
        with dsl.Else(name="hold-branch"):
            act(what="hold").set_display_name("hold")

    compiler.Compiler().compile(pipeline, str(tmp_path / "p.yaml"))
    result = BackendRun(tmp_path / "p.yaml", tmp_path, {"pipeline_root": "gs://b/root"}).run({"verdict": verdict})
    decided, acted = result.tasks
    assert decided.path == "decide" and acted.path.startswith("condition-branches-1/")
    assert (tmp_path / "gcs" / acted.outputs["out"][0].uri[len("gs://"):]).read_text() == ran
    (not_run,) = result.skipped  # the other branch's condition was false: nothing of it ran
    assert not_run.startswith("condition-branches-1/condition-") and not_run != acted.path.rsplit("/", 1)[0]


@pytest.mark.e2e
def test_rounds_run_as_sub_pipelines_each_sampling_and_training_from_the_previous_model(
        tmp_path, sample_slice, gcs_emulator, base_env, vllm_env, pugc_site):
    """rounds: 2 on the backend: each round a sub-DAG; round 2's tasks get round 1's Model artifact as their
    policy through the pipeline root's mount, and the summary holds both rounds."""
    recipe = load_recipe("tiny", ["rounds=2", f"cluster.model_cache_path={tmp_path / 'cache'}"])
    run, result = run_on_backend(recipe, tmp_path, gcs_emulator, "pugc-backend-rounds", sample_slice, base_env,
                                 vllm_env, pugc_site)
    assert all(t.returncode == 0 for t in result.tasks) and not result.skipped
    assert {"round-1/dpo-training", "round-2/dpo-training", "round-2/round-report"} <= {t.path for t in result.tasks}
    summary = json.loads(run.local_path(result.artifact("run-summary", "summary").uri).read_text())
    first, second = summary["rounds"]
    round_one_model = result.artifact("round-1/dpo-training", "dpo_model")
    assert first["sampled_with"] == first["base_model"] == "pugc-tiny/policy"
    # the launcher handed each of round 2's tasks its own downloaded copy of round 1's model (/gcs/<bucket>/<key>)
    for used in (second["sampled_with"], second["base_model"]):
        assert used.endswith("/gcs/" + round_one_model.uri[len("gs://"):]), used
    assert summary["training"]["base_model"] == second["base_model"]
    assert sum(r["questions"] for r in summary["rounds"]) == summary["stages"]["held_out_split"]["out"]
    rejected = [json.loads(line) for line in
                run.local_path(result.artifact("run-summary", "rejected").uri).read_text().splitlines()]
    stages = summary["stages"]
    counted = [row for row in rejected if row["stage"] != "evaluate_previous"]  # a comparison, not the run's flow
    assert len(counted) == summary["quarantined"] + sum(sum(s["dropped"].values()) for s in stages.values())


def run_on_backend(recipe, folder, gcs_emulator, bucket_name: str, sample_slice, base_env, vllm_env, pugc_site,
                   cache: BackendCache | None = None):
    """The recipe submitted as `pugc submit` sends it (to the loopback KFP API server) and run as the backend
    runs the stored run: its runtime config's root and parameters, its input uploaded to the GCS emulator; CPU
    tasks in the base image's environment, LLM stages in the vllm image's."""
    stored = submitted_run(recipe, folder, f"gs://{bucket_name}/ugc/slice.jsonl")
    gcs_emulator.create_bucket(bucket_name).blob("ugc/slice.jsonl").upload_from_filename(str(sample_slice))
    run = BackendRun(folder / "pipeline.yaml", folder, stored["runtime_config"], run_id=stored["run_id"],
                     images=image_envs(base_env, vllm_env, pugc_site), cache=cache)
    return run, run.run()


def image_envs(base_env, vllm_env, pugc_site) -> dict:
    return {images.BASE: ImageEnv(str(base_env / "bin" / "python"), str(pugc_site)),
            images.INFERENCE: ImageEnv(str(vllm_env / "bin" / "python"), str(pugc_site))}


def submitted_run(recipe, folder, input_uri: str, pipeline_root: str = PIPELINE_ROOT) -> dict:
    """The run as the API server stores it after `pugc submit` (the real kfp.Client, loopback server)."""
    from pugc.pipelines import submit
    from tests.cluster.kfp_api import KFPApiServer

    plan = submit.plan(recipe, "kfp", folder / "pipeline.yaml", input_uri=input_uri, pipeline_root=pipeline_root)
    with KFPApiServer(multi_user=False) as server:
        result = submit.submit(dataclasses.replace(plan, host=server.url, namespace="kubeflow"))
    return server.state.runs[result["run_id"]]


def test_the_backend_runs_under_the_root_the_run_carries(tmp_path):
    """The root travels in the run; a run without one would write to the launcher's MinIO default."""
    stored = submitted_run(load_recipe("tiny"), tmp_path, "gs://b/ugc.jsonl", "gs://b/run-root")
    run = BackendRun(tmp_path / "pipeline.yaml", tmp_path, stored["runtime_config"])
    assert run.root == "gs://b/run-root" and run.runtime_config["parameters"] == {"input_uri": "gs://b/ugc.jsonl"}
    without = {key: value for key, value in stored["runtime_config"].items() if key != "pipeline_root"}
    with pytest.raises(TaskFailed, match="minio://mlpipeline/v2/artifacts"):
        BackendRun(tmp_path / "pipeline.yaml", tmp_path, without)
    assert BackendRun(tmp_path / "pipeline.yaml", tmp_path, without,
                      launcher_config={"defaultPipelineRoot": "gs://b/launcher-root"}).root == "gs://b/launcher-root"


@pytest.mark.e2e
def test_cpu_tasks_download_no_model_and_every_task_says_what_it_moved(backend_run):
    """What the launcher copies to each pod's disk before the task starts: a CPU task never gets a model."""
    run, result, _, _, _ = backend_run
    model = sum(p.stat().st_size for p in run.local_path(result.artifact("dpo-training", "dpo_model").uri).rglob("*")
                if p.is_file())
    moved = sorted(((t.downloaded_bytes, t.uploaded_bytes, t.path, t.image) for t in result.tasks), reverse=True)
    print("\nbytes downloaded / uploaded per task (tiny recipe, 2 shards):")
    for down, up, path, image in moved:
        print(f"  {down:>10,} {up:>10,}  {path}  ({image.rsplit('/', 1)[-1]})")
    for down, _, path, image in moved:
        if image == images.BASE:
            assert down < model, f"{path} downloads {down:,} bytes, the trained model is {model:,}"
    evaluate = [t for t in result.tasks if t.path.endswith("/evaluate")]
    assert evaluate and all(t.downloaded_bytes > model for t in evaluate)  # the GPU task reads the model


@pytest.mark.e2e
def test_a_resubmitted_run_hits_the_cache_from_the_first_changed_task_on(backend_run, tmp_path, base_env, vllm_env,
                                                                        pugc_site):
    """The same recipe submitted again: every task whose inputs did not change is served from the backend's
    cache (the fingerprint of the input is recomputed each run: it never is); then with one stage's settings
    changed, the tasks before it hit, and it and everything after run again."""
    run, first, recipe, work, cache = backend_run
    again = submitted_run(recipe, tmp_path, run.runtime_config["parameters"]["input_uri"])
    assert again["run_id"] != first.run_id
    second = BackendRun(work / "pipeline.yaml", tmp_path / "second", again["runtime_config"], run_id=again["run_id"],
                        images=image_envs(base_env, vllm_env, pugc_site), cache=cache, mount=run.mount).run()
    ran = {t.path for t in second.tasks if not t.cached}
    assert ran == {"input-fingerprint"}, ran  # never cached by design; its output, and all else, unchanged
    pairs = {**recipe.pipeline_sections()["preference_pairs"], "min_margin": 0.25}
    third = BackendRun(work / "pipeline.yaml", tmp_path / "third", again["runtime_config"], run_id="run-3",
                       images=image_envs(base_env, vllm_env, pugc_site), cache=cache, mount=run.mount).run(
        {"preference_pairs_config": pairs})
    by_path = {t.path: t for t in third.tasks}
    assert all(by_path[p].cached for p in by_path if "reward-scoring" in p or "ugc-filter" in p or p == "ingest-ugc")
    assert not by_path["preference-pairs"].cached and not by_path["dpo-training"].cached
    assert not by_path["run-summary"].cached
