"""The openai engine against vLLM's own OpenAI-compatible server (`vllm serve`, CPU build), one per session.

The engine speaks /v1/chat/completions, whose logprobs are listed per token; /v1/completions keys them by
decoded text, so tokens that decode alike would merge.
"""
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, replace

import pytest

from pugc.config import EngineConfig
from pugc.engines.base import Prompt, SamplingParams
from pugc.engines.openai_engine import OpenAIEngine, RequestFailed, chat_body

from tests.vllm.conftest import MAX_MODEL_LEN, MODEL, VOCAB, engine_config

START_TIMEOUT_S = 300
DIGITS = ["1", "2", "3", "4", "5"]
PROMPTS = [Prompt(messages=({"role": "user", "content": f"Question {i}: how do I fix a flat tyre?"},)) for i in range(3)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(process: subprocess.Popen, url: str, log_path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"vllm serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"vllm serve not healthy after {START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """`vllm serve` on loopback with the tiny model; yields its /v1 URL. Start-up takes about a minute on CPU."""
    from pugc.models import resolve_model

    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", resolve_model(MODEL),
               "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
               "--max-model-len", str(MAX_MODEL_LEN), "--max-logprobs", str(VOCAB), "--enforce-eager",
               "--no-enable-chunked-prefill", "--seed", "0"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    started = time.monotonic()
    try:
        wait_until_healthy(process, f"http://127.0.0.1:{port}/health", log_path)
        print(f"\nvllm serve healthy after {time.monotonic() - started:.0f}s", file=sys.stderr)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def client(url, **options) -> OpenAIEngine:
    return OpenAIEngine(EngineConfig(backend="openai", model=MODEL,
                                     options={"base_url": url, "max_concurrency": 4, **options}))


def texts(results):
    return [[c.text for c in completions] for completions in results]


def test_seeded_samples_over_http_equal_the_offline_engines(vllm_server, vllm_engine):
    """Same prompts, same per-prompt seeds: the server and the in-process engine draw the same samples."""
    params = SamplingParams(max_tokens=8, temperature=1.0, top_p=0.95, n=3, seed=2)
    remote = client(vllm_server).generate(PROMPTS, params)
    assert [len(r) for r in remote] == [3, 3, 3] and all(len(set(t)) > 1 for t in texts(remote))
    assert texts(remote) == texts(vllm_engine.generate(PROMPTS, params))


def test_greedy_with_n_is_sent_once_and_copied(vllm_server):
    engine = client(vllm_server)
    out = engine.generate(PROMPTS[:2], SamplingParams(max_tokens=6, temperature=0.0, n=3))
    assert [len(r) for r in out] == [3, 3] and all(len(set(t)) == 1 for t in texts(out))
    assert engine.stats.generated_tokens == sum(r[0].num_tokens for r in out)


def test_a_refused_request_fails_with_the_servers_reason(vllm_server):
    """What the engine no longer sends, vLLM refuses with 400 and a reason; the error carries the reason."""
    body = chat_body(MODEL, PROMPTS[0], SamplingParams(max_tokens=4, temperature=0.0, n=2), seed=None)
    (reply,) = client(vllm_server)._post_all([body])
    assert isinstance(reply, RequestFailed)
    assert re.search("answered 400 .*n must be 1 when using greedy sampling", str(reply))


def test_expected_verdict_matches_the_model_distribution(vllm_server, hf_engine):
    """Over HTTP only token texts are known, so every token reading as the digit (" 4", "4") counts."""
    prompts = [Prompt(messages=p.messages, assistant_prefix="Fine. [RESULT] ") for p in PROMPTS[:2]]
    remote = client(vllm_server, verdict_top_logprobs=VOCAB).next_token_probs(prompts, DIGITS)
    for prompt, probs in zip(prompts, remote):
        everything = hf_engine.top_logprobs(prompt, VOCAB)
        expected = [sum(math.exp(lp) for token, lp in everything if token.strip() == d) for d in DIGITS]
        assert list(probs.values()) == pytest.approx(expected, abs=1e-5)


def test_a_prometheus_format_goes_to_the_completions_endpoint_as_the_local_engine_renders_it(vllm_server):
    """prompt_format prometheus: the engine renders "[INST] {system}\\n{user} [/INST]" and sends the text to vLLM's
    /v1/completions, which tokenises it as the local engine does: the same greedy answers and verdict odds."""
    from pugc.engines.hf import HFEngine

    judge = [Prompt(messages=({"role": "system", "content": "You are a fair judge."}, *p.messages)) for p in PROMPTS[:2]]
    remote = OpenAIEngine(EngineConfig(backend="openai", model=MODEL, prompt_format="prometheus",
                                       options={"base_url": vllm_server, "verdict_top_logprobs": VOCAB}))
    local = HFEngine(replace(engine_config("hf"), prompt_format="prometheus"))
    try:
        params = SamplingParams(max_tokens=6, temperature=0.0)
        assert texts(remote.generate(judge, params)) == texts(local.generate(judge, params))
        verdicts = [replace(p, assistant_prefix="Fine. [RESULT] ") for p in judge]
        for prompt, probs in zip(verdicts, remote.next_token_probs(verdicts, DIGITS)):
            everything = local.top_logprobs(prompt, VOCAB)
            expected = [sum(math.exp(lp) for token, lp in everything if token.strip() == d) for d in DIGITS]
            assert list(probs.values()) == pytest.approx(expected, abs=1e-5)
    finally:
        local.close()


def test_reward_scoring_stage_judges_over_http(vllm_server, tmp_path):
    """The stage runner as a KFP component calls it, the judge being the vLLM server (the shared-judge setup)."""
    from tests.vllm.test_vllm_stage import score_with

    # the random tiny judge ranks digits low: read the whole vocabulary, as the in-process tests do
    options = {"base_url": vllm_server, "verdict_top_logprobs": VOCAB}
    engines = {"judge": {"backend": "openai", "model": MODEL, "options": options}}
    report, scored = score_with(tmp_path, {"mode": "expected", "feedback_max_tokens": 12}, engines)
    assert report["counts"] == {"in": 6, "out": 6, "dropped": {}} and report["model"] == MODEL
    assert report["engine_stats"]["scored_prompts"] == 6
    assert all(1.0 <= r.score <= 5.0 for r in scored)


def test_a_prompt_vllm_refuses_is_that_records_engine_error_and_the_rest_are_scored(vllm_server, tmp_path):
    """A response too long for the judge's context: vLLM answers 400 with its reason for that prompt alone."""
    from pugc.io import read_records, write_jsonl
    from pugc.records import Dropped, ScoredResponse
    from pugc.stage_runner import run_stage
    from tests.vllm.test_vllm_stage import DOCUMENTS, QUESTIONS, RESPONSES

    too_long = replace(RESPONSES[1], response="tyre " * (MAX_MODEL_LEN * 2))
    write_jsonl(tmp_path / "responses.jsonl", [RESPONSES[0], too_long, *RESPONSES[2:]])
    write_jsonl(tmp_path / "documents.jsonl", DOCUMENTS)
    write_jsonl(tmp_path / "questions.jsonl", QUESTIONS)
    tables = {"documents": str(tmp_path / "documents.jsonl"), "instructions": str(tmp_path / "questions.jsonl")}
    engines = {"judge": {"backend": "openai", "model": MODEL,
                         "options": {"base_url": vllm_server, "verdict_top_logprobs": VOCAB, "max_retries": 1}}}
    section = {"mode": "expected", "feedback_max_tokens": 4, "max_engine_error_fraction": 0.5}
    report = run_stage("reward_scoring", str(tmp_path / "responses.jsonl"), str(tmp_path / "scored.jsonl"),
                       str(tmp_path / "dropped.jsonl"), section, engines, tables=tables)
    assert report["counts"] == {"in": len(RESPONSES), "out": len(RESPONSES) - 1, "dropped": {"engine_error": 1}}
    (dropped,) = read_records(tmp_path / "dropped.jsonl", Dropped)
    assert dropped.record_id == too_long.id and "answered 400" in dropped.detail
    assert f"maximum context length is {MAX_MODEL_LEN} tokens" in dropped.detail  # vLLM's own reason
    assert too_long.id not in {r.id for r in read_records(tmp_path / "scored.jsonl", ScoredResponse)}


def test_documents_are_cut_by_the_servers_own_tokenizer(vllm_server):
    """The openai engine cuts a long document with vLLM's /tokenize and /detokenize: exactly the model's tokens."""
    from transformers import AutoTokenizer

    from pugc.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MODEL))
    text = "Patch the inner tube, then pump the tyre back up to the pressure on its sidewall. " * 20
    cut, was_cut = client(vllm_server).truncate(text, 32)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert was_cut and cut == tokenizer.decode(ids[:32], skip_special_tokens=True)
    assert client(vllm_server).truncate("short", 32) == ("short", False)
