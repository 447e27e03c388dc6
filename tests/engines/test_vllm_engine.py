"""The vllm engine's own logic (arguments, output mapping, logprob reading), without vllm installed."""
import math
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
