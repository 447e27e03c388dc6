"""Greedy requests with n > 1: every engine asks its backend for one decode and copies it (vLLM and its OpenAI
server refuse greedy with n > 1), counts its tokens once, and the stage layer never re-draws greedy verdicts."""
import re

import pytest

from pugc.config import EngineConfig
from pugc.engines.base import Completion, EngineStats, Prompt, SamplingParams, generate_n, once_if_greedy
from pugc.engines.hf import HFEngine
from pugc.engines.hf_server import ChatServer
from pugc.engines.openai_engine import OpenAIEngine, RequestFailed, chat_body, error_detail
from pugc.stages.llm import judge
from pugc.stages.verdicts import RESULT_1_TO_5

PROMPTS = [Prompt(messages=({"role": "user", "content": f"Question {i}: is the tent waterproof?"},)) for i in range(2)]
GREEDY_3 = SamplingParams(max_tokens=6, temperature=0.0, n=3)


@pytest.fixture(scope="module")
def hf():
    engine = HFEngine(EngineConfig(model="pugc-tiny/judge"))
    yield engine
    engine.close()


def test_only_greedy_requests_with_n_over_one_are_narrowed():
    assert once_if_greedy(GREEDY_3).n == 1
    assert once_if_greedy(SamplingParams(temperature=0.7, n=3)).n == 3
    assert once_if_greedy(SamplingParams(temperature=0.0, n=1)) == SamplingParams(temperature=0.0, n=1)


def test_generate_n_copies_one_decode_and_counts_it_once():
    asked = []

    def backend(params):
        asked.append(params.n)
        return [[Completion(f"answer {i}", 4, "stop")] for i in range(2)]

    stats = EngineStats()
    out = generate_n(backend, GREEDY_3, stats)
    assert asked == [1]
    assert [[c.text for c in r] for r in out] == [["answer 0"] * 3, ["answer 1"] * 3]
    assert out[0][0] is not out[0][1]  # copies, so a stage editing one sample leaves the others alone
    assert (stats.generated_tokens, stats.prompts) == (8, 2)


def test_hf_engine_counts_a_copied_greedy_decode_once(hf):
    before = hf.stats.generated_tokens
    (one,), = hf.generate(PROMPTS[:1], SamplingParams(max_tokens=6, temperature=0.0))
    after_one = hf.stats.generated_tokens
    three = hf.generate(PROMPTS[:1], GREEDY_3)[0]
    assert [c.text for c in three] == [one.text] * 3
    assert hf.stats.generated_tokens - after_one == after_one - before == one.num_tokens


def test_project_server_refuses_greedy_n_like_vllm_and_says_why(hf):
    """The test server keeps vLLM's contract, so a client that sends greedy n > 1 fails here, not on a cluster."""
    with ChatServer(hf) as server:
        (reply,) = client(server.url)._post_all([chat_body("pugc-tiny/judge", PROMPTS[0], GREEDY_3, seed=None)])
    assert isinstance(reply, RequestFailed)
    assert re.search("answered 400.*n must be 1 when using greedy sampling", str(reply))


def test_openai_engine_sends_greedy_as_one_sample_and_copies_it(hf):
    with ChatServer(hf) as server:
        engine = client(server.url)
        out = engine.generate(PROMPTS, GREEDY_3)
        assert server.requests == 2  # one request per prompt, each accepted with n = 1
    assert [len({c.text for c in r}) for r in out] == [1, 1] and [len(r) for r in out] == [3, 3]
    assert engine.stats.generated_tokens == sum(r[0].num_tokens for r in out)


def test_client_errors_carry_the_servers_reason(hf):
    with ChatServer(hf, faults=[422]) as server:
        ((completion,),) = client(server.url).generate(PROMPTS[:1], SamplingParams(max_tokens=4))
    assert completion.error.endswith("answered 422 for pugc-tiny/judge: injected fault 422")
    assert error_detail(b'{"object": "error", "message": "bad n"}') == "bad n"  # vLLM's older error shape
    assert error_detail(b"<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"


def test_greedy_verdicts_are_not_resampled_but_sampled_ones_are(hf):
    """The random tiny judge never writes "[RESULT] n": every verdict is unparsable, so re-sampling would run."""
    for temperature, calls in ((0.0, 1), (1.0, 3)):
        before = hf.stats.prompts
        verdicts = judge(hf, PROMPTS, RESULT_1_TO_5, "sampled", SamplingParams(max_tokens=6, temperature=temperature, n=2),
                         max_resamples=2)
        assert all(v.score is None for v in verdicts)
        assert hf.stats.prompts - before == calls * len(PROMPTS)


def client(url, **options):
    return OpenAIEngine(EngineConfig(backend="openai", model="pugc-tiny/judge",
                                     options={"base_url": url, "max_concurrency": 2, **options}))
