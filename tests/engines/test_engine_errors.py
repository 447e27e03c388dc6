"""Failed engine requests, per record: every LLM stage run by the stage runner against a real OpenAI-compatible
HTTP server (a tiny model on loopback) that refuses some prompts. The refused record is dropped as
`engine_error`, the rest are kept or scored, and too many errors stop the stage with the first error."""
import pytest

from pugc.config import load_recipe
from pugc.engines.hf import HFEngine
from pugc.engines.hf_server import ChatServer
from pugc.config import EngineConfig
from pugc.io import read_records, write_jsonl
from pugc.records import Document, Dropped, Instruction, Response
from pugc.stage_runner import run_stage
from pugc.stages import STAGE_SPECS
from pugc.stages.llm import StageEngineError

MARKER = "BROKEN-RECORD"  # the server answers 500 to every request whose prompt holds it


@pytest.fixture(scope="module")
def hf():
    engine = HFEngine(EngineConfig(model="pugc-tiny/judge"))
    yield engine
    engine.close()


def documents(broken: int | None) -> list[Document]:
    texts = ["Patch the tube, then pump the tyre up again.", "Bleed the radiator with a key until water comes.",
             "Descale the kettle with vinegar and rinse it twice.", "Oil the hinge and wipe off what drips."]
    return [Document(id=f"d{i}", text=(f"{MARKER} " if i == broken else "") + text) for i, text in enumerate(texts)]


def instructions(broken: int | None) -> list[Instruction]:
    return [Instruction(id=f"q{d.id}", doc_id=d.id, instruction=f"How do I do task {d.id}?"
                        + (f" {MARKER}" if d.id == f"d{broken}" else "")) for d in documents(None)]


def responses(broken: int | None) -> list[Response]:
    return [Response(id=f"qd{q}-{k}", instruction_id=f"qd{q}", doc_id=f"d{q}", sample_index=k,
                     response=f"Answer {k}." + (f" {MARKER}" if (q, k) == (0, broken) else ""))
            for q in range(2) for k in range(2)]


INPUTS = {"ugc_filter": documents, "instruction_gen": documents, "relevance_filter": instructions,
          "response_sampling": instructions, "reward_scoring": responses}
# Every stage of each kind of call: generation, verdicts read from probabilities (expected, with and without a
# rationale first) and verdicts parsed from samples (sampled, with re-sampling).
CASES = [
    ("instruction_gen", []),
    ("response_sampling", ["response_sampling.k=2"]),
    ("ugc_filter", ["ugc_filter.threshold=1.0", "ugc_filter.mode=expected"]),
    ("ugc_filter", ["ugc_filter.threshold=1.0", "ugc_filter.mode=sampled", "ugc_filter.n=2"]),
    ("relevance_filter", ["relevance_filter.threshold=0.0", "relevance_filter.mode=expected"]),
    ("relevance_filter", ["relevance_filter.threshold=0.0", "relevance_filter.mode=sampled", "relevance_filter.n=2"]),
    ("reward_scoring", ["reward_scoring.mode=expected", "reward_scoring.feedback_max_tokens=8"]),
    ("reward_scoring", ["reward_scoring.mode=expected", "reward_scoring.feedback_max_tokens=0"]),
    ("reward_scoring", ["reward_scoring.mode=sampled", "reward_scoring.n=2", "reward_scoring.max_tokens=8"]),
]


def run_over_http(tmp_path, url: str, stage: str, overrides: list[str], rows: list) -> tuple[dict, list[Dropped]]:
    served = [f"engines.{role}.backend=openai" for role in ("policy", "generator", "judge")]
    # every token's probability (the tiny random model rarely puts a verdict token in its top 20)
    options = f"{{base_url: '{url}', max_retries: 2, verdict_top_logprobs: 5000}}"
    served += [f"engines.{role}.options={options}" for role in ("policy", "generator", "judge")]
    sections = load_recipe("tiny", served + overrides).pipeline_sections()
    write_jsonl(tmp_path / "in.jsonl", rows)
    write_jsonl(tmp_path / "documents.jsonl", documents(None))  # the tables stages join by id
    write_jsonl(tmp_path / "instructions.jsonl", instructions(None))
    tables = {name: str(tmp_path / f"{name}.jsonl") for name in ("documents", "instructions")}
    report = run_stage(stage, str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl"), str(tmp_path / "dropped.jsonl"),
                       sections[stage], sections["engines"], tables=tables)
    return report, read_records(tmp_path / "dropped.jsonl", Dropped)


