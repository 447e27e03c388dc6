"""Tests that run the vllm engine on real vLLM (its CPU build). They run in the vLLM environment
(`make test-vllm`: PYTHONPATH=src <vllm env>/bin/python -m pytest tests/vllm); in the main environment, where
vllm is deliberately absent, this folder is not collected.

vLLM on CPU, tuned for a test suite: no engine subprocess and no graph capture (start-up ~3 s instead of ~40 s),
a small KV cache (else ~10 GiB is reserved), no chunked prefill (a seeded batch spilling over one engine step
crashes with "CPU Generator does not use offset").
"""
import importlib.util
import os
from pathlib import Path

import pytest

if importlib.util.find_spec("vllm") is None:
    collect_ignore_glob = ["test_*.py"]  # the main environment: `make test` runs these in the vLLM one

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB

MODEL = "pugc-tiny/judge-hd32"  # vLLM's CPU attention needs heads of >= 32 dims; the other tiny models have 16
MAX_MODEL_LEN = 2048


def vocab_size() -> int:
    import json

    from pugc.models import resolve_model

    return json.loads((Path(resolve_model(MODEL)) / "config.json").read_text())["vocab_size"]


VOCAB = vocab_size()
# Verdicts read from the whole (tiny) vocabulary, so every candidate's probability can be compared with
# transformers'; a real judge's verdict tokens sit in the default top 20.
CPU_OPTIONS = {"enforce_eager": True, "enable_chunked_prefill": False, "max_logprobs": VOCAB,
               "verdict_top_logprobs": VOCAB}


def engine_config(backend: str = "vllm", **options):
    from pugc.config import EngineConfig

    return EngineConfig(backend=backend, model=MODEL, dtype="float32", max_model_len=MAX_MODEL_LEN,
                        options={**CPU_OPTIONS, **options} if backend == "vllm" else options)


@pytest.fixture(scope="session", autouse=True)
def source_is_this_clone():
    """The vLLM environment is shared by clones: it must run this clone's pugc (PYTHONPATH), not another's."""
    import pugc

    here = Path(__file__).resolve().parents[2] / "src" / "pugc"
    assert Path(pugc.__file__).resolve().parent == here, f"pugc imported from {pugc.__file__}, expected {here}"


@pytest.fixture(scope="session")
def vllm_engine():
    from pugc.engines.vllm_engine import VLLMEngine

    engine = VLLMEngine(engine_config())
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def hf_engine():
    from pugc.engines.hf import HFEngine

    engine = HFEngine(engine_config("hf"))
    yield engine
    engine.close()
