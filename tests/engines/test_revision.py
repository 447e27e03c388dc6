"""Pinned model revisions: the recipe names a hub commit or tag, the engines load exactly it, lineage records it.

The hub is offline here, so the hf tests lay two real tiny models out as a hub cache (two commits of one
repository, `main` pointing at the newer) and let transformers resolve the revision from it.
"""
import logging
import shutil
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import load_file

from pugc.config import ConfigError, EngineConfig, build, load_recipe
from pugc.engines.hf import HFEngine
from pugc.engines.openai_engine import OpenAIEngine
from pugc.engines.vllm_engine import llm_kwargs
from pugc.io import write_jsonl
from pugc.lineage import decode
from pugc.models.tiny import ensure_tiny_model
from pugc.records import Response
from pugc.stage_runner import publish, run_stage, summarize

REPO = "acme/tiny-judge"
OLD, NEW = "1" * 40, "2" * 40  # commit hashes


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A hub cache holding REPO at two commits: OLD (the tiny judge, also tagged v1.0) and NEW (the tiny policy, main)."""
    root = tmp_path_factory.mktemp("hub")
    repo = root / f"models--{REPO.replace('/', '--')}"
    for commit, role in ((OLD, "judge"), (NEW, "policy")):
        shutil.copytree(ensure_tiny_model(f"pugc-tiny/{role}"), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(NEW)
    (repo / "refs" / "v1.0").write_text(OLD)
    return root


def hub_engine_config(cache, revision, **extra):
    from_cache = {"cache_dir": str(cache)}
    return EngineConfig(model=REPO, revision=revision, options={"model": from_cache, "tokenizer": from_cache}, **extra)


@pytest.fixture
def pugc_logs(caplog, monkeypatch):
    """caplog sees pugc's records even after setup_logging stopped them propagating (as a KFP task needs)."""
    monkeypatch.setattr(logging.getLogger("pugc"), "propagate", True)
    return caplog


def weights_of(role):
    return load_file(ensure_tiny_model(f"pugc-tiny/{role}") / "model.safetensors")


def loaded_from(engine, role) -> bool:
    expected = weights_of(role)["model.embed_tokens.weight"]
    return torch.equal(engine.model.model.embed_tokens.weight.detach().cpu(), expected)


# ----------------------------------------------------------------------------------------------- config
def test_config_accepts_a_revision_and_defaults_to_none():
    assert EngineConfig().revision is None
    config = build(EngineConfig, {"model": REPO, "revision": OLD}, "engines.judge")
    assert config.revision == OLD
    assert build(EngineConfig, {"revision": "v1.0"}, "engines.judge").revision == "v1.0"
    assert build(EngineConfig, {"revision": "refs/pr/3"}, "engines.judge").revision == "refs/pr/3"


@pytest.mark.parametrize("value, message", [
    ("", "engines.judge.revision: '' is not a hub revision"),
    ("main branch", "engines.judge.revision: 'main branch' is not a hub revision"),
    (12, "engines.judge.revision: expected a string"),
])
def test_config_rejects_a_bad_revision_naming_the_key(value, message):
    with pytest.raises(ConfigError, match=message):
        build(EngineConfig, {"revision": value}, "engines.judge")


def test_recipe_override_pins_a_role():
    recipe = load_recipe("tiny", ["engines.judge.revision=v1.0"])
    assert recipe.engines.judge.revision == "v1.0" and recipe.engines.policy.revision is None
    with pytest.raises(ConfigError, match="engines.policy.revision"):
        load_recipe("tiny", ["engines.policy.revision='a b'"])


# ------------------------------------------------------------------------------------------------ hf
def test_hf_engine_loads_the_pinned_commit_not_main(hub_cache):
    pinned = HFEngine(hub_engine_config(hub_cache, OLD))
    assert pinned.revision == OLD and loaded_from(pinned, "judge")
    latest = HFEngine(hub_engine_config(hub_cache, None))
    assert latest.revision is None and loaded_from(latest, "policy")


def test_hf_engine_resolves_a_tag(hub_cache):
    assert loaded_from(HFEngine(hub_engine_config(hub_cache, "v1.0")), "judge")


def test_hf_engine_fails_on_a_revision_it_does_not_have(hub_cache):
    with pytest.raises(OSError):
        HFEngine(hub_engine_config(hub_cache, "3" * 40))


def test_local_models_ignore_a_revision_with_a_warning(pugc_logs):
    """A local folder or a tiny id has no revisions: the recipe may keep its pin while a role points at a copy."""
    with pugc_logs.at_level(logging.WARNING, logger="pugc.models"):
        tiny = HFEngine(EngineConfig(model="pugc-tiny/judge", revision=OLD))
        folder = HFEngine(EngineConfig(model=str(ensure_tiny_model("pugc-tiny/judge")), revision=OLD))
    assert tiny.revision is None and folder.revision is None
    assert loaded_from(tiny, "judge") and loaded_from(folder, "judge")
    assert sum("is a local model: revision" in r.getMessage() for r in pugc_logs.records) == 2


