"""Per-task platform settings from the recipe's `cluster:` section, applied in one place."""
from __future__ import annotations

from pugc.config import ClusterConfig


def apply_resources(cluster: ClusterConfig, tasks: dict) -> None:
    """Display names, caching, and cpu/memory/accelerator requests and limits for every task."""
    for name, task in tasks.items():
        task.set_display_name(name)
        task.set_caching_options(True)
        spec = cluster.resources.get(name)
        if spec is None:
            continue
        if spec.cpu_request:
            task.set_cpu_request(str(spec.cpu_request))
        if spec.cpu_limit:
            task.set_cpu_limit(str(spec.cpu_limit))
        if spec.memory_request:
            task.set_memory_request(str(spec.memory_request))
        if spec.memory_limit:
            task.set_memory_limit(str(spec.memory_limit))
        if spec.accelerator_count > 0:
            task.set_accelerator_type(spec.accelerator_type or "nvidia.com/gpu")
            task.set_accelerator_limit(spec.accelerator_count)
