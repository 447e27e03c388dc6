"""Errors a user can cause, through the real `pugc` command: one line naming the fix, a non-zero exit within
5 s, no traceback (unless --debug), and no run folder that looks finished."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pugc(*args, cwd=None, env=None, timeout=120):
    """Run `pugc ARGS` as a user would; returns (exit code, stdout, stderr, seconds)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pugc.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def assert_one_line_error(code, err, *expected):
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "table.csv").write_text("text,id\nhow do I fix a bike chain,1\n")
    (tmp_path / "table.jsonl").write_text("text\tid\nhow do I fix a bike chain\t1\n")
    (tmp_path / "body.jsonl").write_text('{"body": "Oil the chain every month.", "ref": 1}\n'
                                         '{"body": "Check the tyre pressure weekly.", "ref": 2}\n')
    return tmp_path


def test_missing_input_names_the_path_and_where_it_was_looked_for(files):
    code, _, err, _ = pugc("run", "--input", "nope.jsonl", cwd=files)
    assert_one_line_error(code, err, f"{files / 'nope.jsonl'}: no such file", f"current folder, {files}")


def test_empty_input(files):
    code, _, err, _ = pugc("run", "--input", files / "empty.jsonl")
    assert_one_line_error(code, err, "empty.jsonl: the file is empty")


def test_a_csv_is_read_directly_and_a_tsv_named_jsonl_says_how_to_read_it(files):
    code, out, _, _ = pugc("run", "--dry-run", "--input", files / "table.csv")
    assert code == 0 and "fields in the first" in out
    code, _, err, _ = pugc("run", "--input", files / "table.jsonl")
    assert_one_line_error(code, err, "it looks like TSV: name it .tsv or set input.format: tsv")


def test_missing_text_field_lists_the_fields_and_the_flag(files):
    code, _, err, _ = pugc("run", "--input", files / "body.jsonl")
    assert_one_line_error(code, err, "no record has the text field 'text'", "fields present: body, ref",
                          "--text-field FIELD")
    code, _, err, _ = pugc("run", "--input", files / "body.jsonl", "--text-field", "body", "--id-field", "key")
    assert_one_line_error(code, err, "no record has the id field 'key'", "--id-field FIELD")


def test_parquet_input_is_checked_for_its_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["Oil the chain."], "ref": [1]}), tmp_path / "posts.parquet")
    code, _, err, _ = pugc("run", "--input", tmp_path / "posts.parquet")
    assert_one_line_error(code, err, "no record has the text field 'text' (fields present: content, ref)")


def test_text_field_flag_passes_the_check_and_dry_run_prints_the_plan(files, tmp_path):
    code, out, err, _ = pugc("run", "--input", files / "body.jsonl", "--text-field", "body", "--id-field", "ref",
                             "--dry-run", "--output", tmp_path / "runs")
    assert code == 0, err
    assert "text_field: body" in out and f"uri: {files / 'body.jsonl'}" in out  # the resolved recipe
    assert "body.jsonl, 0.00 MB; fields in the first 2 records: body, ref" in out  # the input summary
    assert "# task plan: 14 stages" in out and "2/14 ugc_filter (1 shard(s), then merged): ugc-filter, merge-shards" in out
    assert "3/14 safety_screen (1 shard(s), then merged): safety-screen, merge-shards-2" in out
    # the export waits on run_summary, whose model card it writes into the export
    assert "12/14 evaluation_gate: evaluation-gate" in out and "13/14 run_summary: run-summary" in out
    assert "14/14 export_model: export-model" in out
    assert not (tmp_path / "runs").exists()  # nothing started


def test_models_that_do_not_resolve(files, tmp_path):
    body = ["--input", files / "body.jsonl", "--text-field", "body"]
    code, _, err, _ = pugc("run", *body, "--set", "engines.policy.model=/no/such/model")
    assert_one_line_error(code, err, "engines.policy.model: local model folder /no/such/model does not exist")
    code, _, err, _ = pugc("run", *body, "--set", "engines.judge.model=nobody/no-such-model",
                                 env={"HF_HOME": str(tmp_path / "hf")})
    assert_one_line_error(code, err, "engines.judge.model: nobody/no-such-model is not in the local Hugging "
                          "Face cache and HF_HUB_OFFLINE=1")


