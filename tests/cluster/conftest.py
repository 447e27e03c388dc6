import socket

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_emulator():
    """gcp-storage-emulator on loopback, in memory; the real google-cloud-storage client talks to it over HTTP."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    mp = pytest.MonkeyPatch()
    mp.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    from pugc import gcs

    gcs.client.cache_clear()
    yield gcs.client()
    gcs.client.cache_clear()
    mp.undo()
    server.stop()


@pytest.fixture()
def bucket(gcs_emulator, request):
    import hashlib

    name = f"pugc-{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]}"
    return gcs_emulator.create_bucket(name)
