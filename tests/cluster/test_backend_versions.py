"""The compiled kfp target, per supported backend, parsed with that backend's own protobuf definitions in strict
mode (as its API server does from 2.14: an unknown field refuses the run at creation): each compile target
passes on its own backend, and a spec compiled for a newer backend fails on an older one, so a field an old
backend refuses fails `make test` here rather than a run there."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pugc.config import load_recipe
from pugc.pipelines.backends import VERSIONS, older
from pugc.pipelines.local import compile_pipeline
from tests.cluster.backend_models import KFP_BACKENDS, folders

PARSER = Path(__file__).with_name("parse_executor_configs.py")
RECIPE = ["rounds=2", "cluster.shards=2", "cluster.hf_token_secret=hf-token", "cluster.model_cache_pvc=cache",
          "cluster.openai_api_key_secret=openai", "engines.judge.backend=openai"]


@pytest.fixture(scope="session")
def backend_models() -> dict[str, Path]:
    root = os.environ.get("PUGC_BACKEND_MODELS")
    if not root or not (Path(root) / ".complete").exists():
        pytest.skip("PUGC_BACKEND_MODELS is not set or not built: run through `make test` (or `make backend-models`)")
    return folders(root)


def executor_configs(tmp_path: Path, version: str) -> dict:
    recipe = load_recipe("paper", [*RECIPE, f"cluster.kfp_version={version}"])
    path = compile_pipeline(recipe, tmp_path / f"pugc-{version}.yaml", "kfp", "gs://b/root")
    _, platform = yaml.safe_load_all(path.read_text())
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def parse(backend_models, backend: str, configs: dict, tmp_path: Path) -> dict:
    data = tmp_path / f"configs-{backend}.json"
    data.write_text(json.dumps(configs))
    done = subprocess.run([sys.executable, "-S", str(PARSER), str(backend_models[f"kfp-{backend}"]), str(data)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_every_supported_backend_has_its_definitions():
    assert set(KFP_BACKENDS) == set(VERSIONS)


@pytest.mark.parametrize("version", VERSIONS)
def test_each_compile_target_parses_strictly_on_its_own_backend(backend_models, tmp_path, version):
    configs = executor_configs(tmp_path, version)
    assert len(configs) >= 15  # every task of the paper recipe with rounds and shards carries settings
    results = parse(backend_models, version, configs, tmp_path)
    assert {executor: result for executor, result in results.items() if result != "ok"} == {}


@pytest.mark.parametrize("compiled, backend", [("2.16", "2.15"), ("2.15", "2.5"), ("2.17", "2.4")])
def test_a_spec_for_a_newer_backend_is_refused_by_an_older_one(backend_models, tmp_path, compiled, backend):
    assert older(backend, compiled)
    results = parse(backend_models, backend, executor_configs(tmp_path, compiled), tmp_path)
    refused = [result for result in results.values() if result != "ok"]
    assert refused and all("has no field named" in result or "Message type" in result for result in refused)


def test_an_older_target_leaves_out_what_its_backend_lacks_and_nothing_else(tmp_path):
    newest, oldest = executor_configs(tmp_path, "2.17"), executor_configs(tmp_path, "2.4")
    assert newest.keys() == oldest.keys()
    for name, config in newest.items():
        assert "securityContext" in config and "securityContext" not in oldest[name]
        stripped = {k: v for k, v in config.items() if k != "securityContext"}
        for entry in stripped.get("secretAsEnv", []):
            entry.pop("optional", None)
            assert entry.pop("secretNameParameter")["runtimeValue"]["constant"] == entry["secretName"]  # lossless
        for entry in stripped.get("pvcMount", []):
            assert entry.pop("pvcNameParameter")["runtimeValue"]["constant"] == entry["constant"]
        assert stripped == oldest[name], name
