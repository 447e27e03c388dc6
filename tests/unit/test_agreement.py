"""Judge agreement arithmetic with scripted verdicts: exact figures for each N, tie handling, unscored pairs."""
import json

import pytest

from pugc.agreement import (LabelledPair, agreement_rows, can_plot, evaluate, format_table, preference, read_pairs,
                            write)
from pugc.config import RewardScoringConfig
from tests.fakes import FakeEngine

X = None  # a sample whose verdict did not parse
# (label, votes for a, votes for b): eight samples each, as one judging pass gives them
SCRIPT = [
    ("a", [5] * 8, [1] * 8),                     # always right
    ("b", [5] + [1] * 7, [3] * 8),               # wrong at N=1 (5 > 3), right from N=3 on (2.33 < 3)
    ("tie", [4] * 8, [4] * 8),                   # a judge tie: right when ties count, left out of no-tie
    ("a", [X] + [4] * 7, [3] * 8),               # unscored at N=1 (a miss), right from N=3 on
    ("tie", [5] * 8, [2] * 8),                   # the judge prefers a: a miss when ties count
    ("a", [3] * 8, [3] * 8),                     # a judge tie on an untied label: a miss in both settings
]


def rows():
    labels = [label for label, _, _ in SCRIPT]
    return agreement_rows(labels, [(a, b) for _, a, b in SCRIPT], (1, 3, 5, 8), reference=True)


def test_agreement_figures_per_sample_count():
    by_n = {row["samples"]: row for row in rows()}
    assert by_n[1]["ties_counted"] == {"agree": 2, "total": 6, "agreement": 2 / 6}
    assert by_n[1]["no_ties"] == {"agree": 1, "total": 4, "agreement": 0.25}
    assert (by_n[1]["judge_ties"], by_n[1]["unscored"]) == (2, 1)
    for n in (3, 5, 8):
        assert by_n[n]["ties_counted"] == {"agree": 4, "total": 6, "agreement": 4 / 6}
        assert by_n[n]["no_ties"] == {"agree": 3, "total": 4, "agreement": 0.75}
        assert (by_n[n]["judge_ties"], by_n[n]["unscored"]) == (2, 0)


@pytest.mark.parametrize("votes_a, votes_b, n, expected", [
    ([4, 2], [3, 3], 1, "a"), ([4, 2], [3, 3], 2, "tie"), ([X, X, 5], [1, 1, 1], 2, None),
    ([X, 2, 4], [3, X, X], 3, "tie"), ([1], [2], 8, "b"),   # fewer samples than N: the mean of those there are
])
def test_preference_uses_the_mean_of_the_first_n_parsed_samples(votes_a, votes_b, n, expected):
    assert preference(votes_a, votes_b, n) == expected


def test_no_tie_setting_without_untied_labels_has_no_figure():
    (row,) = agreement_rows(["tie"], [([3], [3])], (1,), reference=False)
    assert row["no_ties"] == {"agree": 0, "total": 0, "agreement": None}
    assert row["ties_counted"]["agreement"] == 1.0


def reply_for(script):
    """A judge that answers each response with its scripted vote of that sample."""
    def reply(text, sample):
        for response, votes in script.items():
            if f"###Response to evaluate:\n{response}\n" in text:
                vote = votes[sample]
                return "no verdict" if vote is None else f"Feedback. [RESULT] {vote}"
        raise AssertionError("unscripted response")
    return reply


