"""After the gate and the export: register the model in Kubeflow Model Registry, upload it to the Hugging Face
Hub with its card, and serve it as a KServe InferenceService with vLLM. Each is optional (the recipe's
`handoff:` section) and runs only where export_model ran, on the exported copy (`dpo_training.export_uri`).

Model Registry is spoken to over its REST API (`/api/model_registry/v1alpha3`) with `requests`: the
`model-registry` client pins python-dateutil < 3, which the base image's lock (4.0, through kubernetes and
matplotlib) cannot take.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

REGISTRY_API = "/api/model_registry/v1alpha3"
REGISTRY_TOKEN_ENV = "MODEL_REGISTRY_TOKEN"  # from handoff.model_registry.token_secret
HUB_TOKEN_ENV = "HF_TOKEN"  # from handoff.hub.token_secret, on upload_to_hub alone
ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
VLLM_PORT = 8080
MODEL_MOUNT = "/mnt/models"  # where KServe's storage initializer puts storageUri's files


class HandoffError(RuntimeError):
    """A hand-off step failed; the message names the step and the service's answer."""


# ------------------------------------------------------------------------------------------ Model Registry
def registry_properties(evaluation: dict, run_id: str) -> dict:
    """The evaluation's figures as Model Registry custom properties (typed metadata values)."""
    gate = evaluation.get("gate") or {}
    evaluator = evaluation.get("evaluator") or {}
    values = {"pugc_run_id": run_id, "win_rate": evaluation.get("win_rate"),
              "lc_win_rate": evaluation.get("lc_win_rate"), "win": evaluation.get("win"),
              "tie": evaluation.get("tie"), "lose": evaluation.get("lose"), "prompts": evaluation.get("prompts"),
              "evaluator": evaluator.get("model"), "evaluator_revision": evaluator.get("revision"),
              "self_judged": evaluation.get("self_judged"), "gate_passed": gate.get("passed"),
              "gate_reason": gate.get("reason")}
    properties = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            properties[key] = {"metadataType": "MetadataBoolValue", "bool_value": value}
        elif isinstance(value, (int, float)):
            properties[key] = {"metadataType": "MetadataDoubleValue", "double_value": float(value)}
        else:
            properties[key] = {"metadataType": "MetadataStringValue", "string_value": str(value)}
    return properties


class RegistryClient:
    """The few Model Registry REST calls a registration makes."""

    def __init__(self, server_address: str, port: int, token: str | None = None, timeout: float = 30):
        import requests

        address = server_address.rstrip("/")
        if "://" not in address:
            address = f"https://{address}"
        self.base = f"{address}:{port}{REGISTRY_API}"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs) -> dict | None:
        reply = self.session.request(method, f"{self.base}{path}", timeout=self.timeout, **kwargs)
        if reply.status_code == 404 and method == "GET":
            return None
        if reply.status_code >= 400:
            raise HandoffError(f"register_model: {method} {path}: {reply.status_code} {reply.text[:300]}")
        return reply.json()

    def registered_model(self, name: str, owner: str, description: str) -> dict:
        found = self._call("GET", "/registered_model", params={"name": name})
        return found or self._call("POST", "/registered_models",
                                   json={"name": name, "owner": owner, "description": description})

    def model_version(self, model_id: str, name: str, author: str, properties: dict) -> dict:
        found = self._call("GET", "/model_version", params={"name": name, "parentResourceId": model_id})
        return found or self._call("POST", "/model_versions",
                                   json={"name": name, "registeredModelId": model_id, "author": author,
                                         "customProperties": properties})

    def model_artifact(self, version_id: str, name: str, uri: str, properties: dict) -> dict:
        return self._call("POST", f"/model_versions/{version_id}/artifacts",
                          json={"artifactType": "model-artifact", "name": name, "uri": uri,
                                "modelFormatName": "huggingface", "modelFormatVersion": "transformers",
                                "customProperties": properties})


def register_model(section: dict, export_uri: str, evaluation: dict, run_id: str) -> dict:
    """Registered model `model_name` (created once), version = the run id, and a model artifact at the export
    URI; the evaluation's figures on the version and the artifact. A retry finds what it already made."""
    client = RegistryClient(section["server_address"], section.get("port", 8080),
                            os.environ.get(REGISTRY_TOKEN_ENV))
    name, author = section.get("model_name", "pugc-dpo"), section.get("author", "pugc")
    properties = registry_properties(evaluation, run_id)
    model = client.registered_model(name, author, "PUGC: DPO on preference pairs built from user-generated content")
    version = client.model_version(model["id"], run_id, author, properties)
    artifact = client.model_artifact(version["id"], f"{name}-{run_id}", export_uri, properties)
    log.info("register_model: %s version %s, artifact %s at %s", name, run_id, artifact.get("id"), export_uri)
    return {"registered_model_id": model["id"], "model_version_id": version["id"],
            "model_artifact_id": artifact.get("id", ""), "uri": export_uri}