def test_reused_run_id(files, tmp_path):
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    code, _, err, _ = pugc("run", "--input", files / "body.jsonl", "--text-field", "body",
                                 "--output", tmp_path / "runs", "--run-id", "mine")
    assert_one_line_error(code, err, "runs/mine already exists", "another --run-id")


def test_a_recipe_path_that_does_not_exist_never_falls_back_to_a_bundled_recipe():
    code, out, err, _ = pugc("recipe", "--recipe", "/nonexistent/dir/paper.yaml")
    assert_one_line_error(code, err, "recipe file '/nonexistent/dir/paper.yaml' not found")
    assert out == ""


def test_input_paths_resolve_against_the_cwd_and_the_recipes_folder(files, tmp_path):
    """--input from where the command runs; a recipe's own input.uri from the recipe's folder."""
    recipes = tmp_path / "project" / "recipes"
    recipes.mkdir(parents=True)
    (tmp_path / "project" / "data.jsonl").write_text('{"text": "Oil the chain every month."}\n')
    (recipes / "mine.yaml").write_text((ROOT / "recipes" / "tiny.yaml").read_text().replace(
        "uri: ../data/sample_ugc.jsonl", "uri: ../data.jsonl"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, err, _ = pugc("run", "--recipe", recipes / "mine.yaml", "--dry-run", cwd=elsewhere)
    assert code == 0, err
    assert f"uri: {tmp_path / 'project' / 'data.jsonl'}" in out
    code, _, err, _ = pugc("run", "--recipe", recipes / "mine.yaml", "--input", "data.jsonl", cwd=elsewhere)
    assert_one_line_error(code, err, f"{elsewhere / 'data.jsonl'}: no such file")


def test_submit_to_an_unreachable_host(tmp_path):
    code, _, err, _ = pugc("submit", "--recipe", "paper", "--input", "gs://bucket/ugc/", "--host",
                                 "http://127.0.0.1:9", "-o", tmp_path / "p.yaml",
                                 env={"PUGC_IMAGE_REGISTRY": "registry.example/pugc", "KFP_TOKEN": ""})
    assert_one_line_error(code, err, "cannot reach Kubeflow Pipelines at http://127.0.0.1:9", "--host")


def test_submit_to_vertex_without_credentials(tmp_path):
    code, _, err, _ = pugc("submit", "--recipe", "paper", "--target", "vertex", "--project", "p",
                                 "--pipeline-root", "gs://bucket/root", "--input", "gs://bucket/ugc/",
                                 "-o", tmp_path / "v.yaml", env={"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-key.json")})
    assert_one_line_error(code, err, "no Google Cloud credentials", "no-key.json was not found",
                          "gcloud auth application-default login")


def test_submit_of_a_local_input(tmp_path, files):
    code, _, err, _ = pugc("submit", "--recipe", "paper", "--input", files / "body.jsonl", "-o", tmp_path / "p.yaml")
    assert_one_line_error(code, err, "a cluster reads gs:// input", "gcloud storage cp")


def test_compiling_without_a_registry_warns(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PUGC_IMAGE_REGISTRY"}
    done = subprocess.run([sys.executable, "-m", "pugc.cli", "compile", "--recipe", "paper", "-o", tmp_path / "p.yaml"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0
    from pugc.components.images import source_commit

    tag = source_commit() or "0.1.0"  # images are tagged by the commit they are built from
    assert f"warning: PUGC_IMAGE_REGISTRY is not set, so tasks use pugc/base:{tag}" in done.stderr


def test_debug_shows_the_traceback(files):
    code, _, err, _ = pugc("run", "--input", "nope.jsonl", "--debug", cwd=files)
    assert code != 0 and "Traceback (most recent call last)" in err and "UserError" in err


def test_a_failing_task_marks_the_run_failed(tmp_path):
    """An input that passes the quick check but fails ingest's malformed-line limit: the task fails, the
    console gets one line with the cause and the log, and the folder says FAILED (no summary.json)."""
    bad = tmp_path / "mostly_bad.jsonl"
    bad.write_text('{"text": "Oil the chain every month."}\n' + "not json\n" * 3)
    code, out, err, _ = pugc("run", "--input", bad, "--output", tmp_path / "runs", "--run-id", "bad")
    run_dir = tmp_path / "runs" / "bad"
    assert code == 1 and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1
    assert "task ingest-ugc failed: InputError" in err and "3 of 4 lines malformed" in err and "marked FAILED" in err
    assert "3 of 4 lines malformed" in (run_dir / "FAILED").read_text()
    assert not (run_dir / "summary.json").exists()
    code, out, _, _ = pugc("runs", "--output", tmp_path / "runs")
    assert code == 0 and re.search(r"bad +failed .*task ingest-ugc failed", out)


def test_ctrl_c_prints_one_line_and_marks_the_run_failed(tmp_path, sample_slice):
    """Ctrl-C reaches the whole foreground process group (the CLI and the running task), as here."""
    console, errors = tmp_path / "console.txt", tmp_path / "errors.txt"
    with open(console, "w") as stdout, open(errors, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "pugc.cli", "run", "--input", str(sample_slice), "--output",
                                    str(tmp_path / "runs"), "--run-id", "stopped"], stdout=stdout, stderr=stderr,
                                   text=True, start_new_session=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                                   # as a terminal delivers it, even where this test runs as a background job
                                   # (a non-interactive shell starts those with SIGINT ignored)
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    run_dir = tmp_path / "runs" / "stopped"
    deadline = time.monotonic() + 180
    # The console's first stage line: the run is under way, and the later stages take far longer than this wait.
    while "ingest_ugc" not in console.read_text() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, f"the run ended before Ctrl-C could be sent: {console.read_text()[-500:]}"
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)  # a run that ignored Ctrl-C would hang here and fail the test
    out, err = console.read_text(), errors.read_text()
    assert process.returncode == 130
    assert "Traceback" not in err + out
    assert err.strip().splitlines() == [f"pugc: interrupted: {tmp_path / 'runs' / 'stopped'} is marked FAILED"]
    assert (run_dir / "FAILED").read_text().strip() == "interrupted (Ctrl-C)"


def test_a_stage_that_joins_a_table_names_the_missing_table_or_id(tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"id": "q1", "doc_id": "d1", "instruction": "Which glue?"}\n')
    (tmp_path / "docs.jsonl").write_text('{"id": "d2", "text": "Epoxy."}\n')
    common = ["stage", "relevance_filter", "--input", questions, "--output", tmp_path / "out.jsonl"]
    code, _, err, _ = pugc(*common)
    assert_one_line_error(code, err, "relevance_filter joins the documents table", "--table documents=PATH")
    code, _, err, _ = pugc(*common, "--table", f"documents={tmp_path / 'docs.jsonl'}")
    assert code != 0 and "Traceback" not in err  # found while reading: after the stage's progress line
    assert "docs.jsonl: the documents table has no row for doc_id 'd1'" in err.strip().splitlines()[-1]
    code, _, err, _ = pugc(*common, "--table", "docs.jsonl")
    assert_one_line_error(code, err, "--table docs.jsonl", "NAME=PATH")


def test_a_served_policy_must_name_weights_training_can_load(tmp_path):
    code, _, err, _ = pugc("run", "--dry-run", "--set", "engines.policy.backend=openai",
                           "--set", "engines.policy.model=my-served-policy")
    assert_one_line_error(code, err, "engines.policy.model", "dpo_training trains it from its weights")


def test_a_baseline_that_does_not_resolve_fails_before_launch(tmp_path):
    code, _, err, _ = pugc("run", "--dry-run", "--set", f"evaluation.baseline={tmp_path / 'no-such-model'}")
    assert_one_line_error(code, err, "evaluation.baseline", "does not exist")
