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
