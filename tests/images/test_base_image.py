"""The base image's Python environment, rebuilt here from images/base (`make base-env`), runs the CPU tasks of
the compiled pipeline: their own container commands, with `python3` from that environment."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from pugc.components import images
from pugc.config import load_recipe
from pugc.pipelines.local import compile_pipeline
from tests.images.executor import artifact, compiled_tasks, executor_input, run_task
from tests.images.locks import read_lock
from tests.images.stages import IMAGES, modules_to_import

BASE = IMAGES["base"]


def in_base_env(base_env: Path, site: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(site), PYTHONNOUSERSITE="1", HF_HUB_OFFLINE="1")


def base_python(base_env: Path, site: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(base_env / "bin/python"), "-c", code], capture_output=True, text=True,
                          env=in_base_env(base_env, site), cwd=site)


def test_base_env_is_the_lock(base_env):
    """The environment was built from today's lock, holds exactly its versions, and is consistent."""
    lock = read_lock(BASE.folder)
    assert (base_env / "requirements.lock").read_text() == (BASE.folder / "requirements.lock").read_text(), \
        "the cached base environment was built from another lock: make base-env"
    freeze = subprocess.run([str(base_env / "bin/python"), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True)
    from packaging.utils import canonicalize_name

    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(freeze.stdout)}
    # pip's own tools come with the venv, unless the lock pins one (setuptools: alpaca_eval needs pkg_resources)
    installed = {k: v for k, v in installed.items() if k not in ("pip", "setuptools", "wheel") or k in lock}
    assert installed == {name: entry.version for name, entry in lock.items()}
    check = subprocess.run([str(base_env / "bin/python"), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_cpu_task_modules_import_in_base_env(base_env, pugc_site):
    """Every pugc module the base image's stages reach, and every third-party module they import, even in
    function bodies (numpy for near-duplicates, google-cloud-storage, pyarrow.parquet), imports with the image's packages."""
    script = Path(__file__).with_name("import_all.py")
    result = subprocess.run([str(base_env / "bin/python"), str(script), *modules_to_import("base")],
                            capture_output=True, text=True, env=in_base_env(base_env, pugc_site), cwd=pugc_site)
    assert result.returncode == 0, f"in the base image's environment:\n{result.stdout}{result.stderr[-2000:]}"


def test_pugc_comes_from_this_clone(base_env, pugc_site):
    result = base_python(base_env, pugc_site, "import pugc.stages.ingest as m; print(m.__file__)")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(pugc_site)


@pytest.fixture(scope="module")
def compiled_spec(tmp_path_factory) -> dict:
    handoff = ["dpo_training.export_uri=gs://b/exported", "handoff.model_registry={server_address: http://mr}",
               "handoff.hub={repo_id: me/m, token_secret: hub}", "handoff.kserve={name: m, namespace: models}"]
    path = compile_pipeline(load_recipe("tiny", handoff), tmp_path_factory.mktemp("compiled") / "pugc.yaml")
    return next(yaml.safe_load_all(path.read_text()))


def test_cpu_tasks_run_on_the_base_image(compiled_spec):
    tasks = compiled_tasks(compiled_spec)
    on_base = {name for name, task in tasks.items() if task.image == images.BASE}
    assert on_base == set(BASE.components)


def test_ingest_task_runs_in_base_env(base_env, pugc_site, compiled_spec, sample_data, tmp_path):
    """ingest_ugc's compiled command, near-duplicate filter on (pugc.near_duplicates), the input as an imported Dataset."""
    task = compiled_tasks(compiled_spec)["ingest_ugc"]
    parameters = compiled_spec["root"]["inputDefinitions"]["parameters"]
    config = parameters["input_config"]["defaultValue"]
    assert config.get("near_duplicates", True), "the tiny recipe must keep near-duplicates on: it tests pugc.near_duplicates"
    source = artifact("source", str(sample_data), "system.Dataset")
    request = executor_input(task, tmp_path, {"input_uri": str(sample_data), "config": config,
                                              "input_fingerprint": "0123456789abcdef"}, {"source": source})
    result = run_task(task, base_env / "bin", request, env=in_base_env(base_env, pugc_site), cwd=tmp_path)
    assert result.returncode == 0, f"ingest_ugc failed in the base image's environment:\n{result.stderr[-4000:]}"
    outputs = tmp_path / "outputs"
    documents = (outputs / "ugc").read_text().splitlines()
    lines = [line for line in sample_data.read_text(encoding="utf-8").splitlines()]
    quarantined = (outputs / "quarantine").read_text().splitlines()
    duplicates = (outputs / "dropped").read_text().splitlines()
    assert documents and len(documents) + len(quarantined) + len(duplicates) == len(lines)
    written = json.loads((tmp_path / "executor_output.json").read_text())
    metadata = written["artifacts"]["ugc"]["artifacts"][0]["metadata"]
    assert metadata["rows_out"] == len(documents) and metadata["input_lines"] == len(lines)
