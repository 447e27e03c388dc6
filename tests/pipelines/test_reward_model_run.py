"""The Skywork comparison's shape end to end: a scalar reward model (`pugc-tiny/reward`, backend reward_model)
scores every training response in place of the Prometheus judge, an evaluator grades the evaluation, and the
summary names both."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_a_run_with_a_scalar_reward_model_as_the_reward_judge(tmp_path, sample_slice):
    done = subprocess.run(
        [sys.executable, "-m", "pugc.cli", "run", "--input", str(sample_slice), "--output", str(tmp_path),
         "--run-id", "rm", "--set", "engines.judge={backend: reward_model, model: pugc-tiny/reward}",
         "--set", "engines.evaluator={backend: hf, model: pugc-tiny/judge}"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "rm" / "summary.json").read_text())
    scoring = summary["stages"]["reward_scoring"]
    assert scoring["model"] == "pugc-tiny/reward" and scoring["in"] == scoring["out"] > 0
    assert scoring["metrics"]["judge_generated_tokens"] == 0 and scoring["metrics"]["score_stdev"] > 0
    assert summary["stages"]["preference_pairs"]["out"] > 0
    assert "takes no reference answer" in done.stdout  # the recipe's reference: true is ignored, and it says so
    evaluation = summary["evaluation"]
    assert evaluation["judge"]["model"] == "pugc-tiny/reward" and evaluation["evaluator"]["model"] == "pugc-tiny/judge"
    pairs = [json.loads(line) for line in (tmp_path / "rm" / "preference_pairs.jsonl").read_text().splitlines()]
    rewards = [p[side] for p in pairs for side in ("score_chosen", "score_rejected")]
    assert any(not 1 <= r <= 5 for r in rewards)  # the model's own scale, not the 1-5 rubric
