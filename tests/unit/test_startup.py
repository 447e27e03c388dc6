"""Task start-up: a CPU task's entry points import no heavy library, and quiet logging still holds."""
import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "matplotlib", "datasketch", "trl", "google.cloud.storage", "kfp.client")


def imported_after(code: str) -> dict:
    """Which HEAVY modules a fresh interpreter holds after `code`, as a KFP task's executor runs it."""
    probe = f"{code}\nimport sys, json; print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={"_KFP_RUNTIME": "true", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cpu_task_entry_points_import_no_heavy_library():
    code = ("import kfp.dsl.executor_main\nfrom pugc.stage_runner import merge_shards, publish, run_stage, run_ingest\n"
            "from pugc.summary import write_run_summary\nfrom pugc.logs import setup_logging\nsetup_logging()\n"
            "import pugc.stages")
    assert not [name for name, loaded in imported_after(code).items() if loaded]


def test_transformers_progress_bars_stay_off_when_it_loads_after_logging_setup():
    code = ("from pugc.logs import setup_logging\nsetup_logging()\nfrom transformers.utils import logging\n"
            "assert not logging.is_progress_bar_enabled()")
    assert imported_after(code)["transformers"]


def test_transformers_loaded_before_logging_setup_is_quieted_too():
    code = ("import transformers\nfrom pugc.logs import setup_logging\nsetup_logging()\n"
            "from transformers.utils import logging\nassert not logging.is_progress_bar_enabled()")
    assert imported_after(code)["transformers"]
