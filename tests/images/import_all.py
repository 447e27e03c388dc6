"""Import every name given (a module, or an attribute of one, as in `from google.auth.credentials import
AnonymousCredentials`) and list every failure, so one run names all that is missing.

Runs with only the standard library, inside an image's environment:
    python tests/images/import_all.py pugc.stages.ingest numpy ...
(tests/images/test_base_image.py here; the `images` job of .github/workflows/tests.yml inside each built image)
"""
import importlib
import sys


def failures(names):
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            parent, _, attribute = name.rpartition(".")
            if exc.name != name or not parent or not hasattr(importlib.import_module(parent), attribute):
                failed.append(f"{name}: {exc!r}")
        except ImportError as exc:
            failed.append(f"{name}: {exc!r}")
    return failed


if __name__ == "__main__":
    missing = failures(sys.argv[1:])
    print("\n".join(missing) if missing else f"imported {len(sys.argv) - 1} modules")
    sys.exit(1 if missing else 0)
