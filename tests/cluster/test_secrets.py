"""The Hugging Face token on Vertex AI: read from Secret Manager at run time (a loopback server speaking its
REST path), never compiled in and never logged."""
import base64
import logging

import pytest

from pugc.secrets import HF_TOKEN_SECRET_ENV, SecretUnavailable, access_secret, load_hf_token

from tests.cluster.loopback import JsonHandler, LoopbackServer

SECRETS = {"projects/p/secrets/hf-token/versions/latest": "PLANTED-hf-secret-value\n"}


class SecretManager(JsonHandler):
    def do_GET(self):  # noqa: N802  (http.server's naming)
        name = self.path.removeprefix("/v1/").removesuffix(":access")
        if self.path.endswith(":access") and name in SECRETS:
            body = {"name": name, "payload": {"data": base64.b64encode(SECRETS[name].encode()).decode()}}
            self.send_json(200, body)
        else:
            self.send_json(404, {"error": {"code": 404, "message": f"Secret [{name}] not found or has no versions.",
                                        "status": "NOT_FOUND"}})


@pytest.fixture()
def secret_manager(monkeypatch):
    with LoopbackServer(SecretManager) as server:
        monkeypatch.setenv("SECRET_MANAGER_EMULATOR_HOST", server.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield


def test_the_token_named_by_the_task_is_read_at_start_and_not_logged(secret_manager, monkeypatch, caplog):
    monkeypatch.setenv(HF_TOKEN_SECRET_ENV, "projects/p/secrets/hf-token")
    with caplog.at_level(logging.INFO):
        load_hf_token()
    import os

    assert os.environ["HF_TOKEN"] == "PLANTED-hf-secret-value"
    assert "PLANTED" not in caplog.text and "projects/p/secrets/hf-token" in caplog.text


def test_a_token_already_given_wins_and_no_secret_means_no_call(secret_manager, monkeypatch):
    import os

    monkeypatch.setenv("HF_TOKEN", "from-the-environment")
    monkeypatch.setenv(HF_TOKEN_SECRET_ENV, "projects/p/secrets/missing")
    load_hf_token()  # the missing secret is never asked for
    assert os.environ["HF_TOKEN"] == "from-the-environment"


def test_a_missing_secret_says_which_and_what_to_check(secret_manager):
    with pytest.raises(SecretUnavailable) as info:
        access_secret("projects/p/secrets/missing")
    message = str(info.value)
    assert "projects/p/secrets/missing/versions/latest: HTTP 404" in message and "secretAccessor" in message