def case_id(case):
    stage, overrides = case
    mode = next((o.split("=")[1] for o in overrides if ".mode=" in o), "")
    rationale = "-rationale" if any("feedback_max_tokens=8" in o for o in overrides) else ""
    return f"{stage}-{mode}{rationale}".rstrip("-")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_record_whose_request_keeps_failing_is_dropped_as_engine_error_and_the_rest_go_on(hf, tmp_path, case):
    stage, overrides = case
    rows = INPUTS[stage](1)
    with ChatServer(hf, fail_on={MARKER: 500}) as server:
        report, dropped = run_over_http(tmp_path, server.url, stage, overrides + [f"{stage}.max_engine_error_fraction=0.5"], rows)
    failed = [d for d in dropped if d.reason == "engine_error"]
    broken = next(r for r in rows if MARKER in str(r))
    assert [d.record_id for d in failed] == [broken.id]
    assert "answered 500" in failed[0].detail and "injected fault 500" in failed[0].detail
    assert failed[0].ids["doc_id"] == getattr(broken, "doc_id", broken.id)  # the drop is traced by ids
    counts = report["counts"]
    assert counts["dropped"]["engine_error"] == 1
    if "mode=sampled" not in str(overrides):  # every other record was kept or scored
        assert counts["dropped"] == {"engine_error": 1}
    else:  # the random model's samples seldom hold a verdict: the others are scored or unparsable
        assert set(counts["dropped"]) <= {"engine_error", "unparsable_judgement"}
    output_type = STAGE_SPECS[stage].output_type
    kept = read_records(tmp_path / "out.jsonl", output_type)
    assert broken.id not in {getattr(k, "instruction_id", None) or k.id for k in kept}
    if stage == "response_sampling":
        assert counts["in"] == len(rows) and len({k.instruction_id for k in kept}) == len(rows) - 1
    else:
        assert counts["in"] == len(rows) == counts["out"] + sum(counts["dropped"].values())
    assert report["engine_stats"]["extra"]["failed_requests"] >= 1


@pytest.mark.parametrize("stage", ["instruction_gen", "reward_scoring"])
def test_a_request_that_fails_then_succeeds_is_retried_and_nothing_is_dropped(hf, tmp_path, stage):
    rows = INPUTS[stage](None)
    with ChatServer(hf, faults=[503, 502]) as server:
        report, dropped = run_over_http(tmp_path, server.url, stage, [], rows)
    assert dropped == [] and report["counts"]["dropped"] == {}
    assert report["counts"]["out"] == len(rows)
    assert report["engine_stats"]["extra"]["retries"] == 2
    assert report["engine_stats"]["extra"]["failed_requests"] == 0


def test_more_engine_errors_than_the_recipe_allows_stop_the_stage_naming_count_fraction_and_first_error(hf, tmp_path):
    rows = INPUTS["reward_scoring"](1)  # 1 of 4 fails: 25% > the default 5%
    with ChatServer(hf, fail_on={MARKER: 500}) as server:
        with pytest.raises(StageEngineError) as failure:
            run_over_http(tmp_path, server.url, "reward_scoring", [], rows)
    message = str(failure.value)
    assert message.startswith("reward_scoring: 1 of 4 records failed in the engine (25.0%")
    assert "reward_scoring.max_engine_error_fraction 0.05" in message
    assert "first error:" in message and "answered 500" in message and "injected fault 500" in message
    assert not (tmp_path / "out.jsonl").exists()  # nothing is written as if the stage had succeeded


def test_a_fraction_at_the_limit_passes(hf, tmp_path):
    rows = INPUTS["reward_scoring"](1)
    with ChatServer(hf, fail_on={MARKER: 500}) as server:
        report, _ = run_over_http(tmp_path, server.url, "reward_scoring", ["reward_scoring.max_engine_error_fraction=0.25"], rows)
    assert report["counts"]["dropped"] == {"engine_error": 1}
