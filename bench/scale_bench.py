"""Scale benchmark: the CPU tasks and an LLM stage's framework path at 25k, 50k and 100k documents.

    make bench-scale      # or: .venv/bin/python bench/scale_bench.py [--sizes 25000 50000 100000]

Per task and size, in a child process of its own: throughput (records/s, the task's wall time without
imports) and peak resident memory (the child's ru_maxrss). Prints a table with the 100k/25k ratios side by
side and writes the figures to bench/results/scale.json. Synthetic data (bench/scale/synthetic.py) is made
once and cached in bench/.cache/scale/; the adapters (bench/scale/tasks.py) are the only part that knows the
project's entry points. `--src DIR` runs the children on another checkout's src/ (to measure older code).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCALE = ROOT / "bench" / "scale"
sys.path.insert(0, str(SCALE))

import tasks  # noqa: E402  (bench/scale is not a package)

SIZES = (25_000, 50_000, 100_000)


def measure(task: str, inputs: dict, folder: Path, src: Path, timeout: float | None) -> dict:
    """Run one task in a fresh Python (one thread for numeric libraries: the figures are per core); its
    figures, or the error that stopped it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(SCALE)]), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        child = subprocess.run([sys.executable, str(SCALE / "child.py"), task, json.dumps(inputs), str(folder)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {timeout:.0f} s"}
    if child.returncode:
        lines = child.stderr.strip().splitlines()
        return {"error": f"exit {child.returncode}: {lines[-1] if lines else ''}"}
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    figures["per_s"] = round(figures["records"] / figures["seconds"], 1) if figures["seconds"] else None
    figures["per_cpu_s"] = round(figures["records"] / figures["cpu_seconds"], 1) if figures["cpu_seconds"] else None
    return figures


def run_size(size: int, src: Path, timeout: float | None, only: tuple[str, ...], save) -> dict:
    """Every task at this size, in TASKS order, in one scratch folder; `save(results)` after each task."""
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix=f"pugc-scale-{size}-") as tmp:
        folder = Path(tmp)
        for task in tasks.TASKS:
            if only and task not in only:
                continue
            started = time.perf_counter()
            inputs = getattr(tasks, f"prepare_{task}")(size, folder)
            prepared = time.perf_counter() - started
            results[task] = measure(task, inputs, folder, src, timeout)
            results[task]["prepare_seconds"] = round(prepared, 1)
            print(f"  {size:>7,} {task:<22} {_cell(results[task])}", file=sys.stderr, flush=True)
            save(results)
    return results


def _cell(figures: dict) -> str:
    if "error" in figures:
        return figures["error"]
    return f"{figures['per_s']:>10,.0f} {figures['unit']}/s  {figures['peak_rss_mib']:>8,.0f} MiB  ({figures['seconds']:.1f} s)"


def table(results: dict[int, dict]) -> str:
    """Markdown: per task, throughput (per wall second and per CPU second) and peak RSS at each size, each
    with the largest/smallest ratio beside it."""
    sizes = sorted(results)
    ratio = f"{sizes[-1] // 1000}k/{sizes[0] // 1000}k"
    columns = (("per_s", "/s", "{:,.0f}"), ("per_cpu_s", "/CPU-s", "{:,.0f}"), ("peak_rss_mib", "MiB", "{:,.0f}"))
    head = ["task", "unit"]
    for _, label, _ in columns:
        head += [f"{s // 1000}k {label}" for s in sizes] + [ratio]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in tasks.TASKS:
        row = [results[s].get(task, {"error": "not run"}) for s in sizes]
        cells = [task, next((r["unit"] for r in row if "unit" in r), "")]
        for key, _, form in columns:
            cells += [form.format(r[key]) if r.get(key) else "-" for r in row]
            first, last = row[0].get(key), row[-1].get(key)
            cells.append(f"{last / first:.2f}" if first and last and len(sizes) > 1 else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load = os.getloadavg()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in load]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--tasks", nargs="+", default=[], choices=tasks.TASKS, help="only these tasks")
    parser.add_argument("--src", default=str(ROOT / "src"), help="the src/ folder whose pugc the tasks run")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before a task is stopped")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    figures = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "src": args.src,
               "sizes": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for size in sorted(args.sizes):
        def save(results: dict, size: int = size) -> None:  # partial figures survive an interrupted run
            out.write_text(json.dumps({**figures, "sizes": {**figures["sizes"], size: results}}, indent=2) + "\n")

        figures["sizes"][size] = run_size(size, Path(args.src), args.timeout, tuple(args.tasks), save)
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    figures["table"] = table(figures["sizes"])
    figures["near_duplicate_index_bytes_per_doc"] = {
        size: tasks_at.get("near_duplicate_index", {}).get("index_bytes_per_doc") for size, tasks_at in figures["sizes"].items()}
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(figures["table"])
    print(f"\nnear-duplicate index, resident bytes per indexed document: {figures['near_duplicate_index_bytes_per_doc']}")
    print(f"\nwall {figures['wall_seconds']:.0f} s, load average {figures['machine']['load_average_at_start']} at start, "
          f"{figures['load_average_at_end']} at end; figures in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
