"""Stage logic with a scripted engine: what is kept, what is dropped and why, and the record shapes."""
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pugc.config import (InstructionGenConfig, PreferencePairsConfig, RelevanceFilterConfig,
                         ResponseSamplingConfig, RewardScoringConfig, UGCFilterConfig)
from pugc.records import Document, Instruction, Response, ScoredResponse
from pugc.stages import instruction_gen, preference_pairs, relevance_filter, response_sampling, reward_scoring, ugc_filter
from pugc.stages.instruction_gen import clean_question
from pugc.stages.llm import judge
from pugc.stages.verdicts import RESULT_1_TO_5
from pugc.engines.base import Prompt, SamplingParams
from tests.fakes import FakeEngine


def docs(*texts):
    return [Document(id=f"d{i}", text=t) for i, t in enumerate(texts)]


def instruction(i, question="How do I fix it?"):
    return Instruction(id=f"i{i}", doc_id=f"d{i}", instruction=question)


# ------------------------------------------------------------------------------------------- ugc_filter
def test_ugc_filter_keeps_a_quality_band():
    probs = {"GOOD": {"5": 1.0}, "FAIR": {"3": 1.0}, "POOR": {"2": 1.0}, "BAD": {"1": 1.0}}
    engine = FakeEngine(probs=lambda text: next(v for k, v in probs.items() if k in text))
    config = UGCFilterConfig(threshold=2.0, max_score=3.0)  # Fig. 4's quality-{2,3} arm
    result = ugc_filter.run(docs("GOOD post", "FAIR post", "POOR post", "BAD post"), config, engine)
    assert [d.text for d in result.kept] == ["FAIR post", "POOR post"]
    assert result.counts["dropped"] == {"above_max_score": 1, "low_quality": 1}
    assert {d.reason: d.detail for d in result.dropped}["above_max_score"] == "quality 5.000 > 3.0"


@pytest.mark.parametrize("band, message", [({"threshold": "null", "max_score": 3}, "threshold is not"),
                                           ({"threshold": 4, "max_score": 3}, "below ugc_filter.threshold")])
def test_a_quality_band_that_cannot_work_is_refused(band, message):
    from pugc.config import load_recipe
    from pugc.recipe_types import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_recipe("tiny", overrides=[f"ugc_filter.{key}={value}" for key, value in band.items()])


def test_ugc_filter_expected_keeps_at_threshold_and_records_reason():
    probs = {"GOOD": {"5": 1.0}, "OKAY": {"3": 0.5, "5": 0.5}, "BAD": {"1": 1.0}}
    engine = FakeEngine(probs=lambda text: next(v for k, v in probs.items() if k in text))
    result = ugc_filter.run(docs("GOOD post", "OKAY post", "BAD post"), UGCFilterConfig(threshold=4.0), engine)
    assert [d.text for d in result.kept] == ["GOOD post", "OKAY post"]
    assert [d.quality for d in result.kept] == [5.0, 4.0]
    assert result.counts == {"in": 3, "out": 2, "dropped": {"low_quality": 1}}
    assert result.dropped[0].record_id == "d2" and result.dropped[0].ids == {"doc_id": "d2"}  # ids only, never the text


def test_ugc_filter_sampled_means_parsed_votes_and_drops_unparsable():
    replies = {"A": ["5", "4", "garbage"], "B": ["no idea", "??", "n/a"]}
    engine = FakeEngine(reply=lambda text, i: next(v for k, v in replies.items() if f"{k}-doc" in text)[i])
    config = UGCFilterConfig(threshold=4.0, mode="sampled", n=3, max_resamples=0)
    result = ugc_filter.run(docs("A-doc", "B-doc"), config, engine)
    assert [d.quality for d in result.kept] == [4.5]
    assert result.counts["dropped"] == {"unparsable_judgement": 1}
    assert engine.generate_calls[0][1].n == 3


def test_ugc_filter_disabled_runs_no_model():
    result = ugc_filter.run(docs("x", "y"), UGCFilterConfig(threshold=None), engine=None)
    assert len(result.kept) == 2 and not result.dropped


# -------------------------------------------------------------------------------------- instruction_gen
@pytest.mark.parametrize("raw, expected", [
    ("How do I descale a kettle?", "How do I descale a kettle?"),
    ("Question: How do I descale a kettle?", "How do I descale a kettle?"),
    ("Sure! Here is a question: \"How do I descale a kettle?\"", "How do I descale a kettle?"),
    ("\n\n**Question:** What is a good tent?\nExtra line", "What is a good tent?"),
    ("Q: Why?", "Why?"),
    ("   \n  ", None),
    ("Question:", None),
])
def test_clean_question(raw, expected):
    assert clean_question(raw) == expected