# ----------------------------------------------------------------------------- checks before launch
def test_launch_checks_look_for_the_pinned_revision(hub_cache, monkeypatch):
    import huggingface_hub.constants

    from pugc.checks import UserError, check_models
    from pugc.config import EnginesConfig

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    pinned = EnginesConfig(judge=EngineConfig(model=REPO, revision="v1.0"))
    assert check_models(pinned)["judge"] == f"{REPO}@v1.0 (in the local Hugging Face cache)"
    missing = EnginesConfig(judge=EngineConfig(model=REPO, revision="3" * 40))
    with pytest.raises(UserError, match=rf"engines.judge.model: {REPO} at revision 3{{40}} is not in the local "
                                        rf"Hugging Face cache .* `hf download {REPO} --revision 3{{40}}`"):
        check_models(missing)


# ------------------------------------------------------------------------------------- vllm, openai
def test_vllm_pins_model_and_tokenizer_revision():
    kwargs = llm_kwargs(EngineConfig(backend="vllm", model="mistralai/Mistral-7B-Instruct-v0.2", revision=OLD))
    assert kwargs["revision"] == kwargs["tokenizer_revision"] == OLD
    assert "revision" not in llm_kwargs(EngineConfig(backend="vllm", model="mistralai/Mistral-7B-Instruct-v0.2"))
    assert "revision" not in llm_kwargs(EngineConfig(backend="vllm", model="pugc-tiny/judge-hd32", revision=OLD))


def test_vllm_engine_hands_the_pin_to_llm_and_reports_it(monkeypatch):
    import sys

    from pugc.engines.vllm_engine import VLLMEngine
    from tests.engines.test_vllm_engine import FakeVLLM

    monkeypatch.setitem(sys.modules, "vllm", FakeVLLM)
    engine = VLLMEngine(EngineConfig(backend="vllm", model="prometheus-eval/prometheus-7b-v2.0", revision=OLD))
    llm = FakeVLLM.LLM.instances[-1]
    assert llm.kwargs["revision"] == llm.kwargs["tokenizer_revision"] == OLD and engine.revision == OLD


def test_openai_engine_cannot_pin_and_says_so(pugc_logs):
    config = EngineConfig(backend="openai", model="judge", revision=OLD, options={"base_url": "http://127.0.0.1:9/v1"})
    with pugc_logs.at_level(logging.INFO, logger="pugc.engines.openai_engine"):
        engine = OpenAIEngine(config)
    assert engine.revision is None
    assert any("not sent" in r.getMessage() for r in pugc_logs.records)


# ------------------------------------------------------------------------------------------- lineage
class Artifact:
    def __init__(self):
        self.metadata = {}


def test_stage_lineage_records_model_and_revision(hub_cache, tmp_path):
    """A real reward_scoring run with the pinned judge: its report and its artifact metadata name both."""
    rows = [Response(id=f"q-{k}", instruction_id="q", doc_id="d", instruction="How to keep basil alive?",
                     document="Water it weekly and keep it in sun.", response=text, sample_index=k)
            for k, text in enumerate(["Water weekly, full sun.", "Ignore it."])]
    write_jsonl(tmp_path / "in.jsonl", rows)
    engine = hub_engine_config(hub_cache, "v1.0")
    section = {"mode": "expected", "feedback_max_tokens": 4}
    report = run_stage("reward_scoring", str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl"),
                       str(tmp_path / "dropped.jsonl"), section, {"judge": asdict(engine)})
    assert report["model"] == REPO and report["model_revision"] == "v1.0"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    artifact = Artifact()
    publish(report, [artifact])
    lineage = decode(artifact.metadata)
    assert lineage["model"] == REPO and lineage["model_revision"] == "v1.0"
    ingest = {"stage": "ingest_ugc", "rows_in": 2, "rows_out": 2, "dropped": {}, "input_lines": 2, "quarantined": 0}
    stages = summarize([ingest, lineage])["stages"]  # the run's summary.json
    assert stages["reward_scoring"]["model"] == REPO and stages["reward_scoring"]["model_revision"] == "v1.0"
    assert "model" not in stages["ingest_ugc"]


def test_unpinned_lineage_has_no_revision_key():
    artifact = Artifact()
    publish({"stage": "s", "counts": {"in": 1, "out": 1, "dropped": {}}, "metrics": {}, "seconds": 0.1,
             "pugc_version": "x", "model": "m", "model_revision": None}, [artifact])
    assert "model_revision" not in artifact.metadata and artifact.metadata["model"] == "m"
