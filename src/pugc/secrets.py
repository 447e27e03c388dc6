"""Secrets a task reads at run time, never compiled into a pipeline.

On Kubeflow the Hugging Face token reaches a task as an environment variable from a Kubernetes Secret. Vertex
AI has no Kubernetes Secrets: there the compiled task carries only the Secret Manager name of the token
(`PUGC_HF_TOKEN_SECRET`), and the task reads the value with its own service account when it starts.
"""
from __future__ import annotations

import base64
import logging
import os

log = logging.getLogger(__name__)

HF_TOKEN_SECRET_ENV = "PUGC_HF_TOKEN_SECRET"
EMULATOR_ENV = "SECRET_MANAGER_EMULATOR_HOST"  # http://127.0.0.1:PORT in tests; unauthenticated
API = "https://secretmanager.googleapis.com"


class SecretUnavailable(RuntimeError):
    """A secret could not be read; the message names it and says why (never its value)."""


def load_hf_token() -> None:
    """Set HF_TOKEN from Secret Manager when the task names a secret and has no token yet."""
    name = os.environ.get(HF_TOKEN_SECRET_ENV)
    if name and not os.environ.get("HF_TOKEN"):
        os.environ["HF_TOKEN"] = access_secret(name)
        log.info("HF_TOKEN read from Secret Manager (%s)", name)


def access_secret(name: str) -> str:
    """The value of projects/P/secrets/S[/versions/V] (latest version when none is named)."""
    if "/versions/" not in name:
        name = f"{name}/versions/latest"
    emulator = os.environ.get(EMULATOR_ENV)
    session = _plain_session() if emulator else _authorized_session()
    url = f"{(emulator or API).rstrip('/')}/v1/{name}:access"
    try:
        reply = session.get(url, timeout=30)
    except Exception as exc:  # noqa: BLE001  (any transport failure reads the same to the user)
        raise SecretUnavailable(f"Secret Manager {name}: unreachable: {exc}") from None
    if reply.status_code != 200:
        message = reply.json().get("error", {}).get("message", "") if _is_json(reply) else reply.text[:200]
        raise SecretUnavailable(f"Secret Manager {name}: HTTP {reply.status_code}: {message} (does the task's "
                                f"service account have roles/secretmanager.secretAccessor on it?)")
    return base64.b64decode(reply.json()["payload"]["data"]).decode("utf-8").strip()


def _is_json(reply) -> bool:
    return reply.headers.get("Content-Type", "").startswith("application/json")


def _plain_session():
    import requests

    return requests.Session()


def _authorized_session():
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return AuthorizedSession(credentials)