def test_instruction_gen_drops_empty_and_gives_stable_ids():
    engine = FakeEngine(reply=lambda text, i: "Question: What now?" if "first" in text else "  ")
    result = instruction_gen.run(docs("first doc", "second doc"), InstructionGenConfig(), engine)
    assert [i.instruction for i in result.kept] == ["What now?"]
    assert result.kept[0].doc_id == "d0" and not hasattr(result.kept[0], "document")  # joined by id later
    assert result.counts["dropped"] == {"empty_instruction": 1}
    again = instruction_gen.run(docs("first doc"), InstructionGenConfig(), engine)
    assert again.kept[0].id == result.kept[0].id


# ------------------------------------------------------------------------------------- relevance_filter
def test_relevance_filter_threshold_on_yes_probability():
    engine = FakeEngine(probs=lambda text: {"yes": 0.9, "no": 0.1} if "tent" in text else {"No": 0.7, "yes": 0.3})
    items = [instruction(0, "Which tent?"), instruction(1, "Which stove?")]
    documents = {"d0": "Tents: the blue one.", "d1": "Stoves: none."}
    result = relevance_filter.run(items, RelevanceFilterConfig(threshold=0.5), engine, documents=documents)
    assert [i.id for i in result.kept] == ["i0"]
    assert "Tents: the blue one." in engine.prob_calls[0][0].messages[-1]["content"]  # the joined document
    assert result.kept[0].relevance == pytest.approx(0.9)
    assert result.counts["dropped"] == {"not_relevant": 1}


# ------------------------------------------------------------------------------------ response_sampling
def test_response_sampling_k_samples_with_recipe_params():
    engine = FakeEngine(reply=lambda text, i: f"answer {i}" if i != 2 else "  ")
    config = ResponseSamplingConfig(k=3, temperature=0.7, top_p=0.9, max_tokens=50, seed=7)
    result = response_sampling.run([instruction(0), instruction(1)], config, engine)
    params = engine.generate_calls[0][1]
    assert (params.n, params.temperature, params.top_p, params.max_tokens, params.seed) == (3, 0.7, 0.9, 50, 7)
    assert [r.id for r in result.kept] == ["i0-0", "i0-1", "i1-0", "i1-1"]  # the empty sample is not a response
    assert (result.kept[0].instruction_id, result.kept[0].doc_id) == ("i0", "d0")  # ids, not the texts


def test_response_sampling_drops_question_with_no_usable_sample():
    result = response_sampling.run([instruction(0)], ResponseSamplingConfig(k=2), FakeEngine(reply=lambda t, i: ""))
    assert not result.kept and result.counts["dropped"] == {"empty_responses": 1}


# ------------------------------------------------------------------------------------- reward_scoring
def responses(*texts, instruction_id="i0"):
    return [Response(id=f"{instruction_id}-{k}", instruction_id=instruction_id, doc_id="d0", response=t,
                     sample_index=k) for k, t in enumerate(texts)]


TABLES = {"documents": {"d0": "THE REFERENCE DOC"}, "instructions": {"i0": "Q?", "i1": "Q1?"}}


HEADERS = ["###Task Description:", "###The instruction to evaluate:", "###Response to evaluate:",
           "###Reference Answer (Score 5):", "###Score Rubrics:", "###Feedback:"]


def test_judge_prompt_follows_prometheus_format_with_reference():
    prompt = reward_scoring.judge_prompt("Q?", "R1", "THE REFERENCE DOC")
    user = prompt.messages[-1]["content"]
    positions = [user.index(h) for h in HEADERS]
    assert positions == sorted(positions)
    assert user.rstrip().endswith("###Feedback:")
    assert "THE REFERENCE DOC" in user and "[RESULT]" in user
    assert all(f"Score {i}:" in user for i in range(1, 6))


def test_judge_prompt_reference_free_ablation_has_no_reference_anywhere():
    prompt = reward_scoring.judge_prompt("Q?", "R1", None)
    user = prompt.messages[-1]["content"]
    assert [h for h in HEADERS if h in user] == [h for h in HEADERS if "Reference" not in h]
    assert "reference" not in user.lower()  # neither the task description nor the rubric speaks of one
    assert all(f"Score {i}:" in user for i in range(1, 6)) and user.rstrip().endswith("###Feedback:")


