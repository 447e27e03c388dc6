"""Who grades the evaluation: a judge that fails during evaluation fails the run (`pugc run` exits 1 with the
engine's error in its one line, never 0 or 3 as if the trained model had been judged), and an evaluator of its
own (engines.evaluator, here served over HTTP) grades every evaluation request and nothing else."""
import os
import subprocess
import sys

import pytest

from pugc.config import EngineConfig
from pugc.engines.hf import HFEngine
from pugc.engines.hf_server import ChatServer

pytestmark = pytest.mark.e2e
PAIRWISE = "###Response A:"  # only the evaluation's relative-grading prompts hold it (inserted text is defused)


def test_a_judge_that_fails_every_evaluation_request_fails_the_run(tmp_path, sample_slice):
    engine = HFEngine(EngineConfig(model="pugc-tiny/judge"))
    with ChatServer(engine, fail_on={PAIRWISE: 500}) as server:
        options = f"{{base_url: '{server.url}', max_retries: 1, verdict_top_logprobs: 5000}}"
        done = subprocess.run(
            [sys.executable, "-m", "pugc.cli", "run", "--input", str(sample_slice), "--output", str(tmp_path),
             "--run-id", "outage", "--set", "engines.judge.backend=openai", "--set", f"engines.judge.options={options}"],
            capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    engine.close()
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "task evaluate" in lines[0] and "StageEngineError" in lines[0]
    assert "records failed in the engine (100.0%" in lines[0] and "the judge: " in lines[0] and "500" in lines[0]
    assert (tmp_path / "outage" / "FAILED").is_file() and not (tmp_path / "outage" / "summary.json").exists()
    assert "reward_scoring" in done.stdout  # the same server judged the training responses: only evaluation failed


def test_an_evaluator_grades_every_evaluation_request_and_no_reward_scoring_one(screened):
    """The reward judge (local) scores the training responses; the evaluator (served: the tiny judge's weights under
    another name, so the run is not self-judged by model) only compares answers. Read from the shared screens run
    (tests/pipelines/conftest.py)."""
    summary, seen = screened.summary, screened.evaluator_requests
    evaluation = summary["evaluation"]
    assert seen and all(PAIRWISE in messages for messages in seen)  # evaluation requests, every one of them
    judged = evaluation["win"] + evaluation["tie"] + evaluation["lose"]
    assert len(seen) >= 2 * judged  # both orders of every judged prompt (expected mode: feedback, then verdict)
    assert evaluation["self_judged"] is False and "self-judged" not in evaluation["gate"]["reason"]
    assert evaluation["evaluator"]["model"] == "independent-evaluator"  # the served model, by its name
    assert evaluation["judge"]["model"] == summary["stages"]["reward_scoring"]["model"] == "pugc-tiny/judge"
