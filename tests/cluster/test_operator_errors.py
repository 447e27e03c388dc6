"""Operator commands fail in one line with the fix, and "could not ask" (exit 2) is never read as a run's
outcome (0 passed, 1 failed, 3 gate failed, 4 not ended): an unreachable host, an unknown run id, a local run's
id, refused credentials, a Vertex dry run without a project. A waiting poll asks again after a missed poll."""
import socket

import pytest

from pugc.cli import main
from tests.cluster.loopback import JsonHandler, LoopbackServer
from tests.cluster.test_submit import summary_with_gate, wait_cli, write_summary_on_end


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once the socket is closed


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_an_unreachable_host_is_could_not_ask(capsys):
    assert main(["status", "some-run", "--host", closed_port_url()]) == 2
    line = one_line(capsys)
    assert line.startswith("pugc: cannot reach Kubeflow Pipelines at http://127.0.0.1:") and "port-forward" in line


def test_an_unknown_run_id_is_could_not_ask(capsys):
    from tests.cluster.kfp_api import KFPApiServer

    with KFPApiServer(multi_user=False) as server:
        assert main(["status", "bogus-id", "--host", server.url]) == 2
    line = one_line(capsys)
    assert f"{server.url} has no run 'bogus-id' (404" in line and "Runs list" in line


def test_a_local_run_id_points_at_its_summary(capsys, tmp_path, monkeypatch):
    from tests.cluster.kfp_api import KFPApiServer

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "tiny-20261204-0001").mkdir(parents=True)
    with KFPApiServer(multi_user=False) as server:
        assert main(["status", "tiny-20261204-0001", "--host", server.url]) == 2
    assert "is a local run" in one_line(capsys)


class Refusing(JsonHandler):
    def do_GET(self):
        self.send_json(401, {"error": "unauthorized", "code": 16, "message": "token expired"})


def test_refused_credentials_are_could_not_ask(capsys):
    with LoopbackServer(Refusing) as server:
        assert main(["status", "some-run", "--host", server.url]) == 2
    line = one_line(capsys)
    assert "refused the credentials (401" in line and "refresh the token" in line


def test_a_vertex_dry_run_without_a_project_says_how_to_name_one(capsys, monkeypatch):
    for name in ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PUGC_IMAGE_REGISTRY", "europe-docker.pkg.dev/p/pugc")
    code = main(["submit", "--recipe", "tiny", "--target", "vertex", "--dry-run", "--pipeline-root", "gs://b/root",
                 "--input", "gs://b/ugc.jsonl"])
    assert code == 2
    assert "pass --project PROJECT" in one_line(capsys)


def test_a_waiting_poll_asks_again_after_a_missed_poll(capsys, bucket, tmp_path, monkeypatch):
    """A network blip in the middle of `submit --wait` is a warning, not the end of the wait."""
    from pugc.pipelines import submit
    from tests.cluster.kfp_api import KFPApiServer

    real, missed = submit.kfp_client, []
    with KFPApiServer(multi_user=False) as server:
        def flaky(plan, token=None):
            if server.state.runs and len(missed) < 2:  # the first two polls after submission cannot reach the API
                missed.append(1)
                raise OSError("Connection reset by peer")
            return real(plan, token)

        monkeypatch.setattr(submit, "kfp_client", flaky)
        write_summary_on_end(server, bucket, summary_with_gate(True))
        code, out = wait_cli(capsys, server, bucket, tmp_path, "--wait")
    assert code == 0, out.err
    misses = [line for line in out.err.splitlines() if "could not ask about run" in line]
    assert len(misses) == 2 and "(1 of 5 in a row)" in misses[0] and "Connection reset by peer" in misses[0]


@pytest.mark.parametrize("status, words", [(500, "answered 500"), (400, "has no run")])
def test_other_api_answers_are_could_not_ask_with_what_was_said(status, words):
    from pugc.pipelines.run_status import api_refusal

    assert words in api_refusal(status, "Internal", "http://kfp", "r1", "runs")
