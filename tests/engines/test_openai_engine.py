"""The openai engine against a real OpenAI-compatible HTTP server on loopback, serving a tiny model."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pugc.config import EngineConfig
from pugc.engines.base import Prompt, SamplingParams
from pugc.engines.hf import HFEngine
from pugc.engines.hf_server import ChatServer
from pugc.engines.base import EngineError
from pugc.engines.openai_engine import OpenAIEngine, chat_body, read_verdict_probs

PROMPTS = [Prompt(messages=({"role": "user", "content": f"Question {i}: how do I fix a flat tyre?"},)) for i in range(5)]
DIGITS = ["1", "2", "3", "4", "5"]


@pytest.fixture(scope="module")
def hf():
    engine = HFEngine(EngineConfig(model="pugc-tiny/judge"))
    yield engine
    engine.close()


@pytest.fixture()
def server(hf):
    with ChatServer(hf) as running:
        yield running


def client(url, **options):
    return OpenAIEngine(EngineConfig(backend="openai", model="pugc-tiny/judge",
                                     options={"base_url": url, "max_concurrency": 4, **options}))


def test_generates_n_samples_per_prompt_in_order_and_reproducibly(server):
    engine = client(server.url)
    params = SamplingParams(max_tokens=8, temperature=1.0, top_p=0.95, n=3, seed=1)
    first = engine.generate(PROMPTS, params)
    assert [len(c) for c in first] == [3] * 5
    assert server.requests == 5  # one request per prompt carries all n samples
    again = engine.generate(PROMPTS, params)
    assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in first]
    assert engine.stats.generated_tokens > 0


def test_expected_verdict_matches_the_model_distribution(server, hf):
    """Over HTTP only token texts are known, so "4" and " 4" both count as verdict 4."""
    import math

    engine = client(server.url, verdict_top_logprobs=5000)
    remote = engine.next_token_probs(PROMPTS[:2], DIGITS)
    for prompt, probs in zip(PROMPTS[:2], remote):
        everything = hf.top_logprobs(prompt, 5000)
        expected = [sum(math.exp(lp) for token, lp in everything if token.strip() == d) for d in DIGITS]
        assert list(probs.values()) == pytest.approx(expected, rel=1e-4)
        assert probs["1"] >= hf.next_token_probs([prompt], DIGITS)[0]["1"]


def test_retries_a_503_then_succeeds(hf):
    with ChatServer(hf, faults=[503, 503]) as flaky:
        engine = client(flaky.url)
        out = engine.generate(PROMPTS[:1], SamplingParams(max_tokens=4, temperature=0.0))
        assert len(out[0]) == 1 and engine.retries == 2 and flaky.requests == 3


def test_a_request_that_keeps_failing_is_that_prompts_error_not_an_exception(hf):
    with ChatServer(hf, faults=[429] * 10) as busy:
        engine = client(busy.url, max_retries=2)
        (out,) = engine.generate(PROMPTS[:1], SamplingParams(max_tokens=4, n=2))
        assert [c.error for c in out] == [out[0].error] * 2 and "answered 429" in out[0].error
        assert out[0].text == "" and out[0].finish_reason == "error"
        assert busy.requests == 3 and engine.stats.extra["failed_requests"] == 1


def test_only_the_failing_prompt_errors_and_the_rest_of_the_batch_comes_back(hf):
    prompts = PROMPTS[:3] + [Prompt(messages=({"role": "user", "content": "BROKEN prompt"},))]
    with ChatServer(hf, fail_on={"BROKEN": 500}) as server:
        engine = client(server.url, max_retries=1)
        out = engine.generate(prompts, SamplingParams(max_tokens=4, temperature=0.0))
        probs = engine.next_token_probs(prompts, DIGITS)
    assert [c[0].error is None for c in out] == [True, True, True, False]
    assert "answered 500" in out[3][0].error and "injected fault 500" in out[3][0].error
    assert all(isinstance(p, dict) for p in probs[:3]) and isinstance(probs[3], EngineError)
    assert "answered 500" in probs[3].message


def test_client_errors_are_not_retried_and_the_servers_reason_is_kept(hf):
    with ChatServer(hf, faults=[400]) as server:
        engine = client(server.url)
        (out,) = engine.generate(PROMPTS[:1], SamplingParams(max_tokens=4))
        assert server.requests == 1 and "answered 400" in out[0].error and "injected fault 400" in out[0].error


def test_a_refused_sampling_setting_reaches_the_prompt_error_with_the_servers_words(server):
    body = chat_body("pugc-tiny/judge", PROMPTS[0], SamplingParams(max_tokens=4, temperature=0.0, n=3), None)
    (reply,) = client(server.url)._post_all([body])
    assert "answered 400" in str(reply) and "n must be 1 when using greedy sampling" in str(reply)


def test_unreachable_server_is_each_prompts_error():
    engine = client("http://127.0.0.1:9/v1", max_retries=1)
    out = engine.generate(PROMPTS[:2], SamplingParams(max_tokens=4))
    assert all("unreachable" in c[0].error for c in out) and engine.retries == 2


def test_unknown_options_fail_naming_them_before_launch_and_in_the_engine():
    from pugc.checks import UserError, check_models
    from pugc.config import load_recipe

    with pytest.raises(ValueError, match="unknown openai engine option.*backoff_s"):
        client("http://127.0.0.1:9/v1", backoff_s=0.5)
    recipe = load_recipe("tiny", ["engines.judge.backend=openai", "engines.judge.options={max_retry: 3}"])
    with pytest.raises(UserError, match=r"^engines\.judge\.options: unknown openai engine option\(s\) max_retry "):
        check_models(recipe.engines)


def test_key_comes_from_the_environment_not_the_recipe(monkeypatch, server):
    monkeypatch.setenv("PUGC_TEST_KEY", "sk-test-123")
    engine = client(server.url, api_key_env="PUGC_TEST_KEY")
    assert engine._key == "sk-test-123"
    assert "sk-test-123" not in repr(engine.config)


def test_request_body_uses_openai_names_and_vllm_extensions():
    prompt = Prompt(messages=({"role": "user", "content": "q"},), assistant_prefix="Good. [RESULT] ")
    body = chat_body("judge", prompt, SamplingParams(max_tokens=9, temperature=1.0, top_p=0.9, n=8,
                                                     repetition_penalty=1.03), seed=7)
    assert body["messages"][-1] == {"role": "assistant", "content": "Good. [RESULT] "}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert (body["n"], body["max_tokens"], body["seed"], body["repetition_penalty"]) == (8, 9, 7, 1.03)


def test_verdict_tokens_match_with_or_without_a_leading_space():
    reply = {"choices": [{"logprobs": {"content": [{"token": " 4", "logprob": -0.5, "top_logprobs": [
        {"token": " 4", "logprob": -0.5}, {"token": "4", "logprob": -2.0}, {"token": " 2", "logprob": -1.5},
        {"token": "x", "logprob": -0.1}]}]}}]}
    probs = read_verdict_probs(reply, DIGITS)
    assert probs["4"] == pytest.approx(2.718281828 ** -0.5 + 2.718281828 ** -2.0)
    assert probs["2"] == pytest.approx(2.718281828 ** -1.5) and probs["1"] == 0.0


def test_a_recipe_switches_the_judge_to_openai_without_code_changes(server, tmp_path):
    """The reward_scoring stage, run by the stage runner from recipe sections, judging over HTTP."""
    from pugc.config import load_recipe
    from pugc.io import read_records, write_jsonl
    from pugc.records import Response, ScoredResponse
    from pugc.stage_runner import run_stage

    recipe = load_recipe("tiny", ["engines.judge.backend=openai", f"engines.judge.options={{base_url: '{server.url}'}}"])
    responses = [Response(id=f"q-{k}", instruction_id="q", doc_id="d", response=f"Answer {k}.", sample_index=k)
                 for k in range(3)]
    write_jsonl(tmp_path / "responses.jsonl", responses)
    write_jsonl(tmp_path / "documents.jsonl", [{"id": "d", "text": "Patch the tube, then pump it up."}])
    write_jsonl(tmp_path / "questions.jsonl", [{"id": "q", "doc_id": "d", "instruction": "How do I fix a flat tyre?"}])
    sections = recipe.pipeline_sections()
    report = run_stage("reward_scoring", str(tmp_path / "responses.jsonl"), str(tmp_path / "scored.jsonl"),
                       str(tmp_path / "dropped.jsonl"), sections["reward_scoring"], sections["engines"],
                       tables={"documents": str(tmp_path / "documents.jsonl"),
                               "instructions": str(tmp_path / "questions.jsonl")})
    scored = read_records(tmp_path / "scored.jsonl", ScoredResponse)
    assert report["counts"]["in"] == 3 == len(scored) + sum(report["counts"]["dropped"].values())
    assert all(1.0 <= r.score <= 5.0 for r in scored) and report["model"] == "pugc-tiny/judge"
    assert server.requests >= 3


# ------------------------------------------------------------------------------- documents cut to a budget
LONG_EN = "Patch the inner tube, then pump the tyre back up to the pressure on its sidewall. " * 40
LONG_CJK = "自行车链条每个月上一次油，擦掉多余的油，以免沾灰。" * 60


@pytest.fixture(scope="module")
def tiny_judge():
    from pugc.engines.hf import HFEngine

    engine = HFEngine(EngineConfig(model="pugc-tiny/judge"))
    yield engine
    engine.close()


@pytest.mark.parametrize("text", [LONG_EN, LONG_CJK, "short"])
def test_documents_are_cut_by_the_servers_own_tokenizer(tiny_judge, text):
    from pugc.engines.hf_server import ChatServer

    with ChatServer(tiny_judge) as server:
        served = OpenAIEngine(EngineConfig(backend="openai", model="pugc-tiny/judge", options={"base_url": server.url}))
        assert served.truncate(text, 64) == tiny_judge.truncate(text, 64)


@pytest.mark.parametrize("text", [LONG_EN, LONG_CJK])
def test_without_a_tokenize_route_the_cut_is_conservative_for_latin_and_cjk_text(tiny_judge, text):
    from pugc.engines.hf_server import ChatServer

    with ChatServer(tiny_judge, tokenize=False) as server:
        served = OpenAIEngine(EngineConfig(backend="openai", model="pugc-tiny/judge", options={"base_url": server.url}))
        cut, was_cut = served.truncate(text, 64)
    assert was_cut and text.startswith(cut)
    assert len(tiny_judge.tokenizer(cut, add_special_tokens=False)["input_ids"]) <= 64  # never over the budget
    assert served._no_tokenizer  # asked once, then not again


@given(text=st.text(max_size=400), budget=st.integers(1, 200))
@settings(max_examples=200, deadline=None)
def test_the_conservative_cut_is_a_prefix_within_budget_by_bytes_and_ascii_pairs(text, budget):
    from pugc.engines.openai_engine import conservative_cut

    cut, was_cut = conservative_cut(text, budget)
    assert text.startswith(cut) and was_cut == (cut != text)
    ascii_chars = sum(c < "\x80" for c in cut)
    assert ascii_chars / 2 + len(cut.encode("utf-8", "surrogatepass")) - ascii_chars <= budget