def test_judge_prompts_keep_prometheus_task_description_verbatim():
    """The judge was trained on these exact words (grammar included): ABSOLUTE_PROMPT / ABSOLUTE_PROMPT_WO_REF."""
    with_ref = reward_scoring.judge_prompt("Q?", "R1", "DOC").messages[-1]["content"].splitlines()
    without = reward_scoring.judge_prompt("Q?", "R1", None).messages[-1]["content"].splitlines()
    assert with_ref[1] == ("An instruction (might include an Input inside it), a response to evaluate, a reference "
                           "answer that gets a score of 5, and a score rubric representing a evaluation criteria are given.")
    assert without[1] == ("An instruction (might include an Input inside it), a response to evaluate, and a score "
                          "rubric representing a evaluation criteria are given.")
    assert with_ref[2] == without[2] == ("1. Write a detailed feedback that assess the quality of the response strictly "
                                         "based on the given score rubric, not evaluating in general.")
    assert with_ref[2:6] == without[2:6]
    assert with_ref[-1] == without[-1] == "###Feedback: "  # the trailing space too


def test_reward_scoring_reference_setting_picks_the_template():
    engine = FakeEngine(reply=lambda text, i: "[RESULT] 3")
    for reference in (True, False):
        reward_scoring.run(responses("r"), RewardScoringConfig(mode="sampled", n=1, reference=reference), engine,
                           **TABLES)
    with_ref, without = (calls[0][0].messages[-1]["content"] for calls in engine.generate_calls)
    assert "THE REFERENCE DOC" in with_ref and "THE REFERENCE DOC" not in without


def test_reward_scoring_sampled_means_parsed_samples():
    outputs = {"good": ["Fine. [RESULT] 5", "Fine. [RESULT] 4", "[RESULT] 9"], "bad": ["meh [RESULT] 1"] * 3,
               "broken": ["no verdict"] * 3}
    engine = FakeEngine(reply=lambda text, i: next(v for k, v in outputs.items() if f"\n{k}\n" in text)[i])
    config = RewardScoringConfig(mode="sampled", n=3, max_resamples=0)
    result = reward_scoring.run(responses("good", "bad", "broken"), config, engine, **TABLES)
    scores = {r.response: r.score for r in result.kept}
    assert scores == {"good": 4.5, "bad": 1.0}
    assert result.kept[0].judge_scores == [5.0, 4.0, None]
    assert result.side[0].outputs[2] == "[RESULT] 9"  # raw output kept for inspection, beside the scores
    assert [s.response_id for s in result.side] == ["i0-0", "i0-1", "i0-2"]  # dropped responses' too
    assert result.counts["dropped"] == {"unparsable_judgement": 1}


def test_reward_scoring_expected_reads_verdict_after_feedback():
    engine = FakeEngine(reply=lambda text, i: "Solid answer. [RESULT] 5 trailing",
                        probs=lambda text: {"4": 0.5, "5": 0.5} if text.endswith("Solid answer. [RESULT] ") else {})
    result = reward_scoring.run(responses("r"), RewardScoringConfig(mode="expected", feedback_max_tokens=32), engine,
                                **TABLES)
    assert result.kept[0].score == pytest.approx(4.5)
    greedy = engine.generate_calls[0][1]
    assert greedy.temperature == 0.0 and greedy.max_tokens == 32 and greedy.n == 1


def test_expected_mode_cuts_the_feedback_at_the_marker_in_any_case():
    engine = FakeEngine(reply=lambda text, i: "Solid answer. [Result] 2 more",
                        probs=lambda text: {"4": 1.0} if text.endswith("Solid answer. [RESULT] ") else {})
    result = reward_scoring.run(responses("r"), RewardScoringConfig(mode="expected", feedback_max_tokens=32), engine,
                                **TABLES)
    assert result.kept[0].score == 4.0 and result.side[0].outputs == ["Solid answer."]


def test_judge_groups_responses_of_one_question_together():
    mixed = responses("a", "b", instruction_id="i1") + responses("c", "d", instruction_id="i0")
    mixed = [mixed[3], mixed[0], mixed[2], mixed[1]]
    engine = FakeEngine(reply=lambda text, i: "[RESULT] 3")
    reward_scoring.run(mixed, RewardScoringConfig(mode="sampled", n=1), engine, **TABLES)
    seen = [re.search(r"###Response to evaluate:\n(\w)", p.messages[-1]["content"]).group(1)
            for p in engine.generate_calls[0][0]]
    assert seen == ["c", "d", "a", "b"]


