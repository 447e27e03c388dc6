"""A loopback HTTP server that speaks the Kubernetes core/v1 REST paths `pugc preflight` reads, with objects
shaped as a real API server returns them (kind, apiVersion, metadata with uid/resourceVersion/
creationTimestamp, status), NotFound as a `Status` object with reason NotFound and code 404, Forbidden as
one with code 403, and `labelSelector` (equality terms) on the node list. The real `kubernetes` client
reaches it through a generated kube config.
"""
from __future__ import annotations

import base64
import socket
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.cluster.loopback import JsonHandler, LoopbackServer

CREATED = "2026-11-20T08:00:00Z"
PLURAL = {"Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "Secret": "secrets",
          "PersistentVolumeClaim": "persistentvolumeclaims", "Node": "nodes"}


def meta(name: str, namespace: str | None = None, labels: dict | None = None) -> dict:
    data = {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": "4711", "creationTimestamp": CREATED}
    if namespace:
        data["namespace"] = namespace
    if labels:
        data["labels"] = labels
    return data


def namespace(name: str) -> dict:
    return {"kind": "Namespace", "apiVersion": "v1",
            "metadata": meta(name, labels={"kubernetes.io/metadata.name": name}),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def service_account(ns: str, name: str, annotations: dict[str, str] | None = None) -> dict:
    metadata = meta(name, ns)
    if annotations:
        metadata["annotations"] = annotations
    return {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": metadata}


def secret(ns: str, name: str, string_data: dict[str, str]) -> dict:
    data = {key: base64.b64encode(value.encode()).decode() for key, value in string_data.items()}
    return {"kind": "Secret", "apiVersion": "v1", "metadata": meta(name, ns), "data": data, "type": "Opaque"}


def pvc(ns: str, name: str, phase: str = "Bound") -> dict:
    claim = {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "metadata": meta(name, ns),
             "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Ti"}},
                      "storageClassName": "standard-rwx", "volumeMode": "Filesystem"},
             "status": {"phase": phase}}
    if phase == "Bound":
        claim["spec"]["volumeName"] = "pvc-6f1c2a5e-0b7d-4a51-9d43-1c2e3f4a5b6c"
        claim["status"].update(accessModes=["ReadWriteMany"], capacity={"storage": "1Ti"})
    return claim


def node(name: str, labels: dict[str, str], gpus: int = 0) -> dict:
    allocatable = {"cpu": "207", "memory": "1850Gi", "pods": "110"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    return {"kind": "Node", "apiVersion": "v1", "metadata": meta(name, labels={"kubernetes.io/hostname": name, **labels}),
            "spec": {"providerID": f"gce://project/zone/{name}"},
            "status": {"allocatable": allocatable, "capacity": dict(allocatable),
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": CREATED, "lastTransitionTime": CREATED}]}}


def status(code: int, reason: str, message: str, name: str = "", kind: str = "") -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": {"name": name, "kind": kind}, "code": code}


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def matches(labels: dict, selector: str) -> bool:
    terms = [term.split("=", 1) for term in selector.split(",") if term]
    return all(labels.get(key) == value for key, value in terms)


class KubeApiServer(LoopbackServer):
    """`with KubeApiServer() as api: api.add(namespace("kubeflow")); api.kubeconfig(tmp_path)`."""

    def __init__(self):
        self.objects: dict[str, dict] = {}  # API path -> object
        self.forbidden: set[str] = set()  # plural resources this user may not read
        self.requests: list[tuple[str, dict]] = []  # (path, query) as received
        self.authorizations: list[str] = []
        server = self

        class Handler(JsonHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                server.requests.append((url.path, {k: v[0] for k, v in parse_qs(url.query).items()}))
                server.authorizations.append(self.headers.get("Authorization", ""))
                self.send_json(*server.answer(url.path, parse_qs(url.query)))

        super().__init__(Handler)

    def add(self, *objects: dict) -> "KubeApiServer":
        for obj in objects:
            plural, md = PLURAL[obj["kind"]], obj["metadata"]
            prefix = f"/api/v1/namespaces/{md['namespace']}" if "namespace" in md else "/api/v1"
            self.objects[f"{prefix}/{plural}/{md['name']}"] = obj
        return self

    def add_at(self, path: str, obj: dict) -> "KubeApiServer":
        """An object of another API group, at its full path (a CRD, a cluster-scoped custom object)."""
        self.objects[path] = obj
        return self

    def answer(self, path: str, query: dict) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        plural = parts[-2] if len(parts) > 3 else parts[-1]
        if plural in self.forbidden:
            return 403, status(403, "Forbidden", f'{plural} is forbidden: User "tester" cannot get resource '
                               f'"{plural}" in API group ""', kind=plural)
        if path == "/api/v1/nodes":
            selector = (query.get("labelSelector") or [""])[0]
            items = [o for p, o in self.objects.items() if p.startswith("/api/v1/nodes/")
                     and matches(o["metadata"].get("labels", {}), selector)]
            return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "4711"},
                         "items": items}
        if path in self.objects:
            return 200, self.objects[path]
        return 404, status(404, "NotFound", f'{plural} "{parts[-1]}" not found', parts[-1], plural)

    def kubeconfig(self, folder: Path, token: str = "PLANTED-kube-token") -> Path:
        """A kube config whose current context is this server, plus a context `elsewhere` nobody listens on."""
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "loopback", "preferences": {},
                  "clusters": [{"name": "loopback", "cluster": {"server": self.url}},
                               {"name": "elsewhere", "cluster": {"server": f"http://127.0.0.1:{unused_port()}"}}],
                  "users": [{"name": "tester", "user": {"token": token}}],
                  "contexts": [{"name": "loopback", "context": {"cluster": "loopback", "user": "tester"}},
                               {"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "tester"}}]}
        path = Path(folder) / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path

