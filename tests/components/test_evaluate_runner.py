"""evaluate on the shared runner, with the tiny models: three passes (trained answers, baseline answers, the
judge) that account for every prompt, resume a killed task from their chunks, keep to the engine-error budget,
and give the same figures whether the prompts run as one shard or two."""
import json
import os
import subprocess
import sys

import pytest

from pugc.checkpoint import FAULT_EXIT_CODE
from pugc.config import load_recipe
from pugc.engines.hf import HFEngine
from pugc.engines.hf_server import ChatServer
from pugc.config import EngineConfig
from pugc.evaluation import run_evaluate, run_evaluation_gate
from pugc.io import iter_rows, read_records, write_jsonl
from pugc.models import resolve_model
from pugc.records import Document, Instruction
from pugc.runner.merge import merge_shards
from pugc.stages.evaluate import PairwiseResult, figures
from pugc.stages.llm import StageEngineError

BROKEN = "BROKEN-PROMPT"  # the served judge answers 500 to every request whose prompt holds it


def recipe_sections(*overrides):
    return load_recipe("tiny", ["evaluation.max_tokens=8", "evaluation.judge.feedback_max_tokens=4",
                                *overrides]).pipeline_sections()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    questions = [Instruction(id=f"q{i}", doc_id=f"d{i}", instruction=f"How do I fix thing {i}?"
                             + (f" {BROKEN}" if i == 3 else "")) for i in range(12)]
    write_jsonl(folder / "held_out.jsonl", questions)
    write_jsonl(folder / "ugc.jsonl", [Document(id=f"d{i}", text=f"Fix thing {i} with a spanner.") for i in range(12)])
    (folder / "set.jsonl").write_text("".join(json.dumps({"instruction": f"Say hello {i}."}) + "\n" for i in range(3)))
    return folder


def evaluate_shard(data, out, sections, shard=0, shards=1, runtime=None, scope="", engines=None):
    section = {**sections["evaluation"], "prompt_sets": [str(data / "set.jsonl")]}
    return run_evaluate(str(data / "held_out.jsonl"), str(data / "ugc.jsonl"), resolve_model("pugc-tiny/policy"),
                        section, engines or sections["engines"], shard, shards, str(out / "judged.jsonl"),
                        str(out / "dropped.jsonl"), runtime=runtime, scope=scope)


def test_every_prompt_is_judged_or_dropped_and_the_figures_are_the_judged_prompts(data, tmp_path):
    report = evaluate_shard(data, tmp_path, recipe_sections())
    judged = read_records(tmp_path / "judged.jsonl", PairwiseResult)
    dropped = [row for _, row in iter_rows(tmp_path / "dropped.jsonl")]
    assert report["counts"]["in"] == 15 == len(judged) + len(dropped)
    assert {r.source for r in judged} <= {"held_out", "set.jsonl"}
    assert report["metrics"] == pytest.approx(figures(judged))
    assert report["model"] == "pugc-tiny/judge"
    assert set(report["answer_models"]) == {"evaluate_trained", "evaluate_baseline"}


def test_two_shards_merge_to_the_figures_and_gate_of_one(data, tmp_path):
    sections = recipe_sections()
    one = tmp_path / "one"
    whole = evaluate_shard(data, one, sections)
    parts, dropped_parts = [], []
    for shard in range(2):
        out = tmp_path / f"shard{shard}"
        report = evaluate_shard(data, out, sections, shard, 2)
        lineage = {"stage": report["stage"], "rows_in": report["counts"]["in"], "rows_out": report["counts"]["out"],
                   "dropped": report["counts"]["dropped"], "metrics": report["metrics"], "seconds": report["seconds"],
                   "shard_index": shard, "model": report["model"]}
        parts.append((str(out / "judged.jsonl"), lineage))
        dropped_parts.append((str(out / "dropped.jsonl"), lineage))
    merged = merge_shards(parts, dropped_parts, str(tmp_path / "merged.jsonl"), str(tmp_path / "merged.dropped"))
    assert merged["counts"] == whole["counts"]
    assert merged["metrics"] == pytest.approx(whole["metrics"])  # lc_win_rate refitted, mean lengths not summed
    gates = [run_evaluation_gate(str(judged), sections["evaluation"], str(tmp_path / f"{name}.json"),
                                 str(tmp_path / f"{name}.html"))
             for name, judged in (("one", one / "judged.jsonl"), ("two", tmp_path / "merged.jsonl"))]
    assert gates[0] == gates[1]


def killed_evaluate(data, out, sections, runtime, after: int) -> int:
    code = (f"import sys; sys.path.insert(0, {os.getcwd()!r})\n"
            "from tests.components.test_evaluate_runner import evaluate_shard\nfrom pathlib import Path\n"
            f"evaluate_shard(Path({str(data)!r}), Path({str(out)!r}), {sections!r}, runtime={runtime!r}, scope='r/evaluate')")
    env = {**os.environ, "PUGC_FAIL_AFTER_CHUNKS": str(after)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).returncode


