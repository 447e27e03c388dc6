"""Evaluation logic: held-out split, both-order judging, win rates, the length-controlled fit, the gate."""
import dataclasses
import math

import pytest

from pugc.config import EvaluationConfig, GateConfig, PairwiseJudgeConfig
from pugc.records import Instruction
from pugc.stages import evaluate
from pugc.stages.evaluate import EvalPrompt, PairwiseResult
from pugc.stages.verdicts import parse_result_choice
from tests.fakes import FakeEngine


def question(i: int) -> Instruction:
    return Instruction(id=f"q{i}", doc_id=f"d{i}", instruction=f"Question {i}?")


def test_the_held_out_split_is_deterministic_by_id_and_accounts_for_every_question():
    questions = [question(i) for i in range(400)]
    result, held_out = evaluate.split_held_out(questions, 0.25)
    again, _ = evaluate.split_held_out(list(reversed(questions)), 0.25)
    assert {q.id for q in held_out} == {d.record_id for d in result.dropped} == {d.record_id for d in again.dropped}
    assert len(result.kept) + len(held_out) == 400 and 70 < len(held_out) < 130
    assert {d.reason for d in result.dropped} == {"held_out"}
    assert evaluate.split_held_out(questions, 0.0)[1] == []
    with pytest.raises(ValueError, match="held_out_fraction"):
        evaluate.split_held_out(questions, 1.0)


def test_the_judge_reads_a_held_out_prompts_reference_from_the_document_table_and_none_for_prompt_sets():
    engine = judge_that_prefers("good")
    held_out = evaluate.held_out_prompt(question(1))
    from_set = evaluate.prompt_from_row({"instruction": "Say hi."}, "set.jsonl", 1)
    answered = [dataclasses.replace(p, trained="good", baseline="bad") for p in (held_out, from_set)]
    evaluate.judge_pairs(engine, answered, {"d1": "the UGC text"}, PairwiseJudgeConfig(n=1, max_resamples=0))
    texts = [p.messages[-1]["content"] for p in engine.generate_calls[0][0]]
    assert "###Reference Answer:\nthe UGC text" in texts[0] and "###Reference Answer:" not in texts[2]


def test_prompt_sets_read_alpacaeval_and_mt_bench_rows_and_name_a_bad_line():
    rows = [{"instruction": "Say hi."}, {"question_id": 81, "turns": ["Write a poem.", "Shorter."]}]
    prompts = evaluate.prompts_from_rows(rows, "set.jsonl")
    assert [p.instruction for p in prompts] == ["Say hi.", "Write a poem."]
    assert all(p.doc_id is None for p in prompts)  # no document: judged without a reference
    with pytest.raises(ValueError, match="set.jsonl line 2"):
        evaluate.prompts_from_rows([{"instruction": "ok"}, {"prompt": "no"}], "set.jsonl")


@pytest.mark.parametrize("text, value", [
    ("Feedback: A is better. [RESULT] A", 1.0), ("Feedback: ... [RESULT] B", 0.0), ("[RESULT] (A)", 1.0),
    ('... [RESULT] "B".', 0.0), ("[Result] [B]", 0.0), ("[RESULT] A and more text", None), ("[RESULT] C", None),
    ("[RESULT] a", None), ("A", None),
])
def test_the_pairwise_verdict_is_read_only_from_the_marker_at_the_end(text, value):
    assert parse_result_choice(text) == value


def test_the_pairwise_prompt_has_the_reference_only_where_there_is_one():
    with_ref = evaluate.pairwise_prompt("Q?", "first", "second", "the document")
    without = evaluate.pairwise_prompt("Q?", "first", "second", None)
    text = with_ref.messages[-1]["content"]
    assert "###Reference Answer:\nthe document" in text and "a reference answer," in text
    assert text.index("###Response A:\nfirst") < text.index("###Response B:\nsecond")
    assert "Reference Answer:" not in without.messages[-1]["content"]
    assert text.endswith("###Feedback: ")


def judge_that_prefers(word: str, position_bias: str | None = None):
    """A scripted judge: prefers the response containing `word`; with a position bias it always answers that."""
    def reply(text: str, i: int) -> str:
        if position_bias:
            return f"Feedback: x [RESULT] {position_bias}"
        a = text.split("###Response A:\n")[1].split("###Response B:")[0]
        return f"Feedback: x [RESULT] {'A' if word in a else 'B'}"
    return FakeEngine(reply=reply)


def run_judging(engine, trained_texts, baseline_texts, mode="sampled"):
    prompts = [EvalPrompt(id=f"p{i}", source="held_out", instruction=f"Q{i}?", doc_id="d", trained=t,
                          trained_tokens=len(t), baseline=b, baseline_tokens=len(b))
               for i, (t, b) in enumerate(zip(trained_texts, baseline_texts))]
    config = PairwiseJudgeConfig(mode=mode, n=1, max_resamples=0)
    return evaluate.judge_pairs(engine, prompts, {"d": "doc"}, config)


