import os
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
