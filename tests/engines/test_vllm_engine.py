"""The vllm engine's own logic (arguments, output mapping, logprob reading), without vllm installed."""
import math
import sys
from types import SimpleNamespace as NS

import pytest

from pugc.config import EngineConfig, load_recipe
from pugc.engines.base import Prompt, SamplingParams, prompt_seed
from pugc.engines.vllm_engine import (INSTALL_HINT, llm_kwargs, read_verdict_probs, sampling_kwargs, to_completions,
                                      verdict_kwargs)


def test_llm_kwargs_turn_prefix_caching_on_and_pass_options_through():
    config = EngineConfig(backend="vllm", model="prometheus-eval/prometheus-7b-v2.0", dtype="bfloat16",
                          max_model_len=4096, options={"tensor_parallel_size": 2, "load_format": "dummy"})
    kwargs = llm_kwargs(config, seed=3)
    assert kwargs["enable_prefix_caching"] is True
    assert (kwargs["tensor_parallel_size"], kwargs["load_format"], kwargs["dtype"]) == (2, "dummy", "bfloat16")
    assert (kwargs["max_model_len"], kwargs["seed"], kwargs["model"]) == (4096, 3, "prometheus-eval/prometheus-7b-v2.0")
    assert 0 < kwargs["gpu_memory_utilization"] <= 1


def test_sampling_kwargs_keep_vllm_names_and_seed_per_prompt():
    params = SamplingParams(max_tokens=1024, temperature=1.0, top_p=0.9, n=8, seed=0, repetition_penalty=1.03)
    prompt = Prompt(messages=({"role": "user", "content": "q"},))
    kwargs = sampling_kwargs(params, prompt_seed(0, prompt))
    assert kwargs == {"n": 8, "max_tokens": 1024, "temperature": 1.0, "top_p": 0.9, "repetition_penalty": 1.03,
                      "seed": prompt_seed(0, prompt)}
    assert "seed" not in sampling_kwargs(SamplingParams(temperature=0.0), 5)  # greedy needs no seed
    assert verdict_kwargs(20) == {"n": 1, "max_tokens": 1, "temperature": 0.0, "logprobs": 20}


def test_request_outputs_map_to_completions():
    output = NS(outputs=[NS(text="Good. [RESULT] 4", token_ids=[1, 2, 3], finish_reason="stop"),
                         NS(text="cut", token_ids=[5] * 9, finish_reason="length")])
    completions = to_completions(output)
    assert [(c.text, c.num_tokens, c.finish_reason) for c in completions] == [
        ("Good. [RESULT] 4", 3, "stop"), ("cut", 9, "length")]


def test_verdict_probabilities_come_from_first_position_logprobs():
    logprobs = [{101: NS(logprob=math.log(0.6)), 104: NS(logprob=math.log(0.3)), 7: NS(logprob=math.log(0.05))}]
    output = NS(outputs=[NS(text="1", token_ids=[101], finish_reason="length", logprobs=logprobs)])
    probs = read_verdict_probs(output, [101, 102, 103, 104, 105], ["1", "2", "3", "4", "5"])
    assert probs == pytest.approx({"1": 0.6, "2": 0.0, "3": 0.0, "4": 0.3, "5": 0.0})


def test_missing_vllm_names_the_image_to_use():
    from pugc.engines import make_engine

    pytest.importorskip("torch")  # the CPU environment: vllm is deliberately absent
    with pytest.raises(ImportError) as info:
        make_engine(EngineConfig(backend="vllm", model="pugc-tiny/judge"))
    assert str(info.value) == INSTALL_HINT and "images/vllm" in INSTALL_HINT


def test_paper_recipe_runs_every_role_on_vllm():
    engines = load_recipe("paper").engines
    assert {engines.policy.backend, engines.generator.backend, engines.judge.backend} == {"vllm"}


class FakeVLLM:
    """Stands in for the `vllm` module (absent from the CPU environment) to test VLLMEngine's wiring:
    LLM(...) keeps its arguments, generate() answers from a script, tokenizer is the tiny judge's."""

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class LLM:
        instances = []

        def __init__(self, **kwargs):
            from transformers import AutoTokenizer

            from pugc.models import resolve_model

            self.kwargs, self.calls = kwargs, []
            self.tokenizer = AutoTokenizer.from_pretrained(resolve_model("pugc-tiny/judge"))
            FakeVLLM.LLM.instances.append(self)

        def get_tokenizer(self):
            return self.tokenizer

        def generate(self, requests, params, use_tqdm=True):
            self.calls.append((requests, params))
            outputs = []
            for p in params:
                if p.kwargs.get("logprobs"):
                    four = self.tokenizer(" 4", add_special_tokens=False)["input_ids"][0]
                    two = self.tokenizer(" 2", add_special_tokens=False)["input_ids"][0]
                    logprobs = [{four: NS(logprob=math.log(0.75)), two: NS(logprob=math.log(0.25))}]
                    outputs.append(NS(outputs=[NS(text="4", token_ids=[four], finish_reason="length", logprobs=logprobs)]))
                else:
                    outputs.append(NS(outputs=[NS(text=f"sample {i}", token_ids=[1, 2], finish_reason="stop")
                                               for i in range(p.kwargs["n"])]))
            return outputs


def test_vllm_engine_sends_one_seeded_request_per_prompt_and_reads_verdicts(monkeypatch):
    from pugc.engines.vllm_engine import VLLMEngine

    monkeypatch.setitem(sys.modules, "vllm", FakeVLLM)
    engine = VLLMEngine(EngineConfig(backend="vllm", model="pugc-tiny/judge", options={"tensor_parallel_size": 2}))
    llm = FakeVLLM.LLM.instances[-1]
    assert llm.kwargs["tensor_parallel_size"] == 2 and llm.kwargs["enable_prefix_caching"] is True
    prompts = [Prompt(messages=({"role": "user", "content": f"q{i} <|end|>"},)) for i in range(3)]
    out = engine.generate(prompts, SamplingParams(max_tokens=5, temperature=1.0, n=4, seed=9))
    assert [len(c) for c in out] == [4, 4, 4] and engine.stats.generated_tokens == 24
    requests, params = llm.calls[-1]
    assert len({p.kwargs["seed"] for p in params}) == 3  # each prompt its own seed
    assert all(p.kwargs["n"] == 4 for p in params)
    eos_id = llm.tokenizer.eos_token_id
    assert all(r["prompt_token_ids"].count(eos_id) == 1 for r in requests)  # only the template's own end-of-turn
    probs = engine.next_token_probs([Prompt(messages=({"role": "user", "content": "x"},), assistant_prefix="ok [RESULT] ")],
                                    ["1", "2", "3", "4", "5"])
    assert probs[0] == pytest.approx({"1": 0.0, "2": 0.25, "3": 0.0, "4": 0.75, "5": 0.0})