def test_each_pair_is_judged_in_both_orders_and_a_consistent_preference_wins():
    engine = judge_that_prefers("good")
    result = run_judging(engine, ["good answer", "bad", "good too"], ["bad", "good one", "meh"])
    assert [r.outcome for r in result.kept] == ["win", "lose", "win"]
    prompts = engine.generate_calls[0][0]
    assert len(prompts) == 6  # both orders of every pair
    first, second = (p.messages[-1]["content"] for p in prompts[:2])
    assert "###Response A:\ngood answer" in first and "###Response B:\ngood answer" in second
    assert result.metrics["win_rate"] == pytest.approx(2 / 3)


def test_a_judge_that_always_picks_one_position_yields_ties_not_wins():
    result = run_judging(judge_that_prefers("x", position_bias="A"), ["a", "b"], ["c", "d"])
    assert [r.outcome for r in result.kept] == ["tie", "tie"]
    assert result.metrics["win_rate"] == 0.5 and result.metrics["tie"] == 2


def test_expected_mode_reads_p_a_in_both_orders():
    def probs(text):  # P(A) is 0.8 when the trained answer ("T") is shown first, 0.3 when second
        a = text.split("###Response A:\n")[1].split("###Response B:")[0]
        return {"A": 0.8, "B": 0.2} if a.startswith("T") else {"A": 0.3, "B": 0.7}
    result = run_judging(FakeEngine(probs=probs), ["T1"], ["b"], mode="expected")
    (r,) = result.kept
    assert (r.trained_first, r.baseline_first, r.outcome) == (0.8, 0.7, "win")


def test_an_unparsable_verdict_drops_the_prompt_with_a_reason():
    engine = FakeEngine(reply=lambda text, i: "no verdict here")
    result = run_judging(engine, ["a"], ["b"])
    assert result.kept == [] and [d.reason for d in result.dropped] == ["unparsable_judgement"]


def results(scores_and_lengths):
    outcome = {1.0: "win", 0.5: "tie", 0.0: "lose"}
    return [PairwiseResult(id=str(i), source="s", instruction="q", trained="t" * lt, baseline="b" * lb,
                           trained_tokens=lt, baseline_tokens=lb, outcome=outcome[s], trained_first=s,
                           baseline_first=s)
            for i, (s, lt, lb) in enumerate(scores_and_lengths)]


def test_win_rate_counts_half_the_ties_and_reports_mean_lengths():
    figures = evaluate.figures(results([(1.0, 10, 10), (0.5, 20, 10), (0.0, 30, 10), (1.0, 40, 10)]))
    assert (figures["win"], figures["tie"], figures["lose"]) == (2, 1, 1)
    assert figures["win_rate"] == pytest.approx(2.5 / 4)
    assert figures["trained_mean_tokens"] == 25 and figures["baseline_mean_chars"] == 10


def test_the_share_of_answers_cut_at_max_tokens_is_a_figure_of_each_model():
    judged = results([(1.0, 10, 10), (0.5, 20, 10), (0.0, 30, 10), (1.0, 40, 10)])
    judged[0].trained_cut = judged[1].trained_cut = judged[3].baseline_cut = True
    figures = evaluate.figures(judged)
    assert (figures["trained_cut_fraction"], figures["baseline_cut_fraction"]) == (0.5, 0.25)


def test_an_answer_records_whether_it_was_cut():
    engine = FakeEngine(reply=lambda text, i: "long answer" if "long" in text else "short")
    engine.finish_reason = lambda text: "length" if "long" in text else "stop"
    prompts = [evaluate.EvalPrompt(id=str(i), source="held_out", instruction=q) for i, q in enumerate(["long?", "s?"])]
    result = evaluate.answer(engine, prompts, EvaluationConfig(), "trained")
    assert [(p.trained, p.trained_cut) for p in result.kept] == [("long answer", True), ("short", False)]


def test_length_controlled_win_rate_removes_a_preference_for_longer_answers():
    # The judge prefers whichever answer is longer: raw win rate 0.7, but at equal length it is a coin toss.
    scores = [1.0] * 7 + [0.0] * 3
    longer_wins = [10, 20, 30, 40, 50, 60, 70, -10, -20, -30]
    raw = sum(scores) / len(scores)
    lc = evaluate.length_controlled_win_rate(scores, longer_wins)
    assert raw == 0.7 and lc < raw - 0.1
    # A preference that does not track length keeps (about) its win rate.
    unrelated = [10, -10, 20, -20, 30, -30, 5, 10, -10, 0]
    assert evaluate.length_controlled_win_rate(scores, unrelated) == pytest.approx(raw, abs=0.1)


