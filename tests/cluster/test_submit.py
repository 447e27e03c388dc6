"""`pugc submit --dry-run` for both targets: what would be sent, offline, with no secret in it; `pugc submit
--wait` and `pugc status` against a loopback KFP API server and the GCS emulator."""
import json
import uuid

import pytest

from pugc.cli import main


def run_cli(capsys, *args):
    code = main(["submit", "--recipe", "paper", "--dry-run", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_kfp_dry_run_names_host_experiment_schedule_and_token_source_not_token(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KFP_TOKEN", "PLANTED-kfp-token-value")
    code, out, _ = run_cli(capsys, "--target", "kfp", "--host", "https://kfp.example.internal",
                           "--input", "gs://bucket/ugc/", "--pipeline-root", "gs://bucket/root", "--experiment", "pugc-nightly", "--schedule", "0 3 * * 1",
                           "--run-name", "nightly", "-o", str(tmp_path / "p.yaml"))
    assert code == 0
    plan = json.loads(out)
    assert (plan["target"], plan["host"], plan["experiment"], plan["schedule"], plan["run_name"]) == (
        "kfp", "https://kfp.example.internal", "pugc-nightly", "0 3 * * 1", "nightly")
    assert plan["parameters"] == {"input_uri": "gs://bucket/ugc/"}
    assert plan["token_source"] == "$KFP_TOKEN" and "PLANTED" not in out
    assert (tmp_path / "p.yaml").is_file() and len(plan["pipeline_sha256"]) == 64


def test_vertex_dry_run_builds_the_job_offline(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "--target", "vertex", "--pipeline-root", "gs://bucket/root", "--input",
                           "gs://bucket/ugc/part-0.jsonl", "--project", "my-project", "-o", str(tmp_path / "v.yaml"))
    assert code == 0
    plan = json.loads(out)
    assert plan["extra"]["vertex_runtime_config"]["gcsOutputDirectory"] == "gs://bucket/root"
    assert plan["project"] == "my-project" and plan["region"] == "us-central1"


@pytest.mark.parametrize("args, message", [
    (["--target", "vertex", "--input", "gs://b/u"], "Vertex AI needs a gs:// pipeline root"),
    (["--target", "kfp", "--input", "gs://b/u"], "A Kubeflow Pipelines run needs a gs:// pipeline root"),
    (["--target", "kfp", "--input", "gs://b/u", "--pipeline-root", "minio://mlpipeline/v2/artifacts"],
     "needs a gs:// pipeline root"),
    (["--target", "kfp", "--pipeline-root", "gs://b/root"], "no input"),
])
def test_missing_pieces_fail_before_anything_is_sent(tmp_path, capsys, args, message):
    code, _, err = run_cli(capsys, *args, "-o", str(tmp_path / "x.yaml"))
    assert code == 2 and message in err


def test_kfp_dry_run_names_the_namespace_and_service_account_from_the_recipe_or_the_flags(tmp_path, capsys):
    base = ["--target", "kfp", "--input", "gs://bucket/ugc/", "--pipeline-root", "gs://bucket/root", "-o",
            str(tmp_path / "p.yaml")]
    code, out, _ = run_cli(capsys, *base)
    plan = json.loads(out)
    assert code == 0 and (plan["namespace"], plan["service_account"]) == ("kubeflow", "pugc-pipeline-runner")
    code, out, _ = run_cli(capsys, *base, "--namespace", "kubeflow-user-example-com", "--service-account", "runner-b")
    plan = json.loads(out)
    assert code == 0 and (plan["namespace"], plan["service_account"]) == ("kubeflow-user-example-com", "runner-b")


def test_vertex_takes_its_google_service_account_from_the_flag_only(tmp_path, capsys):
    base = ["--target", "vertex", "--pipeline-root", "gs://b/root", "--input", "gs://b/u", "--project", "p",
            "-o", str(tmp_path / "v.yaml")]
    plan = json.loads(run_cli(capsys, *base)[1])
    assert plan["service_account"] is None and plan["namespace"] is None  # the recipe's is a Kubernetes name
    plan = json.loads(run_cli(capsys, *base, "--service-account", "runner@p.iam.gserviceaccount.com")[1])
    assert plan["service_account"] == "runner@p.iam.gserviceaccount.com"


# ---- the real kfp.Client against a loopback server that speaks the KFP v2beta1 REST API --------------------
PROFILE = "kubeflow-user-example-com"
ROOT = "gs://bucket/pugc-root"


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory):
    """The paper recipe's KFP plan, compiled once for the tests below (each sets host and namespace)."""
    from pugc.config import load_recipe
    from pugc.pipelines import submit

    return submit.plan(load_recipe("paper"), "kfp", tmp_path_factory.mktemp("kfp") / "pugc.yaml",
                       input_uri="gs://bucket/ugc/", experiment="pugc-nightly", run_name="nightly",
                       pipeline_root=ROOT)


def kfp_plan(paper_plan, host, namespace=None, schedule=None):
    import dataclasses

    return dataclasses.replace(paper_plan, host=host, namespace=namespace, schedule=schedule)


def test_multi_user_run_lands_in_the_profile_namespace_as_the_recipe_service_account(paper_plan, monkeypatch):
    from pugc.pipelines import submit
    from tests.cluster.kfp_api import KFPApiServer

    with KFPApiServer(multi_user=True) as server:
        monkeypatch.setenv("KFP_TOKEN", "PLANTED-kfp-token")
        result = submit.submit(kfp_plan(paper_plan, server.url, namespace=PROFILE))
    state = server.state
    (experiment,) = state.posted("/experiments")
    assert experiment["namespace"] == PROFILE and experiment["display_name"] == "pugc-nightly"
    lookups = [r.query for r in state.requests if r.method == "GET" and r.path.endswith("/experiments")]
    assert lookups and all(q["namespace"] == PROFILE for q in lookups)
    (run,) = state.posted("/runs")
    assert run["service_account"] == "pugc-pipeline-runner" and run["display_name"] == "nightly"
    assert state.experiments[run["experiment_id"]]["namespace"] == PROFILE
    assert run["runtime_config"]["parameters"] == {"input_uri": "gs://bucket/ugc/"}
    # the backend takes the root from here, never from the compiled spec (its defaultPipelineRoot is unread)
    assert run["runtime_config"]["pipeline_root"] == ROOT
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "pugc"
    assert run["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]  # secrets, PVC, selectors travel
    assert state.runs[result["run_id"]]["service_account"] == "pugc-pipeline-runner"
    assert result["namespace"] == PROFILE
    assert all(r.headers.get("authorization") == "Bearer PLANTED-kfp-token" for r in state.requests)


def test_multi_user_recurring_run_carries_namespace_and_service_account(paper_plan, monkeypatch):
    from pugc.pipelines import submit
    from tests.cluster.kfp_api import KFPApiServer

    with KFPApiServer(multi_user=True) as server:
        result = submit.submit(kfp_plan(paper_plan, server.url, namespace=PROFILE, schedule="0 3 * * 1"))
    (recurring,) = server.state.posted("/recurringruns")
    assert recurring["service_account"] == "pugc-pipeline-runner"
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 3 * * 1"
    assert recurring["runtime_config"]["pipeline_root"] == ROOT  # every scheduled run inherits it
    stored = server.state.recurring_runs[result["recurring_run_id"]]
    assert stored["namespace"] == PROFILE and server.state.posted("/experiments")[0]["namespace"] == PROFILE


def test_multi_user_server_refuses_a_submission_without_namespace(paper_plan, monkeypatch):
    """The loopback server holds the backend's rule, so a submission that forgot the namespace fails here."""
    import kfp_server_api

    from pugc.pipelines import submit
    from tests.cluster.kfp_api import KFPApiServer

    with KFPApiServer(multi_user=True) as server:
        plan = kfp_plan(paper_plan, server.url)
        plan.namespace = None
        with pytest.raises(kfp_server_api.ApiException) as refused:
            submit.submit(plan)
    assert "namespace" in refused.value.body and not server.state.runs


def test_standalone_run_is_accepted_with_the_kubeflow_namespace_and_service_account(paper_plan, monkeypatch):
    from pugc.pipelines import submit
    from tests.cluster.kfp_api import KFPApiServer

    with KFPApiServer(multi_user=False) as server:
        result = submit.submit(kfp_plan(paper_plan, server.url, namespace="kubeflow"))
    state = server.state
    assert any(r.path.endswith("/healthz") for r in state.requests)  # the client asks which mode it is
    assert state.posted("/experiments")[0]["namespace"] == "kubeflow"
    assert state.experiments[state.runs[result["run_id"]]["experiment_id"]]["namespace"] == ""  # ReplaceNamespace
    assert state.runs[result["run_id"]]["service_account"] == "pugc-pipeline-runner"
@pytest.mark.parametrize("caching", [True, False])
def test_vertex_job_keeps_the_recipes_caching_and_never_caches_the_fingerprint(tmp_path, caching):
    from google.auth.credentials import AnonymousCredentials

    from pugc.config import load_recipe
    from pugc.pipelines.submit import plan, vertex_job

    recipe = load_recipe("paper", [f"cluster.caching={str(caching).lower()}"])
    p = plan(recipe, "vertex", tmp_path / "v.yaml", input_uri="gs://b/ugc/", pipeline_root="gs://b/root",
             project="my-project")
    tasks = vertex_job(p, credentials=AnonymousCredentials()).to_dict()["pipelineSpec"]["root"]["dag"]["tasks"]
    by_name = {t["taskInfo"]["name"]: t for t in tasks.values()}
    assert bool(by_name["ingest_ugc"].get("cachingOptions", {}).get("enableCache")) is caching
    assert not by_name["input_fingerprint"].get("cachingOptions", {}).get("enableCache")


# ---- `pugc submit --wait` and `pugc status`: task states from the KFP API, figures from the pipeline root ----
def summary_with_gate(passed: bool) -> dict:
    from pugc.evaluation import evaluation_summary
    from pugc.config import EvaluationConfig, GateConfig
    from pugc.stages.evaluate import GateDecision

    figures = {"prompts": 10, "win": 6, "tie": 2, "lose": 2, "win_rate": 0.7, "lc_win_rate": 0.66,
               "trained_mean_tokens": 120.0, "baseline_mean_tokens": 100.0, "trained_mean_chars": 600.0,
               "baseline_mean_chars": 500.0, "trained_cut_fraction": 0.1, "baseline_cut_fraction": 0.0}
    decision = GateDecision(passed, "win_rate 0.700 >= 0.5" if passed else "win_rate 0.700 < 0.8")
    config = EvaluationConfig(gate=GateConfig(min_win_rate=0.5 if passed else 0.8))
    return {"input_lines": 60, "quarantined": 2, "input_records": 58, "preference_pairs": 12,
            "stages": {"ingest_ugc": {"in": 58, "out": 50, "dropped": {"duplicate": 8}}},
            "evaluation": evaluation_summary(figures, decision, config)}


def wait_cli(capsys, server, bucket, tmp_path, *extra):
    code = main(["submit", "--recipe", "tiny", "--target", "kfp", "--host", server.url, "--input",
                 f"gs://{bucket.name}/ugc/", "--pipeline-root", f"gs://{bucket.name}/root", "-o",
                 str(tmp_path / "p.yaml"), "--poll-seconds", "0.01", *extra])
    return code, capsys.readouterr()


def write_summary_on_end(server, bucket, summary: dict) -> None:
    """The run's tasks write its summary where the backend puts a task's outputs."""
    def on_end(run):
        uri = f"root/pugc/{run['run_id']}/run-summary/{uuid.uuid4()}/summary"
        bucket.blob(uri).upload_from_string(json.dumps(summary))
    server.state.on_end = on_end


@pytest.mark.parametrize("passed, code", [(True, 0), (False, 3)])
def test_submit_wait_follows_the_run_and_exits_as_the_gate_says(capsys, bucket, tmp_path, passed, code):
    from tests.cluster.kfp_api import KFPApiServer

    with KFPApiServer(multi_user=False) as server:
        write_summary_on_end(server, bucket, summary_with_gate(passed))
        exit_code, out = wait_cli(capsys, server, bucket, tmp_path, "--wait")
    assert exit_code == code, out.err
    (run_id,) = server.state.runs
    assert server.state.looks[run_id] == 2  # polled until the run ended, then stopped
    lines = out.out.splitlines()
    assert f"run {run_id}: RUNNING" in lines and f"run {run_id}: SUCCEEDED" in lines
    assert any(line.startswith("ingest_ugc") and line.split()[1:3] == ["58", "50"] for line in lines)
    assert lines[-1].startswith("evaluation on 10 prompts: win 6, tie 2, lose 2; win rate 0.7")
    assert lines[-1].endswith("gate passed (win_rate 0.700 >= 0.5)" if passed else "gate FAILED (win_rate 0.700 < 0.8)")


def test_submit_wait_exits_1_when_the_run_fails_and_names_the_failed_task(capsys, bucket, tmp_path):
    from tests.cluster.kfp_api import KFPApiServer

    with KFPApiServer(multi_user=False) as server:
        server.state.progress = [("RUNNING", {"evaluate": "RUNNING"}),
                                 ("FAILED", {"dpo_training": "SUCCEEDED", "evaluate": "FAILED"})]
        exit_code, out = wait_cli(capsys, server, bucket, tmp_path, "--wait")
    assert exit_code == 1
    assert "  evaluate: FAILED" in out.out.splitlines() and "dpo_training" not in out.out


def test_status_looks_once_without_waiting(capsys, bucket, tmp_path):
    from tests.cluster.kfp_api import KFPApiServer

    with KFPApiServer(multi_user=False) as server:
        write_summary_on_end(server, bucket, summary_with_gate(False))
        assert wait_cli(capsys, server, bucket, tmp_path)[0] == 0  # submitted, not followed
        (run_id,) = server.state.runs
        status = ["status", run_id, "--recipe", "tiny", "--host", server.url, "--pipeline-root",
                  f"gs://{bucket.name}/root"]
        assert main(status) == 4 and f"run {run_id}: RUNNING" in capsys.readouterr().out
        assert main(status) == 3  # it ended; the summary says the gate failed
        assert "gate FAILED" in capsys.readouterr().out



def test_status_reads_the_root_the_run_was_given_not_a_flag_or_the_launcher_default(capsys, bucket, tmp_path):
    from tests.cluster.kfp_api import KFPApiServer

    with KFPApiServer(multi_user=False) as server:
        write_summary_on_end(server, bucket, summary_with_gate(True))
        assert wait_cli(capsys, server, bucket, tmp_path)[0] == 0
        (run_id,) = server.state.runs
        status = ["status", run_id, "--host", server.url, "--pipeline-root", "gs://elsewhere/root"]
        main(status)
        assert main(status) == 0  # found under the run's own root, gs://<bucket>/root
        capsys.readouterr()
        server.state.runs[run_id]["runtime_config"].pop("pipeline_root")  # a run submitted without a root
        assert main(["status", run_id, "--host", server.url]) == 1
        assert "went to the kfp-launcher ConfigMap's default (minio://mlpipeline/v2/artifacts" in capsys.readouterr().out


def test_a_kfp_submission_without_a_gs_root_sends_nothing(tmp_path, capsys):
    from tests.cluster.kfp_api import KFPApiServer

    with KFPApiServer(multi_user=False) as server:
        code = main(["submit", "--recipe", "tiny", "--target", "kfp", "--host", server.url, "--input", "gs://b/ugc/",
                     "-o", str(tmp_path / "p.yaml")])
    assert code == 2 and "needs a gs:// pipeline root" in capsys.readouterr().err
    assert server.state.requests == []


def test_a_server_older_than_the_compile_target_is_refused_before_anything_is_created(paper_plan):
    from pugc.pipelines import submit
    from tests.cluster.kfp_api import KFPApiServer

    with KFPApiServer(multi_user=False) as server:
        server.state.tag_name = "2.15.0"
        with pytest.raises(ValueError, match=r"runs 2\.15\.0, but the pipeline is compiled for 2\.16.*"
                                             r'cluster\.kfp_version: "2\.15"'):
            submit.submit(kfp_plan(paper_plan, server.url, namespace="kubeflow"))
        assert not server.state.posted("/experiments") and not server.state.runs


def test_a_spec_compiled_for_the_servers_release_is_submitted(tmp_path):
    import dataclasses

    from pugc.config import load_recipe
    from pugc.pipelines import submit
    from tests.cluster.kfp_api import KFPApiServer

    plan = submit.plan(load_recipe("paper", ["cluster.kfp_version=2.15"]), "kfp", tmp_path / "p.yaml",
                       input_uri="gs://bucket/ugc/", pipeline_root=ROOT)
    with KFPApiServer(multi_user=False) as server:
        server.state.tag_name = "2.15.0"
        result = submit.submit(dataclasses.replace(plan, host=server.url, namespace="kubeflow"))
    executors = server.state.runs[result["run_id"]]["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"][
        "deploymentSpec"]["executors"]
    assert executors and not any("securityContext" in config for config in executors.values())


def test_a_long_wait_reads_the_token_again_at_every_poll(capsys, bucket, tmp_path, monkeypatch):
    """Tokens expire during a long run (IAP and ID tokens after an hour; in-cluster tokens are rotated):
    every poll of `--wait` makes its client with the token as it is then."""
    import os

    from tests.cluster.kfp_api import KFPApiServer

    monkeypatch.setenv("KFP_TOKEN", "first-token")
    with KFPApiServer(multi_user=False) as server:
        server.state.on_look = lambda run: os.environ.__setitem__("KFP_TOKEN", "rotated-token")
        write_summary_on_end(server, bucket, summary_with_gate(True))
        assert wait_cli(capsys, server, bucket, tmp_path, "--wait")[0] == 0
    looks = [r.headers.get("authorization") for r in server.state.requests if r.method == "GET" and "/runs/" in r.path]
    assert looks[0] == "Bearer first-token" and looks[-1] == "Bearer rotated-token"
