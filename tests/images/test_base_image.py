"""The base image's Python environment, rebuilt here from images/base (`make base-env`), runs the CPU tasks of
the compiled pipeline: their own container commands, with `python3` from that environment."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pugc.components import images
from pugc.config import load_recipe
from pugc.pipelines.local import compile_pipeline
from tests.images.executor import artifact, compiled_tasks, executor_input, run_task
from tests.images.locks import read_lock
from tests.images.stages import IMAGES, ROOT, modules_to_import

BASE = IMAGES["base"]


@pytest.fixture(scope="module")
def base_env() -> Path:
    """The cached environment `make base-env` built from the current lock (PUGC_BASE_ENV names it)."""
    path = os.environ.get("PUGC_BASE_ENV")
    if not path:
        pytest.skip("PUGC_BASE_ENV is not set: run through `make test` (or `make base-env` and export it)")
    env = Path(path)
    assert (env / ".complete").exists(), f"{env} is not built: make base-env"
    return env


# What images/base/Dockerfile copies before `pip install --no-deps .`
DOCKER_CONTEXT = ("pyproject.toml", "README.md", "src", "components", "pipelines")


@pytest.fixture(scope="module")
def pugc_site(base_env, tmp_path_factory) -> Path:
    """This clone's pugc as the image gets it: the Dockerfile's files copied to a clean folder (no stale build/),
    built into a wheel, installed without deps into a folder of this test session that goes on PYTHONPATH. The
    shared environment never holds any clone's source."""
    work = tmp_path_factory.mktemp("base-image")
    (work / "context").mkdir()
    for name in DOCKER_CONTEXT:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, work / "context" / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, work / "context" / name)
    # the wheel is pure Python: the test runner's setuptools builds it (no download of build requirements)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(work / "wheel"), str(work / "context")], check=True, capture_output=True)
    wheel = next((work / "wheel").glob("pugc-*.whl"))
    result = subprocess.run([str(base_env / "bin/python"), "-m", "pip", "install", "--quiet", "--no-deps",
                             "--target", str(work / "site"), str(wheel)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "site"


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
    installed = {k: v for k, v in installed.items() if k not in ("pip", "setuptools", "wheel")}
    assert installed == {name: entry.version for name, entry in lock.items()}
    check = subprocess.run([str(base_env / "bin/python"), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_cpu_task_modules_import_in_base_env(base_env, pugc_site):
    """Every pugc module the base image's stages reach, and every third-party module they import, even in
    function bodies (datasketch, google-cloud-storage, pyarrow.parquet), imports with the image's packages."""
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
    path = compile_pipeline(load_recipe("tiny"), tmp_path_factory.mktemp("compiled") / "pugc.yaml")
    return next(yaml.safe_load_all(path.read_text()))


def test_cpu_tasks_run_on_the_base_image(compiled_spec):
    tasks = compiled_tasks(compiled_spec)
    on_base = {name for name, task in tasks.items() if task.image == images.BASE}
    assert on_base == set(BASE.components)


def test_ingest_task_runs_in_base_env(base_env, pugc_site, compiled_spec, sample_data, tmp_path):
    """ingest_ugc's compiled command, near-duplicate filter on (datasketch), the input as an imported Dataset."""
    task = compiled_tasks(compiled_spec)["ingest_ugc"]
    parameters = compiled_spec["root"]["inputDefinitions"]["parameters"]
    config = parameters["input_config"]["defaultValue"]
    assert config.get("near_duplicates", True), "the tiny recipe must keep near-duplicates on: it tests datasketch"
    source = artifact("source", str(sample_data), "system.Dataset")
    request = executor_input(task, tmp_path, {"input_uri": str(sample_data), "config": config}, {"source": source})
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
