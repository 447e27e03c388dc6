"""The Kubeflow Pipelines backends the kfp target is compiled for, and what each one accepts.

A backend parses each task's Kubernetes settings (kfp-kubernetes's KubernetesExecutorConfig) against its own
protobuf definitions: from 2.14 the API server's compiler refuses a field it does not know, so the run is never
created (backend/src/v2/compiler/argocompiler/container.go, `protojson.Unmarshal` without DiscardUnknown);
2.5 ignores it silently; 2.4's driver fails the task at run time. kfp-kubernetes 2.17 writes fields newer
backends added, so compiling for an older one leaves them out, and says what that costs:

| field | first backend | without it |
|---|---|---|
| `securityContext` (run as uid, non-root) | 2.16 | the images' own non-root USER; enforce non-root with the namespace's Pod Security level (`restricted`) |
| `optional` on a secret's env variable | 2.15 | the variable's Secret must exist (`pugc preflight` checks it) |
| `pvcMount.subPath` | 2.16 | not used by the project |
| `*NameParameter` on secrets, PVCs, config maps | 2.5 | nothing: the SDK writes the name as a constant too |

(kubeflow/pipelines kubernetes_platform/proto/kubernetes_executor_config.proto at each tag.) tests/cluster/
test_backend_versions.py parses the compiled specs with each backend's own definitions, strictly.
"""
from __future__ import annotations

from pathlib import Path

import yaml

VERSIONS = ("2.4", "2.5", "2.15", "2.16", "2.17")
# field of an executor's KubernetesExecutorConfig (JSON name) -> the first backend that knows it
EXECUTOR_FIELDS = {"securityContext": "2.16"}
ENTRY_FIELDS = {  # (list field, field of its entries) -> the first backend that knows it
    ("secretAsEnv", "optional"): "2.15", ("configMapAsEnv", "optional"): "2.15", ("pvcMount", "subPath"): "2.16",
    **{(entry, f"{kind}NameParameter"): "2.5" for entry, kind in (
        ("secretAsEnv", "secret"), ("secretAsVolume", "secret"), ("pvcMount", "pvc"), ("configMapAsEnv", "configMap"),
        ("configMapAsVolume", "configMap"), ("imagePullSecret", "secret"))},
}
COST = {"securityContext": "security context (the images run as their own non-root user)",
        "optional": "optional secret references (the Secrets must exist)", "subPath": "PVC subPath"}
# left out without loss: the SDK writes each name as a constant beside its parameter form


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2])


def older(version: str, than: str) -> bool:
    return version_key(version) < version_key(than)


def for_backend(executor: dict, version: str) -> tuple[dict, set[str]]:
    """One task's Kubernetes settings without the fields `version` does not know; and what was left out."""
    kept, dropped = {}, set()
    for key, value in executor.items():
        if key in EXECUTOR_FIELDS and older(version, EXECUTOR_FIELDS[key]):
            dropped.add(key)
            continue
        if isinstance(value, list):
            value = [_without_entry_fields(key, entry, version, dropped) for entry in value]
        kept[key] = value
    return kept, dropped


def _without_entry_fields(key: str, entry, version: str, dropped: set[str]):
    if not isinstance(entry, dict):
        return entry
    out = {}
    for field, value in entry.items():
        first = ENTRY_FIELDS.get((key, field))
        if first and older(version, first):
            dropped.add(field)
            continue
        out[field] = value
    return out


def downlevel_file(path: str | Path, version: str) -> set[str]:
    """Rewrite a compiled kfp pipeline file for backend `version`; returns what was left out."""
    documents = list(yaml.safe_load_all(Path(path).read_text()))
    if len(documents) < 2 or version == VERSIONS[-1]:
        return set()
    dropped: set[str] = set()
    executors = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        executors[name], left_out = for_backend(executor, version)
        dropped |= left_out
    if dropped:
        Path(path).write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return dropped


def describe_loss(version: str, dropped: set[str]) -> str | None:
    costly = sorted(field for field in dropped if field in COST)
    if not costly:
        return None
    return (f"compiled for Kubeflow Pipelines {version} (cluster.kfp_version): left out "
            + ", ".join(COST[field] for field in costly))


def server_version(client) -> str | None:
    """The API server's release (its healthz `tag_name`, e.g. "2.15.0"); None when it does not say. The raw
    reply is read: the generated client's model keeps only `multi_user` (backend/src/apiserver/main.go serves
    `{"commit_sha", "tag_name", "multi_user"}` on /apis/v2beta1/healthz)."""
    import json

    try:
        raw = client._healthz_api.healthz_service_get_healthz(_preload_content=False)  # kfp.Client's own API client
        tag = json.loads(raw.data).get("tag_name")
    except Exception:  # an older client, a proxy that answers otherwise: not known
        return None
    return tag if tag and tag[0].isdigit() else None


def check_server(client, compiled_for: str) -> str | None:
    """Refuse a server older than the spec was compiled for, before anything is created; its version, if known."""
    found = server_version(client)
    if found and older(found, compiled_for):
        raise ValueError(f"the Kubeflow Pipelines API runs {found}, but the pipeline is compiled for {compiled_for}: "
                         f"it would refuse the run; set cluster.kfp_version: \"{'.'.join(found.split('.')[:2])}\" "
                         "(README, Supported Kubeflow Pipelines backends)")
    return found
