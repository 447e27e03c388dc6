"""One end-to-end run of the screens, shared by the tests that read it (test_safety_screen_run,
test_personal_data_run): `pugc run` on the sample slice plus planted unsafe documents and documents full of
planted personal data, the generator served over HTTP by the tiny generator's own weights except for the safety
screen's question, which gets a planted verdict (a random tiny model's verdict says nothing). Every document
reaches the screens (ugc_filter off); the default `redact` applies to personal data. One run instead of one per
module: each costs about a minute here."""
import contextlib
import io
import json
import time
from pathlib import Path

import pytest

SCREEN = "content-safety reviewer"  # the safety_screen prompt's system message, and no other prompt's
MARKER = "PLANTED-UNSAFE"
DATA = Path(__file__).resolve().parents[1] / "data"


def planted_verdicts(server, asked: list[bool]):
    """The server's reply to the screen's question: yes for a planted unsafe document, no for any other; every
    other request is the tiny generator's own."""
    original = server.complete

    def complete(body: dict) -> dict:
        messages = json.dumps(body["messages"])
        if SCREEN not in messages:
            return original(body)
        asked.append(MARKER in messages)
        verdict = "yes" if MARKER in messages else "no"
        return {"id": "planted", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": verdict}}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1}}
    return complete


def planted_personal_data_lines() -> list[str]:
    from tests.planted_pii import NOT_PERSONAL, PLANTED, planted_documents

    planted = [{"id": f"planted-{kind}", "text": text} for kind, text in
               zip(PLANTED, planted_documents("Descaling a kettle with vinegar works; rinse it three times."))]
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in planted]
    return lines + [json.dumps({"id": f"look-alike-{i}", "text": text}) + "\n" for i, text in enumerate(NOT_PERSONAL)]


@pytest.fixture(scope="session")
def screened(tmp_path_factory, sample_slice):
    """(run folder, summary, console, asked): `asked` says, per screen question, whether it was about a planted
    unsafe document."""
    from pugc.cli import main
    from pugc.config import EngineConfig
    from pugc.engines.hf import HFEngine
    from pugc.engines.hf_server import ChatServer

    root = tmp_path_factory.mktemp("screened")
    corpus = root / "planted.jsonl"
    corpus.write_text(sample_slice.read_text(encoding="utf-8") + (DATA / "planted_unsafe_ugc.jsonl").read_text(
        encoding="utf-8") + "".join(planted_personal_data_lines()), encoding="utf-8")
    engine = HFEngine(EngineConfig(model="pugc-tiny/generator"))
    asked: list[bool] = []
    console = io.StringIO()
    with ChatServer(engine) as server:
        server.complete = planted_verdicts(server, asked)
        options = f"{{base_url: '{server.url}', verdict_top_logprobs: 5000}}"
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            code = main(["run", "--input", str(corpus), "--output", str(root), "--run-id", "screened",
                         "--set", "engines.generator.backend=openai", "--set", f"engines.generator.options={options}",
                         "--set", "ugc_filter.threshold=null",  # every document reaches the screens
                         "--set", "safety_screen.action=drop", "--set", "safety_screen.mode=sampled",
                         "--set", "safety_screen.temperature=0.0"])
    engine.close()
    assert code == 0, console.getvalue()[-3000:]
    run_dir = root / "screened"
    return run_dir, json.loads((run_dir / "summary.json").read_text()), console.getvalue(), asked