def test_expected_judge_always_scores_and_costs_one_greedy_pass():
    engine = FakeEngine(reply=lambda text, i: "x", probs=lambda text: {"3": 1.0})
    prompts = [Prompt(messages=({"role": "user", "content": "q"},))] * 4
    out = judge(engine, prompts, RESULT_1_TO_5, "expected", SamplingParams(n=8), rationale_tokens=5, verdict_prefix="[RESULT] ")
    assert [j.score for j in out] == [3.0] * 4
    assert len(engine.generate_calls) == 1 and engine.generate_calls[0][1].n == 1


# ----------------------------------------------------------------------------------- preference_pairs
def scored(instruction_id, *scores):
    return [ScoredResponse(id=f"{instruction_id}-{k}", instruction_id=instruction_id, doc_id="d",
                           response=f"resp {instruction_id} {k}", sample_index=k, score=s)
            for k, s in enumerate(scores)]


class Questions(dict):
    """Every instruction's question is "Q?"."""

    def __missing__(self, key):
        return "Q?"


def pairs(rows, config):
    return preference_pairs.run(rows, config, instructions=Questions())


def test_pairs_take_max_and_min_in_trl_conversational_format():
    result = pairs(scored("a", 2.0, 4.5, 1.0, 3.0), PreferencePairsConfig())
    (pair,) = result.kept
    assert pair.prompt == [{"role": "user", "content": "Q?"}]
    assert pair.chosen == [{"role": "assistant", "content": "resp a 1"}]
    assert pair.rejected == [{"role": "assistant", "content": "resp a 2"}]
    assert (pair.score_chosen, pair.score_rejected, pair.margin) == (4.5, 1.0, 3.5)
    assert (pair.chosen_id, pair.rejected_id, pair.doc_id) == ("a-1", "a-2", "d")


def test_pairs_drop_ties_margins_and_singletons():
    rows = scored("tied", 3.0, 3.0) + scored("close", 3.0, 3.2) + scored("wide", 1.0, 5.0) + scored("alone", 4.0)
    result = pairs(rows, PreferencePairsConfig(min_margin=0.5))
    assert [p.instruction_id for p in result.kept] == ["wide"]
    assert {d.record_id: d.ids for d in result.dropped}["close"] == {"instruction_id": "close", "doc_id": "d"}
    assert result.counts == {"in": 4, "out": 1,
                             "dropped": {"all_tied": 1, "below_margin": 1, "too_few_responses": 1}}


def test_a_margin_equal_to_the_minimum_passes_despite_float_noise():
    assert 4.1 - 4.0 < 0.1  # the float noise this guards against
    result = pairs(scored("edge", 4.0, 4.1) + scored("below", 4.0, 4.09), PreferencePairsConfig(min_margin=0.1))
    assert [p.instruction_id for p in result.kept] == ["edge"]
    assert result.counts["dropped"] == {"below_margin": 1}


def test_pairs_break_score_ties_by_sample_order():
    (pair,) = pairs(scored("a", 5.0, 1.0, 5.0, 1.0), PreferencePairsConfig()).kept
    assert (pair.chosen_id, pair.rejected_id) == ("a-0", "a-1")


def cut_at(rows, *cut_indices):
    """The same rows, those at `cut_indices` cut at max_tokens."""
    for index in cut_indices:
        rows[index].finish_reason = "length"
    return rows


def test_a_cut_answer_is_never_chosen_but_may_be_rejected():
    rows = cut_at(scored("a", 5.0, 3.0, 1.0), 0, 2)  # the best and the worst were cut
    result = pairs(rows, PreferencePairsConfig())
    (pair,) = result.kept
    assert (pair.chosen_id, pair.rejected_id) == ("a-1", "a-2")  # the best complete one beats the cut worst
    assert (result.metrics["cut_responses"], result.metrics["cut_chosen"], result.metrics["cut_rejected"]) == (2, 0, 1)


def test_drop_leaves_cut_answers_out_of_both_sides():
    rows = cut_at(scored("a", 5.0, 3.0, 2.0, 1.0), 0, 3)
    (pair,) = pairs(rows, PreferencePairsConfig(cut_responses="drop")).kept
    assert (pair.chosen_id, pair.rejected_id) == ("a-1", "a-2")


def test_allowed_lets_a_cut_answer_win_and_counts_it():
    result = pairs(cut_at(scored("a", 5.0, 1.0), 0), PreferencePairsConfig(cut_responses="allowed"))
    assert result.kept[0].chosen_id == "a-0" and result.metrics["cut_chosen"] == 1


