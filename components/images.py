"""Every container image reference, in one place, tagged with the package version.

Set PUGC_IMAGE_REGISTRY (e.g. us-docker.pkg.dev/my-project/pugc) before compiling for a cluster.
"""
import os

from pugc import __version__

REGISTRY = os.environ.get("PUGC_IMAGE_REGISTRY", "pugc").rstrip("/")
TAG = os.environ.get("PUGC_IMAGE_TAG", __version__)

BASE = f"{REGISTRY}/base:{TAG}"  # CPU stages: ingest, preference pairs, summary
INFERENCE = f"{REGISTRY}/vllm:{TAG}"  # LLM stages (vLLM, with transformers for the hf engine)
TRAINER = f"{REGISTRY}/trainer:{TAG}"  # DPO / SimPO training
