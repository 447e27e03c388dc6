"""An image's requirement files and lock, read: what the image provides is every package reachable from its
top-level pins and its base image's packages through the lock's `# via:` edges (images/lock.py writes them)."""
from __future__ import annotations

import functools
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

TOP_LEVEL_FILES = ("requirements.txt", "provided-by-base.txt")
BASE_PREFIX = "# base: "


@dataclass(frozen=True)
class Locked:
    version: str
    via: tuple[str, ...]  # packages that require it, or the requirement file that asks for it


def requirements(path: Path) -> dict[str, Requirement]:
    """A requirement file's entries by canonical name (comments and blank lines skipped)."""
    found = {}
    for line in path.read_text().splitlines() if path.exists() else ():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = requirement
    return found


def top_level(folder: Path) -> dict[str, dict[str, Requirement]]:
    """File name -> its requirements, for the image's requirements.txt and provided-by-base.txt."""
    return {name: requirements(folder / name) for name in TOP_LEVEL_FILES if (folder / name).exists()}


def read_lock(folder: Path) -> dict[str, Locked]:
    locked = {}
    for line in (folder / "requirements.lock").read_text().splitlines():
        line = line.removeprefix(BASE_PREFIX)  # the base image's own packages: provided all the same
        if not line.strip() or line.startswith("#"):
            continue
        pin, _, via = line.partition("# via:")
        name, _, version = pin.strip().partition("==")
        locked[canonicalize_name(name)] = Locked(version, tuple(v.strip() for v in via.split(",") if v.strip()))
    return locked


def provided(folder: Path) -> set[str]:
    """Distributions the image holds: its top-level pins, its base's packages, and all they depend on."""
    lock = read_lock(folder)
    parents = {name: set(entry.via) for name, entry in lock.items()}
    return lock_tool().reachable({name for reqs in top_level(folder).values() for name in reqs}, parents)


@functools.cache
def lock_tool():
    """images/lock.py, the tool that writes the locks: its graph walk reads them back the same way."""
    path = Path(__file__).resolve().parents[2] / "images" / "lock.py"
    spec = importlib.util.spec_from_file_location("pugc_images_lock", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclasses look it up
    spec.loader.exec_module(module)
    return module
