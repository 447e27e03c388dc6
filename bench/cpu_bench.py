"""CPU benchmarks on the tiny models: prints one JSON object of figures measured side by side in one run,
and writes it to bench/results/cpu.json (plus the scaling plot to docs/scaling.png when matplotlib is there).

    make bench            # or: .venv/bin/python bench/cpu_bench.py [--repeats 3] [--vllm-python PATH]

With --vllm-python (make bench passes the vLLM CPU environment's), bench/vllm_bench.py runs there as a child
and its figures (vLLM beside hf on one tiny model, prefix caching on vs off) join this run's.
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

from measure import ROOT, generation, judge_modes, sample_docs, write_figures


def write_slice(path: Path, documents: int) -> Path:
    """The first `documents` valid sample documents, repeated with a suffix when more are asked for."""
    docs = sample_docs()
    rows = [{"text": docs[i % len(docs)] + ("" if i < len(docs) else f" (copy {i // len(docs)})")} for i in range(documents)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def bench_generation(repeats: int) -> dict:
    from pugc.config import EngineConfig

    return generation(lambda size: EngineConfig(model="pugc-tiny/policy", batch_size=size), prompts=64,
                      max_tokens=32, repeats=repeats, batch_size=32)


def bench_judge() -> dict:
    from pugc.config import EngineConfig

    return judge_modes(EngineConfig(model="pugc-tiny/judge", batch_size=32), responses=32, n=8, max_tokens=48)


def bench_vllm(vllm_python: str | None) -> dict:
    """bench/vllm_bench.py in the vLLM environment (vLLM pins its own torch), this clone's pugc on its path."""
    if not vllm_python:
        return {"skipped": "no --vllm-python given (make bench passes the vLLM CPU environment's)"}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    child = subprocess.run([vllm_python, str(ROOT / "bench" / "vllm_bench.py")], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    if child.returncode:
        raise RuntimeError(f"vllm benchmark failed ({child.returncode}): {child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def tree_rss_mib(root: int) -> float:
    """Resident memory of a process and all its descendants, now (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                parents[int(entry.name)], rss[int(entry.name)] = int(fields[1]), int(fields[21])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(pid, 0) for pid in tree) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measured_child(code: str) -> dict:
    """Run `code` in a fresh Python; return the JSON it prints last, plus the peak resident memory of its
    whole process tree (polled every 0.1 s: KFP runs each task in a subprocess of its own)."""
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, tree_rss_mib(process.pid))
        time.sleep(0.1)
    out, err = process.communicate()
    if process.returncode:
        raise RuntimeError(f"benchmark child failed ({process.returncode}): {err[-2000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_mib": round(peak, 1)}


def run_child(kind: str, input_path: Path, work: Path) -> dict:
    code = f"""
import json, contextlib, io
from pugc.config import load_recipe
recipe = load_recipe("tiny")
with contextlib.redirect_stdout(io.StringIO()):
    if {kind!r} == "kfp":
        from pugc.pipelines.local import run_local
        wall = run_local(recipe, {str(input_path)!r}, {str(work)!r})["wall_seconds"]
    else:
        from pugc.inprocess import run_in_process
        wall = run_in_process(recipe, {str(input_path)!r}, {str(work)!r})["wall_seconds"]
print(json.dumps({{"wall_seconds": wall}}))
"""
    return measured_child(code)


def bench_pipeline(work: Path, documents: int = 48) -> dict:
    data = write_slice(work / "pipeline.jsonl", documents)
    kfp = run_child("kfp", data, work / "kfp")
    direct = run_child("direct", data, work / "direct")
    return {"documents": documents, "kfp_local_seconds": kfp["wall_seconds"], "in_process_seconds": direct["wall_seconds"],
            "ratio": round(kfp["wall_seconds"] / direct["wall_seconds"], 2),
            "kfp_overhead_seconds_per_task": round((kfp["wall_seconds"] - direct["wall_seconds"]) / 13, 2),
            "kfp_peak_rss_mib": kfp["peak_rss_mib"], "in_process_peak_rss_mib": direct["peak_rss_mib"]}


def bench_scaling(work: Path, base: int = 48) -> dict:
    points = []
    for factor in (1, 2, 4):
        data = write_slice(work / f"scale{factor}.jsonl", base * factor)
        result = run_child("direct", data, work / f"scale{factor}")
        points.append({"factor": factor, "documents": base * factor, **result})
    growth = points[-1]["wall_seconds"] / points[0]["wall_seconds"]
    return {"mode": "in-process (all stages, tiny recipe)", "points": points, "wall_4x_over_1x": round(growth, 2)}


def plot_scaling(scaling: dict, path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot"
    xs = [p["documents"] for p in scaling["points"]]
    ys = [p["wall_seconds"] for p in scaling["points"]]
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    ax.plot(xs, ys, marker="o", label="measured")
    ax.plot(xs, [ys[0] * x / xs[0] for x in xs], linestyle="--", color="grey", label="linear from 1x")
    ax.set_xlabel("input documents")
    ax.set_ylabel("wall seconds (in-process run)")
    ax.set_title("PUGC tiny recipe: cost vs. input size (2 CPU cores)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return str(path.relative_to(ROOT))


def machine() -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cpu.json"))
    parser.add_argument("--vllm-python", help="python of the vLLM CPU environment (make vllm-env): adds vLLM figures")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from pugc.logs import setup_logging

    setup_logging()
    import logging

    logging.getLogger("pugc").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        figures = {"machine": machine(), "date": time.strftime("%Y-%m-%d"),
                   "generation_batched_vs_sequential": bench_generation(args.repeats),
                   "judge_generated_tokens_sampled_vs_expected": bench_judge(),
                   "local_pipeline_vs_direct": bench_pipeline(work),
                   "scaling": bench_scaling(work),
                   "vllm_vs_hf": bench_vllm(args.vllm_python)}
    figures["scaling"]["plot"] = plot_scaling(figures["scaling"], ROOT / "docs" / "scaling.png")
    figures["peak_memory_mib"] = {"kfp_local_run_process_tree": figures["local_pipeline_vs_direct"]["kfp_peak_rss_mib"],
                                  "in_process_run": figures["local_pipeline_vs_direct"]["in_process_peak_rss_mib"]}
    write_figures(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