# ------------------------------------------------------------------------------------- Hugging Face Hub
def upload_to_hub(section: dict, export_uri: str, model_card_path: str, pairs_path: str | None = None,
                  dataset_card_path: str | None = None, endpoint: str | None = None) -> dict:
    """Create the model repository if needed and upload the exported model with its card as README.md; with
    `dataset_repo_id`, the pairs and their card too. The token is HF_TOKEN (from handoff.hub.token_secret)."""
    import shutil
    import tempfile

    from huggingface_hub import HfApi

    token = os.environ.get(HUB_TOKEN_ENV)
    if not token:
        raise HandoffError(f"upload_to_hub: no {HUB_TOKEN_ENV}: handoff.hub.token_secret names the Kubernetes "
                           "Secret holding a Hub token with write access")
    api = HfApi(endpoint=endpoint, token=token)
    private = bool(section.get("private", True))
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(folder) / "model"
        _fetch_model(export_uri, model_dir)
        shutil.copyfile(model_card_path, model_dir / "README.md")
        repo = api.create_repo(section["repo_id"], private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=section["repo_id"], folder_path=model_dir,
                                   commit_message="PUGC: model that passed its evaluation gate",
                                   ignore_patterns=["_COMPLETE.json", "training_args.bin"])
        result = {"model_repo": str(repo), "model_commit": commit.oid}
        if section.get("dataset_repo_id") and pairs_path:
            data_dir = Path(folder) / "pairs"
            data_dir.mkdir()
            shutil.copyfile(pairs_path, data_dir / "preference_pairs.jsonl")
            if dataset_card_path:
                shutil.copyfile(dataset_card_path, data_dir / "README.md")
            api.create_repo(section["dataset_repo_id"], repo_type="dataset", private=private, exist_ok=True)
            result["dataset_commit"] = api.upload_folder(repo_id=section["dataset_repo_id"], repo_type="dataset",
                                                         folder_path=data_dir,
                                                         commit_message="PUGC preference pairs").oid
    log.info("upload_to_hub: %s", result)
    return result


def _fetch_model(uri: str, folder: Path) -> None:
    from pugc.gcs import download_model, is_gcs

    if is_gcs(uri):
        download_model(uri, folder)
    else:
        import shutil

        shutil.copytree(uri, folder)


# -------------------------------------------------------------------------------------------------- KServe
def inference_service(section: dict, storage_uri: str, run_id: str, served_name: str) -> dict:
    """A serving.kserve.io/v1beta1 InferenceService for the exported model with vLLM: KServe's Hugging Face
    runtime on its vLLM backend, or (`runtime_image`) a container running `vllm serve` on the files KServe's
    storage initializer downloads (the STORAGE_URI variable asks for them)."""
    gpu = str(section.get("gpu", 1))
    resources = {"limits": {"cpu": section.get("cpu", "4"), "memory": section.get("memory", "32Gi"),
                            section.get("gpu_resource", "nvidia.com/gpu"): gpu},
                 "requests": {"cpu": section.get("cpu", "4"), "memory": section.get("memory", "32Gi"),
                              section.get("gpu_resource", "nvidia.com/gpu"): gpu}}
    max_len = section.get("max_model_len")
    if section.get("runtime_image"):
        args = [MODEL_MOUNT, "--served-model-name", served_name, "--port", str(VLLM_PORT),
                "--tensor-parallel-size", gpu] + (["--max-model-len", str(max_len)] if max_len else [])
        predictor: dict = {"containers": [{
            "name": "kserve-container", "image": section["runtime_image"], "command": ["vllm", "serve"],
            "args": args, "env": [{"name": "STORAGE_URI", "value": storage_uri}],
            "ports": [{"containerPort": VLLM_PORT, "protocol": "TCP"}], "resources": resources}]}
    else:
        args = [f"--model_name={served_name}", "--backend=vllm", f"--tensor-parallel-size={gpu}"]
        args += [f"--max-model-len={max_len}"] if max_len else []
        predictor = {"model": {"modelFormat": {"name": "huggingface"}, "storageUri": storage_uri, "args": args,
                               "resources": resources}}
    if section.get("service_account"):
        predictor["serviceAccountName"] = section["service_account"]
    if section.get("canary_traffic_percent") is not None:
        predictor["canaryTrafficPercent"] = int(section["canary_traffic_percent"])
    return {"apiVersion": f"{ISVC_GROUP}/{ISVC_VERSION}", "kind": "InferenceService",
            "metadata": {"name": section["name"], "namespace": section["namespace"],
                         "labels": {"app.kubernetes.io/part-of": "pugc", "pugc/run-id": _label(run_id)}},
            "spec": {"predictor": predictor}}


def _label(value: str) -> str:
    """A Kubernetes label value: at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in value)[:63]
    return cleaned.strip("-_.") or "unknown"


def apply_inference_service(manifest: dict) -> dict:
    """Create the InferenceService, or replace the spec of an existing one (a new revision: with
    canaryTrafficPercent KServe sends that share of traffic to it). The API server validates it strictly
    against the installed CRD. In-cluster credentials (the task's service account), else the kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api = client.CustomObjectsApi()
    meta = manifest["metadata"]
    common = dict(group=ISVC_GROUP, version=ISVC_VERSION, namespace=meta["namespace"], plural=ISVC_PLURAL)
    try:
        current = api.get_namespaced_custom_object(name=meta["name"], **common)
    except client.ApiException as error:
        if error.status != 404:
            raise HandoffError(f"serve_model: reading InferenceService {meta['namespace']}/{meta['name']}: "
                               f"{error.status} {error.reason}") from None
        return api.create_namespaced_custom_object(body=manifest, field_validation="Strict", **common)
    manifest = {**manifest, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
    return api.replace_namespaced_custom_object(name=meta["name"], body=manifest, field_validation="Strict",
                                                **common)


def serve_model(section: dict, export_uri: str, run_id: str, manifest_path: str) -> dict:
    """Render the InferenceService to `manifest_path` (YAML); apply it only with `apply: true`."""
    import yaml

    served_name = section["name"]
    manifest = inference_service(section, export_uri, run_id, served_name)
    Path(manifest_path).write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    if not section.get("apply"):
        log.info("serve_model: InferenceService %s rendered, not applied (handoff.kserve.apply: false)",
                 served_name)
        return {"applied": False, "name": served_name}
    created = apply_inference_service(manifest)
    log.info("serve_model: InferenceService %s/%s applied", section["namespace"], served_name)
    return {"applied": True, "name": served_name, "uid": (created.get("metadata") or {}).get("uid", "")}


def read_json(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
