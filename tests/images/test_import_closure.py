"""Every third-party module an image's stages can import is provided by that image: its pins, what its base
image holds, or their dependencies (images/<image>/requirements.lock). Read from the source, so it covers the GPU
images whose CUDA bases cannot run here."""
from __future__ import annotations

import functools
import importlib.metadata

import pytest
from packaging.utils import canonicalize_name

from tests.images.closure import third_party_reach
from tests.images.locks import provided, read_lock, top_level
from tests.images.stages import IMAGES

# Modules whose distribution the installed metadata cannot name: not installed in the CPU environment (vllm), or
# a namespace that many distributions share (google.*). The longest matching prefix wins.
DISTRIBUTION_OF = {
    "vllm": "vllm",
    "google.cloud.storage": "google-cloud-storage",
    "google.auth": "google-auth",
    "google.api_core": "google-api-core",
}


@functools.cache
def installed_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # scans every installed package: once


def distribution_of(module: str) -> str:
    for prefix in sorted(DISTRIBUTION_OF, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return DISTRIBUTION_OF[prefix]
    top = module.split(".")[0]
    candidates = {canonicalize_name(d) for d in installed_distributions().get(top, [])}
    if canonicalize_name(top) in candidates:  # kfp: kfp, not the kfp-kubernetes that shares its folder
        return canonicalize_name(top)
    assert len(candidates) == 1, (
        f"cannot tell which distribution provides `{module}` (candidates: {sorted(candidates) or 'none installed'}): "
        "add it to DISTRIBUTION_OF in tests/images/test_import_closure.py")
    return candidates.pop()


def unprovided(image: str, modules: dict[str, set[str]]) -> dict[str, list[str]]:
    """Distribution -> 'module (imported by ...)' lines, for the modules the image does not provide."""
    have = provided(IMAGES[image].folder)
    missing: dict[str, list[str]] = {}
    for module, importers in sorted(modules.items()):
        distribution = distribution_of(module)
        if distribution not in have:
            missing.setdefault(distribution, []).append(f"{module} (imported by {', '.join(sorted(importers))})")
    return missing


def reach(image: str):
    stages = IMAGES[image]
    return third_party_reach(stages.entry_modules, stages.not_entered)


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_every_module_the_stages_import_is_provided_by_the_image(image):
    missing = unprovided(image, reach(image).required)
    assert not missing, f"the {image} image lacks what its stages import:\n" + "\n".join(
        f"  {distribution}: {'; '.join(where)} is not in images/{image}/requirements.txt, provided-by-base.txt "
        "or their dependencies (requirements.lock)" for distribution, where in missing.items())


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_optional_modules_absent_from_the_image_are_allowed_on_purpose(image):
    allowed = IMAGES[image].optional_absent
    absent = unprovided(image, reach(image).optional)
    surprising = {d: w for d, w in absent.items() if d not in allowed}
    assert not surprising, (f"the {image} image lacks optional imports not in its optional_absent list "
                            f"(tests/images/stages.py): {surprising}")
    stale = set(allowed) - set(absent)
    assert not stale, f"{image}: optional_absent names {sorted(stale)}, which the image provides or nothing imports"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_lock_agrees_with_the_top_level_requirements(image):
    """A pin changed or removed without `make locks` fails here, naming the package."""
    folder = IMAGES[image].folder
    lock = read_lock(folder)
    asked = top_level(folder)
    for file, requirements in asked.items():
        for name, requirement in requirements.items():
            assert name in lock, f"images/{image}/{file} asks for {name}, absent from requirements.lock: make locks"
            assert requirement.specifier.contains(lock[name].version, prereleases=True), (
                f"images/{image}/{file}: {requirement} but the lock has {lock[name].version}: make locks")
    for name, entry in lock.items():
        for file in set(entry.via) & set(asked):
            assert name in asked[file], f"images/{image}/requirements.lock: {name} via {file}, which no longer asks for it: make locks"


def test_closure_finds_what_each_image_is_known_to_need():
    """The closure itself: each image reaches kfp (components) and yaml (config); the GPU images reach
    torch; only the vllm image reaches vllm."""
    modules = {image: {m.split(".")[0] for m in reach(image).required} for image in IMAGES}
    assert all({"kfp", "yaml"} <= found for found in modules.values()), modules
    assert "torch" in modules["trainer"] and "torch" in modules["vllm"] and "torch" not in modules["base"]
    assert "numpy" in modules["base"] and "peft" in modules["trainer"]
    assert "vllm" in modules["vllm"] and "vllm" not in modules["trainer"]


@pytest.mark.parametrize("image, base_package, own_package", [("trainer", "torch", "peft"), ("vllm", "vllm", "kfp")])
def test_gpu_builds_are_constrained_by_the_lock_except_the_base_images_packages(image, base_package, own_package):
    """pip reads `# base:` lines as comments: the CUDA image's own torch/vllm builds are never replaced."""
    folder = IMAGES[image].folder
    lines = (folder / "requirements.lock").read_text().splitlines()
    assert any(line.startswith(f"# base: {base_package}==") for line in lines)
    assert any(line.startswith(f"{own_package}==") for line in lines)
    assert "-c /tmp/requirements.lock" in (folder / "Dockerfile").read_text()