def test_length_controlled_win_rate_is_the_plain_rate_without_length_spread_and_finite_when_separable():
    assert evaluate.length_controlled_win_rate([1.0, 0.5, 0.0], [5, 5, 5]) == pytest.approx(0.5)
    separable = evaluate.length_controlled_win_rate([1.0, 1.0, 0.0, 0.0], [10, 20, -10, -20])
    assert math.isfinite(separable) and 0.0 < separable < 1.0


@pytest.mark.parametrize("win_rate, lc, floors, passed, reason", [
    (0.6, 0.55, (0.5, None), True, "win_rate 0.600 >= 0.5"),
    (0.6, 0.45, (0.5, 0.5), False, "lc_win_rate 0.450 < 0.5"),
    (0.6, 0.45, (None, None), True, "no thresholds set"),
])
def test_the_gate_checks_each_configured_floor_and_says_why(win_rate, lc, floors, passed, reason):
    gate = GateConfig(min_win_rate=floors[0], min_lc_win_rate=floors[1])
    decision = evaluate.decide_gate({"prompts": 10, "win_rate": win_rate, "lc_win_rate": lc}, gate)
    assert (decision.passed, decision.reason) == (passed, reason)


def test_the_gate_fails_a_threshold_when_nothing_was_judged():
    decision = evaluate.decide_gate(evaluate.figures([]), GateConfig(min_win_rate=0.0))
    assert not decision.passed and "no evaluation prompts" in decision.reason


def test_answers_use_the_evaluation_sampling_for_both_models():
    engine = FakeEngine(reply=lambda text, i: " an answer ")
    config = EvaluationConfig(max_tokens=7, temperature=0.0)
    result = evaluate.answer(engine, [EvalPrompt("p", "s", "Q?")], config, "baseline")
    assert (result.kept[0].baseline, result.kept[0].trained) == ("an answer", None)
    params = engine.generate_calls[0][1]
    assert (params.max_tokens, params.temperature, params.n) == (7, 0.0, 1)


def test_evaluation_prompts_are_the_held_out_questions_then_the_prompt_sets_streamed(tmp_path):
    from pugc.evaluation import write_evaluation_prompts
    from pugc.io import iter_rows, write_jsonl

    write_jsonl(tmp_path / "held_out.jsonl", [question(1)])
    (tmp_path / "mt_bench.jsonl").write_text('{"question_id": 81, "turns": ["Plan a trip.", "Shorter."]}\n\n'
                                            '{"instruction": "Half an emoji \\ud83d"}\n')
    count = write_evaluation_prompts(str(tmp_path / "held_out.jsonl"), [str(tmp_path / "mt_bench.jsonl")],
                                     str(tmp_path / "prompts.jsonl"))
    rows = [row for _, row in iter_rows(tmp_path / "prompts.jsonl")]
    assert count == 3 and [(r["instruction"], r["doc_id"], r["source"]) for r in rows] == [
        ("Question 1?", "d1", "held_out"), ("Plan a trip.", None, "mt_bench.jsonl"),
        ("Half an emoji \ufffd", None, "mt_bench.jsonl")]
    (tmp_path / "broken.jsonl").write_text('{"instruction": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match="broken.jsonl line 2: not JSON"):
        write_evaluation_prompts(str(tmp_path / "held_out.jsonl"), [str(tmp_path / "broken.jsonl")],
                                 str(tmp_path / "prompts.jsonl"))


def test_a_gate_on_fewer_prompts_than_min_prompts_fails_and_a_small_one_says_it_is_noisy():
    figures = {"prompts": 12, "win_rate": 0.7, "lc_win_rate": 0.6}
    refused = evaluate.decide_gate(figures, GateConfig(min_win_rate=0.5, min_prompts=100))
    assert not refused.passed and refused.reason == "12 prompts judged, fewer than gate.min_prompts 100"
    assert evaluate.decide_gate(figures, GateConfig(min_win_rate=0.5, min_prompts=10)).passed
    same = PairwiseResult("p", "held_out", "Q?", "same answer", "same answer", 2, 2, "tie", 0.5, 0.5)
    notes = evaluate.gate_notes(figures, [same])
    assert notes == ["only 12 prompts judged: a noisy figure (gate.min_prompts refuses such a gate)",
                     "the trained model's answers equal the baseline's on every prompt"]
    assert evaluate.gate_notes({"prompts": 40}, [same, PairwiseResult(
        "q", "held_out", "Q2?", "a", "b", 1, 1, "win", 0.9, 0.9)]) == []
