"""One measured task in a process of its own: python bench/scale/child.py TASK INPUTS_JSON FOLDER.
Prints one JSON line: the adapter's figures, the task's wall and CPU seconds (imports excluded) and this process's
peak resident memory (ru_maxrss, KiB on Linux), read as the process ends its work."""
from __future__ import annotations

import importlib
import json
import logging
import resource
import sys
import time
from pathlib import Path

import tasks


def main(task: str, inputs: str, folder: str) -> None:
    logging.disable(logging.WARNING)  # the stages log per chunk; the parent prints the figures
    run = getattr(tasks, f"run_{task}")
    for module in tasks.PRELOAD:  # imports are not the task's work
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    started, cpu_started = time.perf_counter(), time.process_time()
    figures = run(json.loads(inputs), Path(folder))
    seconds = round(time.perf_counter() - started, 3)
    cpu_seconds = round(time.process_time() - cpu_started, 3)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({**figures, "seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mib": round(peak_kib / 1024, 1)}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
