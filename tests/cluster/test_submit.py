"""`pugc submit --dry-run` for both targets: what would be sent, offline, with no secret in it."""
import json

import pytest

from pugc.cli import main


def run_cli(capsys, *args):
    code = main(["submit", "--recipe", "paper", "--dry-run", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_kfp_dry_run_names_host_experiment_schedule_and_token_source_not_token(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KFP_TOKEN", "PLANTED-kfp-token-value")
    code, out, _ = run_cli(capsys, "--target", "kfp", "--host", "https://kfp.example.internal",
                           "--input", "gs://bucket/ugc/", "--experiment", "pugc-nightly", "--schedule", "0 3 * * 1",
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
    (["--target", "kfp"], "no input"),
])
def test_missing_pieces_fail_before_anything_is_sent(tmp_path, capsys, args, message):
    code, _, err = run_cli(capsys, *args, "-o", str(tmp_path / "x.yaml"))
    assert code == 2 and message in err


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
