import pytest

from pugc.stages.verdicts import RATING_1_TO_5, YES_NO, parse_rating, parse_result_marker, parse_yes_no


@pytest.mark.parametrize("text, expected", [
    ("The response is accurate and complete. [RESULT] 5", 5),
    ("Feedback here.\n[RESULT] 3\n", 3),
    ("ok [RESULT] (4)", 4),
    ("ok [RESULT]: 2.", 2),
    ("ok [RESULT] 6", None),                       # out of range
    ("ok [RESULT] 0", None),
    ("[RESULT] 4 but then more text", None),       # marker not at the end of the judge's output
    ("quoting [RESULT] 5 from the reference. Final: [RESULT] 2", 2),  # only the final marker counts
    ("no marker at all, score 4", None),
    ("", None),
    ("[RESULT] 4.5", None),
])
def test_result_marker(text, expected):
    assert parse_result_marker(text) == expected


# The `[RESULT]` forms prometheus-eval's parser (prometheus_eval/parser.py) accepts after the marker: all count.
@pytest.mark.parametrize("text, expected", [
    ("Clear and correct. [RESULT] 4", 4),
    ("Clear and correct. [result] 4", 4),                 # the marker in any case
    ("Clear and correct. [Result] 3", 3),
    ("Clear and correct. [RESULT] 4/5", 4),
    ("Clear and correct. [RESULT] 4 / 5", 4),
    ("Clear and correct. [Result] 4/5", 4),
    ("Clear and correct. [RESULT] 5 out of 5", 5),
    ("Clear and correct. [RESULT] [4]", 4),
    ("Clear and correct. [RESULT] (5)", 5),
    ("Clear and correct. [RESULT]: 4", 4),
    ("Clear and correct. [Result]: 4", 4),
    ("Clear and correct. [Result] Score: 2", 2),          # marker, then a label
    ("Clear and correct. [Result] Result: 4", 4),
    ("Clear and correct. [RESULT] score of 1", 1),
    ("Clear and correct. [RESULT] 4/10", None),           # another scale: not a 1-5 verdict
    ("Clear and correct. [RESULT] 4 out of 10", None),
])
def test_result_marker_accepts_prometheus_forms(text, expected):
    assert parse_result_marker(text) == expected


# Prometheus's parser also reads a score without the marker. Here none of those count: a judge quotes and
# paraphrases the text it grades (a response or document may end in "Score: 5") and restates the rubric
# ("Score 4: The response is ..."), so a free-text score at the end of its output is as likely a quotation, or a
# feedback cut off by max_tokens, as a verdict. The template asks for "[RESULT] n", the one marker the prompt
# neutraliser keeps out of inserted text, so only it is trusted; an output without it is drawn again
# (max_resamples) and, if it never comes, dropped as unparsable_judgement rather than guessed.
@pytest.mark.parametrize("text, why", [
    ("Good job. Score: 3", "a label that any quoted text can end with"),
    ("Good job. score: 3", "the same, lower case"),
    ("Good job. score of 1", "reads as prose: 'the response deserves a score of 1 under the old rubric'"),
    ("The response earns a score of 4", "feedback prose, not the requested format"),
    ("Good job. Result: 4", "a quoted 'Result:' line of a graded response"),
    ("Good job. (Score 5)", "the reference header '(Score 5)' is quoted text of the prompt"),
    ("Good job. [Score 4]", "a restated rubric entry"),
    ("Good job. [SCORE] 4", "not the marker the template asks for, nor one the neutraliser defuses"),
    ("Per the rubric, Score 4", "a rubric line cut off at max_tokens"),
])
def test_free_text_scores_do_not_count(text, why):
    assert parse_result_marker(text) is None, why


@pytest.mark.parametrize("text, expected", [
    ("4", 4), (" 5\n", 5), ("Rating: 3", 3), ("Score: 2/5", 2), ("4 out of 5", 4), ("**5**", 5),
    ("7", None), ("0", None), ("great", None), ("", None), ("12", None),
])
def test_rating(text, expected):
    assert parse_rating(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Yes", 1), ("yes.", 1), ("No, it does not.", 0), ("  NO", 0), ("maybe", None), ("", None), ("Yesterday", None),
])
def test_yes_no(text, expected):
    assert parse_yes_no(text) == expected


def test_expectation_renormalises_over_verdict_tokens():
    value, mass = RATING_1_TO_5.expectation({"1": 0.1, "5": 0.3})
    assert value == pytest.approx((0.1 * 1 + 0.3 * 5) / 0.4)
    assert mass == pytest.approx(0.4)


def test_expectation_yes_no_sums_case_variants():
    value, mass = YES_NO.expectation({"yes": 0.2, "Yes": 0.2, "no": 0.1, "No": 0.0})
    assert value == pytest.approx(0.8)
    assert mass == pytest.approx(0.5)


def test_expectation_without_mass_is_none():
    assert RATING_1_TO_5.expectation({}) == (None, 0.0)
