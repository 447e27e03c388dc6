"""Task start-up: a fresh interpreter per task kind, doing what the KFP executor and the task body import
before any work (`_KFP_RUNTIME=true`, as the compiled command sets it). Prints the best of N wall times.

    python bench/startup.py [--repeats 5] [--pythonpath SRC]   (SRC: another checkout's src/ to compare)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

EXECUTOR = "import kfp.dsl.executor_main\nfrom pugc.logs import setup_logging\nsetup_logging()\n"
TASKS = {
    "python_alone": "pass",
    "merge_shards": EXECUTOR + "from pugc.stage_runner import merge_shards, publish",
    "ingest_ugc": EXECUTOR + "from pugc.stage_runner import publish, run_ingest\nimport pugc.stages.ingest\nimport datasketch",
    "preference_pairs": EXECUTOR + "from pugc.stage_runner import publish, run_stage\nimport pugc.stages\n"
                                   "from pugc.reports import write_pairs_report\nfrom matplotlib.figure import Figure",
    "llm_stage_hf": EXECUTOR + "from pugc.stage_runner import publish, run_stage\nimport pugc.stages\n"
                               "import pugc.engines.hf\nfrom transformers import AutoModelForCausalLM, AutoTokenizer",
}


def best_seconds(code: str, repeats: int, pythonpath: str | None) -> float:
    env = {**os.environ, "_KFP_RUNTIME": "true", "HF_HUB_OFFLINE": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return round(min(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pythonpath")
    args = parser.parse_args()
    print(json.dumps({task: best_seconds(code, args.repeats, args.pythonpath) for task, code in TASKS.items()},
                     indent=2))


if __name__ == "__main__":
    main()