def test_a_killed_evaluate_resumes_from_its_chunks_finished_passes_included(data, tmp_path):
    sections = recipe_sections()
    runtime = {"checkpoint_root": str(tmp_path / "checkpoints"), "checkpoint_every": 4}
    # 15 prompts in chunks of 4: the trained pass saves 4 chunks, the kill comes after 2 of the baseline's
    assert killed_evaluate(data, tmp_path / "killed", sections, runtime, after=6) == FAULT_EXIT_CODE
    resumed = evaluate_shard(data, tmp_path / "resumed", sections, runtime=runtime, scope="r/evaluate")
    clean = evaluate_shard(data, tmp_path / "clean", sections,  # the same chunks: hf batches shape the numerics
                           runtime={**runtime, "checkpoint_root": str(tmp_path / "fresh")})
    assert resumed["resumed_chunks"] == 6  # nothing finished was computed again
    assert (tmp_path / "resumed" / "judged.jsonl").read_bytes() == (tmp_path / "clean" / "judged.jsonl").read_bytes()
    assert resumed["counts"] == clean["counts"]
    assert not list((tmp_path / "checkpoints").rglob("chunk-*"))  # every pass's progress cleared once judged


@pytest.fixture(scope="module")
def served_judge():
    engine = HFEngine(EngineConfig(model="pugc-tiny/judge"))
    with ChatServer(engine, fail_on={BROKEN: 500}) as server:
        yield server
    engine.close()


def served(sections, url):
    options = {"base_url": url, "max_retries": 1, "verdict_top_logprobs": 5000}
    return {**sections["engines"], "judge": {"backend": "openai", "model": "pugc-tiny/judge", "options": options}}


def test_a_judge_request_that_fails_drops_its_prompt_within_the_budget(data, tmp_path, served_judge):
    sections = recipe_sections("evaluation.judge.max_engine_error_fraction=0.5")
    report = evaluate_shard(data, tmp_path, sections, engines=served(sections, served_judge.url))
    dropped = [row for _, row in iter_rows(tmp_path / "dropped.jsonl")]
    assert [(d["record_id"], d["reason"]) for d in dropped] == [("q3", "engine_error")]
    assert dropped[0]["detail"].startswith("the judge: ") and "answered 500" in dropped[0]["detail"]
    assert report["counts"]["out"] == 14


def test_judge_errors_over_the_budget_stop_evaluate_naming_the_error(data, tmp_path, served_judge):
    sections = recipe_sections()  # the default budget, 5%: 1 of 15 is over it
    with pytest.raises(StageEngineError, match=r"^evaluate: 1 of 15 records failed in the engine .*the judge: .*500"):
        evaluate_shard(data, tmp_path, sections, engines=served(sections, served_judge.url))
    assert not (tmp_path / "judged.jsonl").exists()


BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "data", "benchmarks")


def test_the_benchmarks_run_by_their_own_protocols_on_the_tiny_models(data, tmp_path):
    """AlpacaEval's 20 prompts against their reference outputs and MT-Bench's four questions through the three
    passes and the gate: every prompt accounted, both MT-Bench turns answered and graded, AlpacaEval's LC
    fitted by alpaca_eval on the tiny judge's verdicts."""
    from pugc.alpaca_eval_lc import alpaca_eval_figures
    from pugc.stages.benchmarks import alpaca_eval_annotations

    glm_data = os.path.join(BENCHMARKS, "df_gamed.csv")
    sections = recipe_sections(
        f"evaluation.benchmarks.alpaca_eval.reference_outputs={BENCHMARKS}/alpaca_eval_reference.json",
        f"evaluation.benchmarks.alpaca_eval.glm_data={glm_data}",
        f"evaluation.benchmarks.mt_bench.questions={BENCHMARKS}/mt_bench_questions.jsonl",
        f"evaluation.benchmarks.mt_bench.judge_prompts={BENCHMARKS}/mt_bench_judge_prompts.jsonl",
        "evaluation.benchmarks.mt_bench.judge_max_tokens=12", "evaluation.gate.min_mt_bench=1")
    report = evaluate_shard(data, tmp_path, sections)
    judged = read_records(tmp_path / "judged.jsonl", PairwiseResult)
    dropped = [row for _, row in iter_rows(tmp_path / "dropped.jsonl")]
    assert report["counts"]["in"] == 15 + 20 + 4 == len(judged) + len(dropped)
    assert report["metrics"] == pytest.approx(figures(judged))  # the held-out set and prompt set alone
    alpaca = [r for r in judged if r.benchmark == "alpaca_eval"]
    mt_bench = [r for r in judged if r.benchmark == "mt_bench"]
    assert alpaca and all(r.baseline.startswith(r.instruction.split()[3].capitalize()[:3]) for r in alpaca)
    assert all(r.trained_followup is not None and r.baseline_followup is not None for r in mt_bench)
    assert all(len(r.trained_ratings) == len(r.baseline_ratings) == 2 and len(r.judge_outputs) == 4 for r in mt_bench)

    summary = run_evaluation_gate(str(tmp_path / "judged.jsonl"), sections["evaluation"],
                                  str(tmp_path / "evaluation.json"), str(tmp_path / "evaluation.html"),
                                  sections["engines"])
    bench = summary["benchmarks"]
    expected = alpaca_eval_figures(alpaca_eval_annotations(alpaca, summary["evaluator"]["model"]), glm_data)
    assert bench["alpaca_eval"]["lc_win_rate"] == expected["lc_win_rate"]
    assert bench["alpaca_eval"]["prompts"] == len(alpaca) and bench["mt_bench"]["questions"] == len(mt_bench)
    assert bench["mt_bench"]["unparsed_ratings"] + sum(
        r is not None for x in mt_bench for r in x.trained_ratings + x.baseline_ratings) == 4 * len(mt_bench)
    # random tiny models write no rating MT-Bench can read: the gate on it fails and says so
    if "trained" not in bench["mt_bench"]:
        assert not summary["gate"]["passed"] and "MT-Bench" in summary["gate"]["reason"]