def test_evaluate_judges_both_settings_once_with_eight_samples():
    pairs = [LabelledPair("Q1", "good", "bad", "a", reference="REF ONE"),
             LabelledPair("Q2", "meh", "fine", "b", reference="REF TWO"),
             LabelledPair("Q3", "same", "same too", "tie")]
    engine = FakeEngine(reply=reply_for({"good": [5] * 8, "bad": [1] * 8, "meh": [2] * 8, "fine": [2] * 8,
                                         "same": [3] * 8, "same too": [3] * 8}))
    report = evaluate(pairs, RewardScoringConfig(mode="sampled", n=2, max_resamples=0), engine)
    assert [call[1].n for call in engine.generate_calls] == [8, 8]  # one pass per setting serves every N
    with_ref, without = (call[0] for call in engine.generate_calls)
    assert len(with_ref) == 4 and all("REF" in p.messages[-1]["content"] for p in with_ref)
    assert len(without) == 6 and not any("REF" in p.messages[-1]["content"] for p in without)
    assert [(r["reference"], r["samples"]) for r in report["rows"]] == [(True, n) for n in (1, 3, 5, 8)] + \
        [(False, n) for n in (1, 3, 5, 8)]
    first_with, first_without = report["rows"][0], report["rows"][4]
    assert first_with["ties_counted"] == {"agree": 1, "total": 2, "agreement": 0.5}  # Q2: judge tie, label b
    assert first_without["ties_counted"] == {"agree": 2, "total": 3, "agreement": 2 / 3}
    assert first_without["no_ties"] == {"agree": 1, "total": 2, "agreement": 0.5}
    assert report["labels"] == {"a": 1, "b": 1, "tie": 1} and report["with_reference"] == 2
    table = format_table(report).splitlines()
    assert table[0].split()[:2] == ["reference", "N"] and len(table) == 2 + 8
    assert "66.7%  (2/3)" in table[6]


def test_expected_mode_reports_one_sample_count():
    engine = FakeEngine(reply=lambda text, i: "ok", probs=lambda text: {"4": 1.0} if "good" in text else {"2": 1.0})
    report = evaluate([LabelledPair("Q", "good", "poor", "a")], RewardScoringConfig(mode="expected"), engine)
    assert [(r["reference"], r["samples"]) for r in report["rows"]] == [(False, 1)]  # no pair has a reference
    assert report["rows"][0]["ties_counted"]["agreement"] == 1.0


@pytest.mark.parametrize("line, message", [
    ("not json", ":2: not valid JSON"),
    ('{"prompt": "p", "response_a": "x", "label": "a"}', ":2: missing 'response_b'"),
    ('{"prompt": "p", "response_a": "x", "response_b": "y", "label": "A>B"}', ":2: label 'A>B' is not one of"),
    ('{"prompt": "p", "response_a": "x", "response_b": 3, "label": "a"}', ":2: 'response_b' must be a string"),
    ('["p"]', ":2: expected a JSON object"),
    ('{"prompt": null, "response_a": "x", "response_b": "y", "label": "a"}', ":2: 'prompt' must be a string"),
    ('{"prompt": "p", "response_a": "x", "response_b": "y", "label": "a", "reference": 1}', ":2: 'reference' must"),
])
def test_bad_pairs_file_names_the_line_and_key(tmp_path, line, message):
    good = json.dumps({"prompt": "p", "response_a": "x", "response_b": "y", "label": "Tie"})
    path = tmp_path / "pairs.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(ValueError, match=f"pairs.jsonl{message}"):
        read_pairs(path)


def test_pairs_file_labels_are_case_insensitive_and_reference_optional(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "p", "response_a": "x", "response_b": "y", "label": "Tie"}) + "\n\n" +
                    json.dumps({"prompt": "p", "response_a": "x", "response_b": "y", "label": "B", "reference": "r"}))
    assert [(p.label, p.reference) for p in read_pairs(path)] == [("tie", None), ("b", "r")]
    path.write_text("\n")
    with pytest.raises(ValueError, match="no labelled pairs"):
        read_pairs(path)


def test_without_matplotlib_the_table_and_json_are_still_written(tmp_path, monkeypatch):
    import sys

    report = {"pairs": 1, "model": "m", "rows": agreement_rows(["a"], [([5], [1])], (1,), reference=False)}
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as in the vllm image
    assert not can_plot()
    paths = write(report, tmp_path, with_plot=can_plot())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agreement.json", "agreement.txt"] and "plot" not in paths
    assert json.loads(paths["json"].read_text())["rows"][0]["ties_counted"]["agreement"] == 1.0
