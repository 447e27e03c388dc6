"""The paper's tokenization end to end: every role on `pugc-tiny/mistral` (Mistral-7B v0.2's SentencePiece
tokenizer and its published chat template, which refuses a system message), the reward judge in Prometheus 2's
own format, and an evaluator served over HTTP whose server applies that template as `vllm serve` does (a 400
for a system message). No stage raises, DPO trains on the Mistral template, and every request is accounted."""
import json
import os
import subprocess
import sys

import pytest

from pugc.config import EngineConfig
from pugc.engines.hf import HFEngine
from pugc.engines.hf_server import ChatServer

pytestmark = pytest.mark.e2e


def test_the_method_runs_on_the_mistral_tokenizer_and_template(tmp_path, sample_slice):
    engine = HFEngine(EngineConfig(model="pugc-tiny/mistral"))
    sent: list[list[dict]] = []
    with ChatServer(engine) as server:
        original = server.complete
        server.complete = lambda body: sent.append(body["messages"]) or original(body)
        evaluator = f"{{backend: openai, model: served-mistral, options: {{base_url: '{server.url}', verdict_top_logprobs: 32000}}}}"
        done = subprocess.run(
            [sys.executable, "-m", "pugc.cli", "run", "--input", str(sample_slice), "--output", str(tmp_path),
             "--run-id", "mistral",
             "--set", "engines.policy.model=pugc-tiny/mistral", "--set", "engines.generator.model=pugc-tiny/mistral",
             "--set", "engines.judge={backend: hf, model: pugc-tiny/mistral, prompt_format: prometheus}",
             "--set", f"engines.evaluator={evaluator}"],
            capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    engine.close()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "mistral" / "summary.json").read_text())
    stages = summary["stages"]
    assert stages["preference_pairs"]["out"] > 0 and stages["dpo_training"]["metrics"]["steps"] > 0
    assert not any(stage.get("dropped", {}).get("engine_error") for stage in stages.values())
    # the generator's system messages were merged locally; the evaluator's server refused them, then got them merged
    assert "the chat template refuses a system message" in done.stdout
    with_system = [m for m in sent if any(x["role"] == "system" for x in m)]
    assert 0 < len(with_system) < len(sent)
    assert all(m[0]["role"] == "user" and m[0]["content"].startswith("You are a fair judge assistant")
               for m in sent if m not in with_system)
    evaluation = summary["evaluation"]
    assert evaluation["win"] + evaluation["tie"] + evaluation["lose"] > 0 and evaluation["self_judged"] is False
