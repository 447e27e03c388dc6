import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fakes
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return ROOT / "data" / "sample_ugc.jsonl"


@pytest.fixture(scope="session")
def sample_slice(tmp_path_factory, sample_data) -> Path:
    """The first 60 lines of the sample corpus (its bad lines included): the end-to-end test's input."""
    path = tmp_path_factory.mktemp("data") / "slice.jsonl"
    lines = sample_data.read_text(encoding="utf-8").splitlines(keepends=True)[:60]
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def vllm_env() -> Path:
    """The vllm image's environment with vLLM's CPU build (`make vllm-env`; PUGC_VLLM_ENV names it)."""
    path = os.environ.get("PUGC_VLLM_ENV")
    if not path or not (Path(path) / ".complete").exists():
        pytest.skip("PUGC_VLLM_ENV is not set or not built: run through `make test` (or `make vllm-env`)")
    return Path(path)


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
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
