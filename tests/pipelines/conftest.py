"""One end-to-end run shared by the tests that read it (test_safety_screen_run, test_personal_data_run,
test_judge_outage): `pugc run` on the sample slice plus planted unsafe documents and documents full of planted
personal data. The generator is served over HTTP by the tiny generator's own weights, except for the safety
screen's question, which gets a planted verdict (a random tiny model's verdict says nothing); an evaluator of its
own (engines.evaluator) is served by the tiny judge's weights under another name, recording what it is asked.
Every document reaches the screens (ugc_filter off); the default `redact` applies to personal data. One run
instead of one per module: each costs about a minute here."""
import contextlib
import io
import json
import time
from pathlib import Path
from typing import NamedTuple

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


class ScreenedRun(NamedTuple):
    run_dir: Path
    summary: dict
    console: str
    asked: list  # per safety-screen question: was it about a planted unsafe document
    evaluator_requests: list  # the messages of every request the served evaluator got, as JSON


@pytest.fixture(scope="session")
def screened(tmp_path_factory, sample_slice) -> ScreenedRun:
    from pugc.cli import main
    from pugc.config import EngineConfig
    from pugc.engines.hf import HFEngine
    from pugc.engines.hf_server import ChatServer

    root = tmp_path_factory.mktemp("screened")
    corpus = root / "planted.jsonl"
    corpus.write_text(sample_slice.read_text(encoding="utf-8") + (DATA / "planted_unsafe_ugc.jsonl").read_text(
        encoding="utf-8") + "".join(planted_personal_data_lines()), encoding="utf-8")
    generator, judge = HFEngine(EngineConfig(model="pugc-tiny/generator")), HFEngine(EngineConfig(model="pugc-tiny/judge"))
    asked: list[bool] = []
    evaluator_requests: list[str] = []
    console = io.StringIO()
    with ChatServer(generator) as server, ChatServer(judge) as evaluator:
        server.complete = planted_verdicts(server, asked)
        original = evaluator.complete
        evaluator.complete = lambda body: evaluator_requests.append(json.dumps(body["messages"])) or original(body)
        options = f"{{base_url: '{server.url}', verdict_top_logprobs: 5000}}"
        graded_by = f"{{base_url: '{evaluator.url}', verdict_top_logprobs: 5000}}"
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            code = main(["run", "--input", str(corpus), "--output", str(root), "--run-id", "screened",
                         "--set", "engines.generator.backend=openai", "--set", f"engines.generator.options={options}",
                         "--set", f"engines.evaluator={{backend: openai, model: independent-evaluator, "
                                  f"options: {graded_by}}}",
                         "--set", "ugc_filter.threshold=null",  # every document reaches the screens
                         "--set", "safety_screen.action=drop", "--set", "safety_screen.mode=sampled",
                         "--set", "safety_screen.temperature=0.0"])
    generator.close()
    judge.close()
    assert code == 0, console.getvalue()[-3000:]
    run_dir = root / "screened"
    return ScreenedRun(run_dir, json.loads((run_dir / "summary.json").read_text()), console.getvalue(), asked,
                       evaluator_requests)
