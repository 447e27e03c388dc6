"""The hand-off after the gate (pugc.handoff): the Model Registry registration against a loopback server that
speaks the registry's REST API, the Hub upload by huggingface_hub itself against a loopback Hub, the KServe InferenceService rendered and validated against KServe's CRD schema
(manifests/schemas), and all of it compiled under exactly the export's conditions."""
import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from pugc.config import load_recipe
from pugc.handoff import REGISTRY_API, inference_service, register_model, serve_model
from pugc.pipelines.local import compile_pipeline
from tests.cluster.loopback import JsonHandler, LoopbackServer

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "manifests" / "schemas" / "inferenceservice-v1beta1.json"
EXPORT_URI = "gs://models/pugc/exported/v3"
EVALUATION = {"win_rate": 0.62, "lc_win_rate": 0.58, "win": 10, "tie": 5, "lose": 5, "prompts": 20,
              "evaluator": {"model": "gpt-4-turbo", "revision": None}, "self_judged": False,
              "gate": {"passed": True, "reason": "win_rate 0.620 >= 0.5"}}


class Registry(JsonHandler):
    """The registry endpoints a registration calls: find-by-name, create, and a version's artifacts."""
    store: dict = {}

    def _reply(self, kind: str, params: dict):
        match = [o for o in self.store[kind] if o["name"] == params.get("name", [""])[0]
                 and ("parentResourceId" not in params or o.get("registeredModelId") == params["parentResourceId"][0])]
        self.send_json(200, match[0]) if match else self.send_json(404, {"code": "404", "message": "not found"})

    def do_GET(self):
        url = urlparse(self.path)
        kind = {"/registered_model": "registered_models", "/model_version": "model_versions"}[
            url.path.removeprefix(REGISTRY_API)]
        self._reply(kind, parse_qs(url.query))

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.store["headers"].append(self.headers.get("Authorization"))
        path = urlparse(self.path).path.removeprefix(REGISTRY_API)
        if path.startswith("/model_versions/") and path.endswith("/artifacts"):
            kind, body = "artifacts", {**body, "modelVersionId": path.split("/")[2]}
        else:
            kind = path.strip("/")
        created = {**body, "id": str(sum(len(v) for v in self.store.values()) + 1)}
        self.store[kind].append(created)
        self.send_json(201, created)


@pytest.fixture
def registry():
    Registry.store = {"registered_models": [], "model_versions": [], "artifacts": [], "headers": []}
    with LoopbackServer(Registry) as server:
        yield server, Registry.store


def test_registration_creates_the_model_a_version_and_an_artifact_at_the_export_uri(registry, monkeypatch):
    server, store = registry
    monkeypatch.setenv("MODEL_REGISTRY_TOKEN", "t0ken")
    host, port = server.url.rsplit(":", 1)
    section = {"server_address": host, "port": int(port), "model_name": "pugc-mistral", "author": "ml-team"}
    result = register_model(section, EXPORT_URI, EVALUATION, run_id="run-42")
    (model,), (version,), (artifact,) = store["registered_models"], store["model_versions"], store["artifacts"]
    assert model["name"] == "pugc-mistral" and model["owner"] == "ml-team"
    assert version["name"] == "run-42" and version["registeredModelId"] == model["id"]
    assert artifact["uri"] == EXPORT_URI and artifact["artifactType"] == "model-artifact"
    assert artifact["modelVersionId"] == version["id"]
    properties = artifact["customProperties"]
    assert properties["win_rate"] == {"metadataType": "MetadataDoubleValue", "double_value": 0.62}
    assert properties["evaluator"] == {"metadataType": "MetadataStringValue", "string_value": "gpt-4-turbo"}
    assert properties["self_judged"] == {"metadataType": "MetadataBoolValue", "bool_value": False}
    assert "evaluator_revision" not in properties  # no revision: left out, never a null
    assert version["customProperties"] == properties
    assert set(store["headers"]) == {"Bearer t0ken"}
    assert result == {"registered_model_id": model["id"], "model_version_id": version["id"],
                      "model_artifact_id": artifact["id"], "uri": EXPORT_URI}
    register_model(section, EXPORT_URI, EVALUATION, run_id="run-43")  # the next run: a new version, same model
    assert len(store["registered_models"]) == 1 and [v["name"] for v in store["model_versions"]] == ["run-42", "run-43"]


def test_a_registry_that_refuses_fails_the_task_with_its_answer():
    from pugc.handoff import HandoffError

    class Refuses(JsonHandler):
        def do_GET(self):
            self.send_json(503, {"message": "database unavailable"})

    with LoopbackServer(Refuses) as server:
        host, port = server.url.rsplit(":", 1)
        with pytest.raises(HandoffError, match="register_model: GET /registered_model: 503 .*database unavailable"):
            register_model({"server_address": host, "port": int(port)}, EXPORT_URI, EVALUATION, "r")


