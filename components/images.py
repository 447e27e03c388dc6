"""Every container image reference, in one place.

Images are tagged with the commit they were built from (`make images` / `make push`, the CI `images` job), so a
pipeline compiled from a commit runs that commit's code: with a version tag, a pull policy of IfNotPresent
would keep running whatever image of that version a node pulled first. The tag is, in order: PUGC_IMAGE_TAG,
the commit of the source checkout compiling the pipeline, the package version (an installed package without a
checkout: the tasks themselves, where the reference is not used). With PUGC_IMAGE_DIGESTS (a JSON file
{"base": "sha256:...", ...} that the CI push writes) each reference also pins its digest.

Set PUGC_IMAGE_REGISTRY (e.g. us-docker.pkg.dev/my-project/pugc) before compiling for a cluster.
"""
import json
import os
import subprocess
from pathlib import Path

from pugc import __version__

REGISTRY = os.environ.get("PUGC_IMAGE_REGISTRY", "pugc").rstrip("/")
CHECKOUT = Path(__file__).resolve().parents[1]
COMMIT_CHARS = 12


def source_commit() -> str | None:
    """The commit of the checkout this module runs from; None for an installed package, or when git cannot say."""
    if not (CHECKOUT / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", f"--short={COMMIT_CHARS}", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def reference(name: str, tag: str, digests: dict) -> str:
    digest = digests.get(name)
    return f"{REGISTRY}/{name}:{tag}" + (f"@{digest}" if digest else "")


TAG = os.environ.get("PUGC_IMAGE_TAG") or source_commit() or __version__
DIGESTS = json.loads(Path(os.environ["PUGC_IMAGE_DIGESTS"]).read_text()) if os.environ.get("PUGC_IMAGE_DIGESTS") else {}

BASE = reference("base", TAG, DIGESTS)  # CPU stages: ingest, preference pairs, summary
INFERENCE = reference("vllm", TAG, DIGESTS)  # LLM stages (vLLM, with transformers for the hf engine)
TRAINER = reference("trainer", TAG, DIGESTS)  # DPO / SimPO training
