"""A loopback HTTP server that plays the Kubernetes API for Kubeflow Trainer TrainJobs
(trainer.kubeflow.org/v1alpha1): create (201, or 409 AlreadyExists), get, delete (a Status), and the job's pods
with their logs. Each GET of the job moves it one step along `script`, a list of status conditions, the way
the Trainer controller would."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from tests.cluster.kube_api import meta, status
from tests.cluster.loopback import JsonHandler, LoopbackServer

PREFIX = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/"
CREATED = {"type": "Created", "status": "True", "reason": "JobSetCreated", "message": "JobSet created"}
COMPLETE = {"type": "Complete", "status": "True", "reason": "JobSetCompleted", "message": "JobSet completed"}


def failed(reason: str, message: str) -> dict:
    return {"type": "Failed", "status": "True", "reason": reason, "message": message}


class TrainerApiServer(LoopbackServer):
    def __init__(self, script: list[list[dict]], pod_log: str = "step 4/4 loss 0.69\n"):
        self.script, self.pod_log = script, pod_log
        self.jobs: dict[str, dict] = {}
        self.gets: dict[str, int] = {}
        self.created: list[dict] = []
        self.deleted: list[str] = []
        server = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_json(*server.create(urlsplit(self.path).path, body))

            def do_GET(self):
                url = urlsplit(self.path)
                self.send_json(*server.get(url.path, parse_qs(url.query)))

            def do_DELETE(self):
                self.send_json(*server.delete(urlsplit(self.path).path))

        super().__init__(Handler)

    def create(self, path: str, body: dict):
        name = body["metadata"]["name"]
        key = f"{path}/{name}"
        if key in self.jobs:
            return 409, status(409, "AlreadyExists", f'trainjobs.trainer.kubeflow.org "{name}" already exists', name, "trainjobs")
        self.created.append(body)
        stored = json.loads(json.dumps(body))
        stored["metadata"] = {**meta(name, body["metadata"]["namespace"]), **body["metadata"]}
        stored["status"] = {}
        self.jobs[key], self.gets[key] = stored, 0
        return 201, stored

    def get(self, path: str, query: dict):
        if path.startswith("/api/v1/namespaces/") and path.endswith("/pods"):
            job = query["labelSelector"][0].split("=", 1)[1]
            items = [{"kind": "Pod", "apiVersion": "v1", "metadata": meta(f"{job}-node-{i}-0", path.split("/")[4])}
                     for i in range(2)]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        if path.endswith("/log"):
            return 200, self.pod_log, "text/plain"
        if path not in self.jobs:
            return 404, status(404, "NotFound", "trainjob not found", path.rsplit("/", 1)[-1], "trainjobs")
        step = min(self.gets[path], len(self.script) - 1)
        self.gets[path] += 1
        self.jobs[path]["status"] = {"conditions": self.script[step]}
        return 200, self.jobs[path]

    def delete(self, path: str):
        self.deleted.append(path.rsplit("/", 1)[-1])
        self.jobs.pop(path, None)
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    def client(self):
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