def check_jsonschema(path: Path) -> subprocess.CompletedProcess:
    tool = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run([str(tool) if tool.exists() else shutil.which("check-jsonschema"), "--schemafile",
                           str(SCHEMA), str(path)], capture_output=True, text=True)


KSERVE = {"name": "pugc-canary", "namespace": "models", "gpu": 2, "cpu": "8", "memory": "48Gi",
          "max_model_len": 4096, "canary_traffic_percent": 10, "service_account": "model-reader", "apply": False}


@pytest.mark.parametrize("runtime_image", [None, "vllm/vllm-openai:v0.33.0"])
def test_the_inference_service_renders_and_validates_against_kserves_schema(tmp_path, runtime_image):
    section = {**KSERVE, **({"runtime_image": runtime_image} if runtime_image else {})}
    path = tmp_path / "isvc.yaml"
    result = serve_model(section, EXPORT_URI, "pugc-2026-12-04-17-47-14-608289", str(path))
    assert result == {"applied": False, "name": "pugc-canary"}  # apply: false renders only
    manifest = yaml.safe_load(path.read_text())
    predictor = manifest["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10 and predictor["serviceAccountName"] == "model-reader"
    if runtime_image:
        (container,) = predictor["containers"]
        assert container["command"] == ["vllm", "serve"] and container["args"][0] == "/mnt/models"
        assert {"name": "STORAGE_URI", "value": EXPORT_URI} in container["env"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    else:
        model = predictor["model"]
        assert model["modelFormat"] == {"name": "huggingface"} and model["storageUri"] == EXPORT_URI
        assert "--backend=vllm" in model["args"] and "--max-model-len=4096" in model["args"]
    checked = check_jsonschema(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_catches_a_misspelt_field(tmp_path):
    manifest = inference_service(KSERVE, EXPORT_URI, "r", "pugc-canary")
    manifest["spec"]["predictor"]["model"]["storageURI"] = manifest["spec"]["predictor"]["model"].pop("storageUri")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(manifest))
    checked = check_jsonschema(path)
    assert checked.returncode != 0 and "storageURI" in checked.stdout + checked.stderr


HANDOFF = ["dpo_training.export_uri=gs://models/pugc/exported",
           "handoff.model_registry={server_address: http://model-registry.kubeflow, model_name: pugc, "
           "token_secret: registry-token}",
           "handoff.hub={repo_id: me/pugc, token_secret: hub-token, dataset_repo_id: me/pugc-pairs}",
           "handoff.kserve={name: pugc-canary, namespace: models, apply: true}"]


def _compiled(tmp_path, overrides):
    path = compile_pipeline(load_recipe("paper", overrides), tmp_path / "p.yaml", "kfp")
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[0], docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.mark.parametrize("safety", [False, True])
def test_the_handoff_runs_under_exactly_the_exports_conditions_after_it(tmp_path, safety):
    extra = ["evaluation.safety.prompts=[gs://b/safety_prompts.jsonl]",
             "evaluation.gate.max_harm_rate_increase=0.0"] if safety else []
    spec, executors = _compiled(tmp_path, HANDOFF + extra)
    by_name = {t["taskInfo"]["name"]: t for t in spec["root"]["dag"]["tasks"].values()}
    assert not {"export_model", "register_model", "upload_to_hub", "serve_model"} & set(by_name)
    inner = spec["components"][by_name["gate-passed"]["componentRef"]["name"]]["dag"]["tasks"]
    if safety:
        (condition,) = inner.values()
        assert condition["taskInfo"]["name"] == "safety-passed"
        inner = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    names = {t["taskInfo"]["name"]: t for t in inner.values()}
    assert set(names) == {"export_model", "register_model", "upload_to_hub", "serve_model"}
    for name in ("register_model", "upload_to_hub", "serve_model"):  # after the export, on what it exported
        assert names[name]["dependentTasks"] == ["export-model"]
        assert names[name]["inputs"]["artifacts"]["exported"]["taskOutputArtifact"]["producerTask"] == "export-model"
    card = names["export_model"]["inputs"]["artifacts"]["model_card"]  # from run_summary, into the condition
    assert card["componentInputArtifact"].endswith("run-summary-model_card")
    assert executors["exec-upload-to-hub"]["secretAsEnv"][0]["secretName"] == "hub-token"
    assert executors["exec-upload-to-hub"]["secretAsEnv"][0]["keyToEnv"] == [{"secretKey": "token",
                                                                             "envVar": "HF_TOKEN"}]
    assert executors["exec-register-model"]["secretAsEnv"][0]["secretName"] == "registry-token"
    assert "secretAsEnv" not in executors.get("exec-serve-model", {})


def test_without_a_handoff_section_only_the_export_is_under_the_gate(tmp_path):
    spec, _ = _compiled(tmp_path, ["dpo_training.export_uri=gs://models/pugc/exported"])
    by_name = {t["taskInfo"]["name"]: t for t in spec["root"]["dag"]["tasks"].values()}
    inner = spec["components"][by_name["gate-passed"]["componentRef"]["name"]]["dag"]["tasks"]
    assert [t["taskInfo"]["name"] for t in inner.values()] == ["export_model"]


def test_a_handoff_without_an_export_uri_fails_naming_the_keys():
    from pugc.config import ConfigError

    with pytest.raises(ConfigError, match="handoff.kserve .*dpo_training.export_uri"):
        load_recipe("paper", ["handoff.kserve={name: x, namespace: y}"])


class Hub(JsonHandler):
    """The Hugging Face Hub endpoints `HfApi.create_repo` and `upload_folder` call (repo creation, the README's
    YAML check, pre-upload modes, the NDJSON commit), storing what was committed; every file is sent inline
    ("regular" upload mode), so no LFS or Xet transfer is involved. The README's metadata is checked with the
    Hub library's own card parser, as the Hub checks it."""
    repos: dict = {}
    files: dict = {}
    tokens: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Hub.tokens.append(self.headers.get("Authorization"))
        if self.path == "/api/repos/create":
            spec = json.loads(body)
            repo = f"{spec['organization']}/{spec['name']}" if spec.get("organization") else spec["name"]
            Hub.repos[repo] = spec
            return self.send_json(200, {"url": f"{self.url}/{repo}"})
        if self.path == "/api/validate-yaml":
            from huggingface_hub import DatasetCard, ModelCard

            spec = json.loads(body)
            try:
                (DatasetCard if spec["repoType"] == "dataset" else ModelCard)(spec["content"])
            except Exception as exc:  # the Hub answers a card it cannot read with 400 and the reason
                return self.send_json(400, {"error": str(exc)})
            return self.send_json(200, {"errors": [], "warnings": []})
        _, _, kind, owner, name, action, _ = (self.path.split("/") + [""])[:7]
        if action == "preupload":
            return self.send_json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in json.loads(body)["files"]]})
        if action == "commit":
            import base64

            for line in body.decode().splitlines():
                op = json.loads(line)
                if op["key"] == "file":
                    Hub.files[(kind, f"{owner}/{name}", op["value"]["path"])] = base64.b64decode(op["value"]["content"])
            return self.send_json(200, {"commitUrl": f"{self.url}/{owner}/{name}/commit/{'c' * 40}",
                                        "commitOid": "c" * 40})
        self.send_json(404, {"error": f"no route {self.path}"})


