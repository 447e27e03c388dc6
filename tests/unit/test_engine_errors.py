"""How the shared prompt -> engine -> parse shape treats a prompt whose request failed (scripted engine)."""
import pytest

from pugc.engines.base import Prompt, SamplingParams
from pugc.records import StageResult
from pugc.stages.llm import StageEngineError, check_engine_errors, drop_unscored, judge
from pugc.stages.verdicts import RATING_1_TO_5
from tests.fakes import FakeEngine

PROMPTS = [Prompt(messages=({"role": "user", "content": f"doc {i}"},)) for i in range(3)]
SAMPLED = SamplingParams(max_tokens=8, temperature=1.0, n=2, seed=5)


def test_a_failed_first_request_is_the_judgements_error_and_is_not_re_sampled():
    engine = FakeEngine(reply=lambda text, i: "nothing" if "doc 0" in text else "4",
                        error=lambda text, params: "answered 500" if "doc 1" in text else None)
    verdicts = judge(engine, PROMPTS, RATING_1_TO_5, "sampled", SAMPLED, max_resamples=2)
    assert verdicts[1].score is None and verdicts[1].error == "answered 500" and verdicts[1].votes == []
    assert verdicts[2].score == 4.0 and verdicts[2].error is None
    assert verdicts[0].score is None and verdicts[0].error is None  # unparsable, not an engine error
    redrawn = [p for prompts, _ in engine.generate_calls[1:] for p in prompts]
    assert redrawn == [PROMPTS[0], PROMPTS[0]]  # only the unparsable prompt is drawn again


def test_a_failed_re_draw_keeps_the_votes_that_parsed():
    engine = FakeEngine(reply=lambda text, i: "3" if i == 0 else "no verdict",
                        error=lambda text, params: "timed out" if params.seed != SAMPLED.seed else None)
    (verdict,) = judge(engine, PROMPTS[:1], RATING_1_TO_5, "sampled", SAMPLED, max_resamples=2)
    assert verdict.score == 3.0 and verdict.error is None and verdict.votes == [3.0, None]
    assert len(engine.generate_calls) == 2  # the failed re-draw is not tried again


def test_a_failed_re_draw_with_nothing_parsed_is_an_engine_error():
    engine = FakeEngine(reply=lambda text, i: "no verdict",
                        error=lambda text, params: "timed out" if params.seed != SAMPLED.seed else None)
    (verdict,) = judge(engine, PROMPTS[:1], RATING_1_TO_5, "sampled", SAMPLED, max_resamples=2)
    assert verdict.score is None and verdict.error == "timed out"


def test_expected_verdicts_skip_prompts_whose_rationale_failed():
    engine = FakeEngine(reply=lambda text, i: "Fine.", probs=lambda text: {"5": 1.0},
                        error=lambda text, params: "answered 503" if "doc 0" in text and params else
                        ("answered 502" if "doc 2" in text and params is None else None))
    verdicts = judge(engine, PROMPTS, RATING_1_TO_5, "expected", SAMPLED, rationale_tokens=4)
    assert [(v.score, v.error) for v in verdicts] == [(None, "answered 503"), (5.0, None), (None, "answered 502")]
    assert [p.messages for p in engine.prob_calls[0]] == [PROMPTS[1].messages, PROMPTS[2].messages]


def test_the_drop_names_engine_error_with_the_error_as_detail():
    from pugc.records import Document
    from pugc.stages.llm import Judgement

    dropped = drop_unscored("ugc_filter", Document(id="d1", text="t"), Judgement(score=None, error="answered 500: boom"))
    assert (dropped.reason, dropped.record_id, dropped.detail, dropped.ids) == (
        "engine_error", "d1", "answered 500: boom", {"doc_id": "d1"})


def result_with(errors: int, n_in: int) -> StageResult:
    from pugc.records import Dropped

    dropped = [Dropped("reward_scoring", "engine_error", f"r{i}", f"error {i}") for i in range(errors)]
    return StageResult("reward_scoring", n_in, kept=[], dropped=dropped)


def test_the_error_fraction_trips_only_above_the_limit():
    check_engine_errors(result_with(1, 20), 0.05)  # exactly 5%: allowed
    check_engine_errors(result_with(0, 0), 0.0)
    with pytest.raises(StageEngineError, match=r"^reward_scoring: 2 of 20 records failed in the engine \(10\.0%.*"
                                               r"max_engine_error_fraction 0\.05\); first error: error 0$"):
        check_engine_errors(result_with(2, 20), 0.05)
    with pytest.raises(StageEngineError):
        check_engine_errors(result_with(1, 1000), 0.0)


def test_a_local_run_reports_the_stage_engine_error_in_its_one_line_failure(tmp_path):
    """The local run's failure line quotes the last `...Error: message` of the task log: the stop must be one."""
    from pugc.pipelines.local import _failure_message

    with pytest.raises(StageEngineError) as stop:
        check_engine_errors(result_with(3, 4), 0.05)
    log = tmp_path / "run.log"
    log.write_text(f"Traceback (most recent call last):\n  ...\npugc.stages.llm.StageEngineError: {stop.value}\n")
    message = _failure_message("Inner task failed: 'reward-scoring'", log)
    assert "StageEngineError: reward_scoring: 3 of 4 records failed in the engine (75.0%" in message
