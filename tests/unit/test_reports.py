"""Numbers in reports read as a person would write them, whatever types KFP hands back (floats for ints)."""
from pugc.reports import number, run_summary_html
from pugc.summary import markdown_report

# run_summary's view of a run: KFP metadata brings every number back as a float
SUMMARY = {
    "input_lines": 202.0, "quarantined": 6.0, "preference_pairs": 96.0,
    "stages": {"ingest_ugc": {"in": 196, "out": 196, "dropped": {}},
               "dpo_training": {"in": 96, "out": 96, "dropped": {}}},
    "training": {"method": "dpo", "steps": 4.0, "pairs": 96.0, "final_loss": 0.6148011088371277,
                 "base_model": "pugc-tiny/policy"},
}


def test_number():
    assert [number(v) for v in (4.0, 1234, 0.6148011088371277, 12.345, 2500.7, None)] == \
        ["4", "1,234", "0.615", "12.3", "2,501", "-"]


def test_markdown_and_html_summaries_say_it_plainly():
    markdown = markdown_report(SUMMARY)
    assert "DPO: 4 steps on 96 pairs, final loss 0.615, base pugc-tiny/policy" in markdown
    assert "- input lines: 202 (quarantined 6)" in markdown and ".0" not in markdown
    page = run_summary_html(SUMMARY)
    assert "DPO: 4 steps on 96 pairs, final loss 0.615" in page and ">records<" in page and ">stage<" in page


def lengths(round_index, sampled, chosen, rejected, trained):
    return {"round": round_index, "sampled_chars": sampled, "truncated_fraction": 0.25, "chosen_chars": chosen,
            "rejected_chars": rejected, "cut_chosen": 0.0, "cut_rejected": 3.0, "trained_answer_chars": trained}


def test_the_length_trend_reads_down_the_rounds():
    from pugc.summary import length_trend

    rounds = [{"lengths": lengths(1, 1676.0, 1800.0, 1500.0, 1900.0)},
              {"lengths": lengths(2, 2587.0, 2700.0, 2300.0, 2800.7)}]
    summary = {**SUMMARY, "rounds": rounds}
    summary["lengths"] = length_trend(summary)
    assert [row["sampled_chars"] for row in summary["lengths"]] == [1676.0, 2587.0]
    markdown = markdown_report(summary)
    assert "| 1 | 1,676 | 25.0% | 1,800 | 1,500 | 0 | 3 | 1,900 |" in markdown
    assert "| 2 | 2,587 | 25.0% | 2,700 | 2,300 | 0 | 3 | 2,801 |" in markdown
    assert "<h2>Answer lengths</h2>" in run_summary_html(summary) and ">2,587<" in run_summary_html(summary)


def test_a_single_round_run_reads_its_lengths_from_the_stage_figures():
    from pugc.summary import length_trend

    stages = {"response_sampling": {"metrics": {"response_chars_mean": 120.0, "truncated_fraction": 0.5}},
              "preference_pairs": {"metrics": {"chosen_chars_mean": 130.0, "rejected_chars_mean": 90.0,
                                               "cut_chosen": 0.0, "cut_rejected": 2.0}}}
    evaluation = {"mean_length": {"trained": {"chars": 140.0, "tokens": 30.0}}}
    (row,) = length_trend({"stages": stages, "evaluation": evaluation})
    assert row == {"round": 1, "sampled_chars": 120.0, "truncated_fraction": 0.5, "chosen_chars": 130.0,
                   "rejected_chars": 90.0, "cut_chosen": 0.0, "cut_rejected": 2.0, "trained_answer_chars": 140.0}
    assert length_trend({"stages": {"ingest_ugc": {}}}) == []  # no pairs stage, no lengths


def test_the_pairs_report_shows_both_sides_lengths_and_the_cut_answers(tmp_path):
    from pugc.io import write_jsonl
    from pugc.records import PreferencePair, to_row
    from pugc.reports import PairsDigest, write_pairs_report

    def pair(chosen: str, rejected: str) -> PreferencePair:
        return PreferencePair(prompt=[{"role": "user", "content": "Q?"}], chosen=[{"role": "assistant", "content": chosen}],
                              rejected=[{"role": "assistant", "content": rejected}], score_chosen=5.0,
                              score_rejected=1.0, margin=4.0, instruction_id="i", doc_id="d", chosen_id="c",
                              rejected_id="r")

    pairs = [pair("x" * 100, "y" * 300), pair("x" * 10_000, "y" * 500)]
    digest = PairsDigest()
    for p in pairs:
        digest.add(p)
    assert digest.chosen_chars.counts[0] == 1 and digest.chosen_chars.counts[-1] == 1  # longer ones: the last bin
    write_jsonl(str(tmp_path / "pairs.jsonl"), (to_row(p) for p in pairs))
    write_pairs_report(str(tmp_path / "pairs.jsonl"), {"in": 2, "dropped": {}}, str(tmp_path / "report.html"),
                       {"cut_chosen": 0.0, "cut_rejected": 1.0})
    page = (tmp_path / "report.html").read_text()
    assert "Mean length: chosen 5,050 characters, rejected 400." in page
    assert "Answers cut at max_tokens: chosen in 0 pairs, rejected in 1 pair." in page
    assert "Chosen response lengths" in page and "Rejected response lengths" in page