def test_the_upload_puts_the_model_its_card_and_the_pairs_with_theirs_on_the_hub(tmp_path, monkeypatch):
    from pugc.cards import dataset_card, model_card
    from pugc.handoff import upload_to_hub
    from tests.unit.test_cards import HANDOFF, TRAINING, summary

    exported = tmp_path / "exported"
    exported.mkdir()
    (exported / "config.json").write_text('{"model_type": "llama"}')
    (exported / "_COMPLETE.json").write_text("{}")  # the export's marker: not for the Hub
    (tmp_path / "README.md").write_text(model_card(summary(), TRAINING, HANDOFF, run_id="run-7"))
    (tmp_path / "pairs.md").write_text(dataset_card(summary(), "run-7"))
    (tmp_path / "pairs.jsonl").write_text('{"prompt": [], "chosen": [], "rejected": []}\n')
    monkeypatch.setenv("HF_TOKEN", "hf_write_token")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the tests' offline guard, for this server
    Hub.repos, Hub.files, Hub.tokens = {}, {}, []
    with LoopbackServer(Hub) as server:
        Hub.url = server.url
        result = upload_to_hub({**HANDOFF["hub"], "private": True}, str(exported), str(tmp_path / "README.md"),
                               str(tmp_path / "pairs.jsonl"), str(tmp_path / "pairs.md"), endpoint=server.url)
    assert result["model_commit"] == result["dataset_commit"] == "c" * 40
    # private as asked (huggingface_hub 2 sends it as the repository's visibility)
    assert {repo: spec.get("visibility", "private" if spec.get("private") else None) for repo, spec in
            Hub.repos.items()} == {"me/pugc-model": "private", "me/pugc-pairs": "private"}
    assert set(Hub.files) == {("models", "me/pugc-model", "config.json"), ("models", "me/pugc-model", "README.md"),
                              ("datasets", "me/pugc-pairs", "preference_pairs.jsonl"),
                              ("datasets", "me/pugc-pairs", "README.md")}
    assert Hub.files[("models", "me/pugc-model", "README.md")] == (tmp_path / "README.md").read_bytes()
    assert set(Hub.tokens) == {"Bearer hf_write_token"}


def test_the_upload_without_a_token_says_which_secret(tmp_path, monkeypatch):
    from pugc.handoff import HandoffError, upload_to_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(HandoffError, match="no HF_TOKEN: handoff.hub.token_secret"):
        upload_to_hub({"repo_id": "me/m"}, str(tmp_path), str(tmp_path / "README.md"))
