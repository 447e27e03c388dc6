"""The safety screen end to end: `pugc run` on the sample slice plus planted unsafe documents, the generator served
over HTTP by the tiny generator's own weights, except that the screen's question ("is this content unsafe?") is
answered by a planted verdict: yes for the planted documents, no for the rest (a random tiny model's verdict says
nothing). The planted documents are dropped as `unsafe` and accounted for in the summary, the rejected records,
the console and the merged artifact's lineage; nothing planted reaches a question or a pair."""
import contextlib
import io
import json
import re
import time
from pathlib import Path

import pytest

from pugc.cli import main
from pugc.config import EngineConfig
from pugc.engines.hf import HFEngine
from pugc.engines.hf_server import ChatServer

pytestmark = pytest.mark.e2e
SCREEN = "content-safety reviewer"  # the safety_screen prompt's system message, and no other prompt's
MARKER = "PLANTED-UNSAFE"


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def planted_verdicts(server: ChatServer, asked: list[bool]):
    """The server's reply to the screen's question: yes for a planted document, no for any other; every other
    request is the tiny generator's own."""
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


@pytest.fixture(scope="module")
def screened(tmp_path_factory, sample_slice):
    root = tmp_path_factory.mktemp("screened")
    planted = Path(__file__).resolve().parents[1] / "data" / "planted_unsafe_ugc.jsonl"
    corpus = root / "planted.jsonl"
    corpus.write_text(sample_slice.read_text(encoding="utf-8") + planted.read_text(encoding="utf-8"), encoding="utf-8")
    engine = HFEngine(EngineConfig(model="pugc-tiny/generator"))
    asked: list[bool] = []
    console = io.StringIO()
    with ChatServer(engine) as server:
        server.complete = planted_verdicts(server, asked)
        options = f"{{base_url: '{server.url}', verdict_top_logprobs: 5000}}"
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            code = main(["run", "--input", str(corpus), "--output", str(root), "--run-id", "screened",
                         "--set", "engines.generator.backend=openai", "--set", f"engines.generator.options={options}",
                         "--set", "ugc_filter.threshold=null",  # every document reaches the screen
                         "--set", "safety_screen.action=drop", "--set", "safety_screen.mode=sampled",
                         "--set", "safety_screen.temperature=0.0"])
    engine.close()
    assert code == 0, console.getvalue()[-3000:]
    run_dir = root / "screened"
    return run_dir, json.loads((run_dir / "summary.json").read_text()), console.getvalue(), asked


def test_planted_unsafe_documents_are_dropped_and_accounted(screened):
    run_dir, summary, _, asked = screened
    screen = summary["stages"]["safety_screen"]
    assert sorted(asked) == [False] * (screen["in"] - 3) + [True] * 3  # one question per document, greedy
    assert screen["in"] == summary["stages"]["ugc_filter"]["out"] == summary["input_records"] == 61
    assert screen["dropped"] == {"unsafe": 3} and screen["in"] == screen["out"] + 3
    assert summary["stages"]["instruction_gen"]["in"] == screen["out"]
    assert screen["metrics"]["harm_mean"] == pytest.approx(3 / 61, abs=1e-4)
    unsafe = [r for r in rows(run_dir / "rejected.jsonl") if r["stage"] == "safety_screen"]
    assert sorted(r["record_id"] for r in unsafe) == ["planted-unsafe-1", "planted-unsafe-2", "planted-unsafe-3"]
    assert all(r["reason"] == "unsafe" and r["detail"] == "harm 1.000 > 0.5" for r in unsafe)


def test_nothing_planted_reaches_a_question_or_a_pair(screened):
    run_dir, summary, _, _ = screened
    assert summary["preference_pairs"] > 0
    pairs = rows(run_dir / "preference_pairs.jsonl")
    assert not [p for p in pairs if p["doc_id"].startswith("planted-")]
    (questions,) = run_dir.glob("artifacts/*/merge-shards-3/merged")  # instruction_gen's merged output
    assert rows(questions) and not [q for q in rows(questions) if q["doc_id"].startswith("planted-")]


def test_the_console_and_the_lineage_show_the_screen(screened):
    """The summary's stage entry is read from the merged artifact's lineage (its metadata): counts, model, time."""
    _, summary, console, _ = screened
    assert re.search(r"\[3/14\] safety_screen +in 61, out 58, dropped unsafe=3", console), console
    screen = summary["stages"]["safety_screen"]
    assert screen["model"] == "pugc-tiny/generator" and screen["seconds"] is not None
    assert screen["metrics"]["pass_rate"] == pytest.approx(58 / 61, abs=1e-4)