def test_a_question_whose_answers_were_all_cut_is_dropped_with_its_reason():
    rows = cut_at(scored("all", 4.0, 2.0), 0, 1) + cut_at(scored("one_left", 2.0, 4.0), 0)
    result = pairs(rows, PreferencePairsConfig(cut_responses="drop"))
    assert result.counts == {"in": 2, "out": 0, "dropped": {"cut_at_max_tokens": 2}}
    assert "1 of 2 responses cut at max_tokens" in {d.record_id: d.detail for d in result.dropped}["one_left"]
    # rejected_only: one complete answer may still win over a cut one; none complete is no pair
    result = pairs(rows, PreferencePairsConfig())
    assert [p.instruction_id for p in result.kept] == ["one_left"] and result.counts["dropped"] == {"cut_at_max_tokens": 1}


def test_a_cut_answer_that_scores_as_well_as_the_best_complete_one_makes_no_pair():
    result = pairs(cut_at(scored("a", 3.0, 3.0), 1), PreferencePairsConfig())
    assert result.counts["dropped"] == {"all_tied": 1}


def test_pair_figures_give_the_two_sides_mean_lengths():
    rows = scored("a", 5.0, 1.0) + scored("bb", 1.0, 5.0)  # "resp a 0" (8 chars) / "resp bb 1" (9 chars)
    result = pairs(rows, PreferencePairsConfig())
    assert result.metrics["chosen_chars_mean"] == 8.5 and result.metrics["rejected_chars_mean"] == 8.5
    assert preference_pairs.pair_figures([])["chosen_chars_mean"] == 0.0


@given(st.lists(st.tuples(st.integers(1, 5), st.booleans()), min_size=1, max_size=8),
       st.sampled_from(["rejected_only", "drop"]))
def test_no_pair_chooses_a_cut_answer(answers, cut_responses):
    rows = [ScoredResponse(id=f"q-{k}", instruction_id="q", doc_id="d", response=f"r{k}", sample_index=k,
                           score=float(score), finish_reason="length" if cut else "stop")
            for k, (score, cut) in enumerate(answers)]
    result = pairs(rows, PreferencePairsConfig(cut_responses=cut_responses))
    cut_ids = {r.id for r in rows if r.finish_reason == "length"}
    assert result.counts["out"] + sum(result.counts["dropped"].values()) == 1  # the question is accounted for
    for pair in result.kept:
        assert pair.chosen_id not in cut_ids
        assert cut_responses == "rejected_only" or pair.rejected_id not in cut_ids
        assert pair.score_chosen == max(float(s) for s, cut in answers if not cut)


def test_unparsable_verdicts_are_resampled_with_new_seeds_then_dropped():
    calls = []

    def reply(text, i):
        calls.append(i)
        if "stubborn" in text:
            return "I refuse to score."
        return "[RESULT] 4" if len(calls) > 3 else "no marker"  # the first round never parses

    engine = FakeEngine(reply=reply)
    config = RewardScoringConfig(mode="sampled", n=2, max_resamples=2)
    result = reward_scoring.run(responses("fixable", "stubborn"), config, engine, **TABLES)
    assert [r.response for r in result.kept] == ["fixable"]
    fixed = result.kept[0]
    assert fixed.judge_scores == [4.0, 4.0] and fixed.score == 4.0
    assert result.side[0].outputs[:2] == ["no marker", "no marker"]  # every attempt kept for inspection
    seeds = [params.seed for _, params in engine.generate_calls]
    assert len(seeds) == 3 and len(set(seeds)) == 3  # one first round, two re-sample rounds, each its own seed
    (dropped,) = result.dropped
    assert dropped.reason == "unparsable_judgement" and "I refuse" in dropped.detail


def test_documents_over_the_token_budget_are_cut_and_counted():
    seen = []
    engine = FakeEngine(probs=lambda text: seen.append(text) or {"5": 1.0})
    long_doc = " ".join(f"w{i}" for i in range(50))
    result = ugc_filter.run(docs(long_doc, "short doc"), UGCFilterConfig(threshold=1.0, max_document_tokens=10), engine)
    assert result.metrics["documents_truncated"] == 1.0
    assert "w9" in seen[0] and "w10" not in seen[0]


def test_expected_mode_drops_a_partial_character_where_the_feedback_was_cut():
    """transformers decodes a cut multi-byte character as U+FFFD; vLLM holds it back: both continue alike."""
    engine = FakeEngine(reply=lambda text, i: "Solid answer. \ufffd",
                        probs=lambda text: {"4": 1.0} if text.endswith("Solid answer. [RESULT] ") else {})
    result = reward_scoring.run(responses("r"), RewardScoringConfig(mode="expected", feedback_max_tokens=32), engine,
                                **TABLES)
    assert result.kept[0].score == 4.0 and result.side[0].outputs == ["Solid answer."]
