"""Regenerate each image's lock: `make locks` (or `python images/lock.py [base|trainer|vllm ...]`).

For each image, pip resolves its top-level pins (requirements.txt) together with what its base image already
holds (provided-by-base.txt, GPU images only) for the image's Python, and writes images/<image>/requirements.lock:
one `name==version` line per package of the image's Python environment, each followed by `# via:` and the
packages that require it (or the file that asks for it). The Dockerfiles install with `-c requirements.lock`;
tests/images reads the `via` lines to know what an image provides. Packages of the base image's own subtree
are written as `# base:` comment lines: the CUDA images carry their own builds of them (torch 2.9.1+cu128 and
the CUDA wheels it pins), which a constraint resolved from PyPI must not try to replace.

pip resolves against PyPI only (`PIP_CONFIG_FILE=/dev/null` drops machine-local indexes and caps), with
`--dry-run --report`, so metadata is downloaded, not the packages. Each image is resolved by an interpreter of
the image's Python version (python3.11 / python3.12 on PATH; with pyenv: `PYENV_VERSION=3.12.1:3.11.7 make
locks`): resolving for another version from metadata alone (`--python-version`) refuses sdists, and
kfp-server-api and deepspeed ship only sdists.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

IMAGES_DIR = Path(__file__).resolve().parent
PROVIDED = "provided-by-base.txt"


@dataclass(frozen=True)
class ImageLock:
    name: str
    python: str  # the image's Python, major.minor

    @property
    def folder(self) -> Path:
        return IMAGES_DIR / self.name

    def inputs(self) -> list[Path]:
        return [p for p in (self.folder / "requirements.txt", self.folder / PROVIDED) if p.exists()]


# python:3.11 for base; the pytorch/pytorch 2.9.1 image ships Python 3.11; vllm/vllm-openai ships Python 3.12.
IMAGES = {name: ImageLock(name, python) for name, python in (("base", "3.11"), ("trainer", "3.11"), ("vllm", "3.12"))}


def pip_report(image: ImageLock) -> dict:
    """pip's installation report for the image's inputs, resolved against PyPI."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [interpreter(image.python), "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--report", str(report)]
        for path in image.inputs():
            command += ["-r", str(path)]
        # PyPI alone: no machine-local config, and no index a shell or CI step exported (the CPU torch index)
        env = {key: value for key, value in os.environ.items()
               if key not in ("PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_FIND_LINKS")}
        env["PIP_CONFIG_FILE"] = os.devnull
        env.pop("PIP_FIND_LINKS", None)
        subprocess.run(command, check=True, env=env)
        return json.loads(report.read_text())


def interpreter(version: str) -> str:
    found = shutil.which(f"python{version}")
    if not found:
        sys.exit(f"python{version} is not on PATH: the lock is resolved by the image's Python version")
    return found


def marker_environment(python: str, extra: str = "") -> dict:
    env = default_environment()
    env.update(python_version=python, python_full_version=f"{python}.0", extra=extra)
    return env


def required_by(report: dict, python: str) -> dict[str, set[str]]:
    """Package -> the packages of the report that require it (markers evaluated for the image's Python,
    extras followed where a parent asks for them)."""
    installed = {canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in report["install"]}
    wanted_extras: dict[str, set[str]] = {name: set() for name in installed}
    parents: dict[str, set[str]] = {name: set() for name in installed}
    changed = True
    while changed:  # extras asked for by one package can add edges elsewhere: iterate to a fixed point
        changed = False
        for name, metadata in installed.items():
            for line in metadata.get("requires_dist", []):
                requirement = Requirement(line)
                child = canonicalize_name(requirement.name)
                if child not in installed or not applies(requirement, python, wanted_extras[name]):
                    continue
                if name not in parents[child] or not requirement.extras <= wanted_extras[child]:
                    parents[child].add(name)
                    wanted_extras[child] |= requirement.extras
                    changed = True
    return parents


def applies(requirement: Requirement, python: str, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate(marker_environment(python, extra)) for extra in ({""} | extras))


def top_level_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(canonicalize_name(Requirement(line).name))
    return names


def reachable(roots: set[str], parents: dict[str, set[str]]) -> set[str]:
    children: dict[str, set[str]] = {}
    for child, requirers in parents.items():
        for parent in requirers:
            children.setdefault(parent, set()).add(child)
    found, pending = set(), list(roots)
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending += children.get(name, ())
    return found


def lock_text(image: ImageLock, report: dict) -> str:
    parents = required_by(report, image.python)
    asked = {path.name: top_level_names(path) for path in image.inputs()}
    versions = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
    from_base = reachable(asked.get(PROVIDED, set()), parents)
    lines = [
        f"# The {image.name} image's Python environment (CPython {image.python}, linux x86_64), generated by",
        f"# `make locks` from {' + '.join(p.name for p in image.inputs())}: do not edit by hand.",
        "# `# via:` names what requires each package; tests/images follows it to know what the image provides.",
    ]
    if from_base:
        lines += ["# `# base:` lines are the base image's packages and what they depend on, as PyPI's builds resolve",
                  "# them: a record for the tests, left out of the build's constraints (the image has its own builds)."]
    for name in sorted(versions):
        via = sorted(f for f, names in asked.items() if name in names) + sorted(parents[name])
        prefix = "# base: " if name in from_base else ""
        lines.append(f"{prefix}{name}=={versions[name]}  # via: {', '.join(via)}")
    return "\n".join(lines) + "\n"


def main(names: list[str]) -> None:
    for name in names or list(IMAGES):
        image = IMAGES[name]
        print(f"locking {name} (python {image.python}) ...", flush=True)
        (image.folder / "requirements.lock").write_text(lock_text(image, pip_report(image)))


if __name__ == "__main__":
    main(sys.argv[1:])
