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
