"""Which third-party modules an image's stages can import: pugc's own imports followed from the stages'
entry modules, at module level and inside functions (pugc imports its heavy backends lazily), read from the
source with `ast` so nothing is imported here."""
from __future__ import annotations

import ast
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# pyproject.toml's package-dir: components/ and pipelines/ install as pugc.components and pugc.pipelines
# (the longer prefixes first: they win over src/pugc)
PACKAGE_DIRS = {"pugc.components": ROOT / "components", "pugc.pipelines": ROOT / "pipelines", "pugc": ROOT / "src/pugc"}
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}
NAMESPACE_PACKAGES = {"google"}  # split over many distributions: keep the submodule names


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name as written (e.g. google.cloud.storage)
    optional: bool  # inside `try: ... except ImportError`: the code runs without it


def source_file(module: str) -> Path | None:
    """The file of a pugc module, or None when `module` is not one."""
    for prefix, folder in PACKAGE_DIRS.items():
        if module == prefix or module.startswith(prefix + "."):
            base = folder.joinpath(*module[len(prefix):].lstrip(".").split(".")) if module != prefix else folder
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
            return None
    return None


def is_package(module: str) -> bool:
    path = source_file(module)
    return path is not None and path.name == "__init__.py"


@functools.cache
def imports_of(module: str) -> list[Import]:
    """Every import statement in a pugc module, wherever it sits (top level, functions, branches)."""
    tree = ast.parse(source_file(module).read_text(), filename=str(source_file(module)))
    found: list[Import] = []
    _collect(tree, module, optional=False, found=found)
    return found


def _collect(node: ast.AST, module: str, optional: bool, found: list[Import]) -> None:
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        return  # annotations only: never imported at run time
    if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
        for child in node.body:
            _collect(child, module, True, found)
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            _collect(child, module, optional, found)
        return
    if isinstance(node, ast.Import):
        found += [Import(alias.name, optional) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        found += [Import(name, optional) for name in _from_import_targets(node, module)]
    for child in ast.iter_child_nodes(node):
        _collect(child, module, optional, found)


def _from_import_targets(node: ast.ImportFrom, module: str) -> list[str]:
    """`from X import a, b`: X itself, plus X.a / X.b where those are submodules (`from pugc import gcs`)."""
    if node.level:  # relative: resolve against this module's package
        package = module if is_package(module) else module.rpartition(".")[0]
        package = ".".join(package.split(".")[: len(package.split(".")) - (node.level - 1)])
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module
    namespace = base.split(".")[0] in NAMESPACE_PACKAGES
    targets = [] if namespace else [base]
    for alias in node.names:
        if source_file(f"{base}.{alias.name}") is not None:
            targets.append(f"{base}.{alias.name}")
        elif namespace:  # `from google.cloud import storage`: each submodule has a distribution of its own
            targets.append(f"{base}.{alias.name}")
    return targets


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    """A handler that swallows ImportError; one that raises again (a friendlier message) makes nothing optional."""
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    catches = any(isinstance(n, ast.Name) and n.id in IMPORT_ERRORS for n in names)
    return catches and not any(isinstance(n, ast.Raise) for n in ast.walk(handler))


def with_parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@dataclass
class Reach:
    """Third-party modules reached, each with the pugc modules that import it."""
    required: dict[str, set[str]]
    optional: dict[str, set[str]]
    pugc_modules: set[str]


def third_party_reach(entry_modules: list[str], not_entered: dict[str, str]) -> Reach:
    """Follow pugc's imports from `entry_modules`; pugc modules in `not_entered` (module -> why the image's
    stages never get there) are not followed."""
    reach = Reach({}, {}, set())
    pending = [parent for entry in entry_modules for parent in with_parents(entry)]
    while pending:
        module = pending.pop()
        if module in reach.pugc_modules or any(module == m or module.startswith(m + ".") for m in not_entered):
            continue
        if source_file(module) is None:
            raise AssertionError(f"{module}: no such pugc module (check the image's entry modules)")
        reach.pugc_modules.add(module)
        for imp in imports_of(module):
            if imp.module.split(".")[0] == "pugc":
                pending += [m for m in with_parents(imp.module) if source_file(m) is not None]
            elif imp.module.split(".")[0] not in sys.stdlib_module_names:
                target = reach.optional if imp.optional else reach.required
                target.setdefault(imp.module, set()).add(module)
    for name in set(reach.optional) & set(reach.required):  # needed somewhere without a fallback: required
        reach.required[name] |= reach.optional.pop(name)
    return reach
