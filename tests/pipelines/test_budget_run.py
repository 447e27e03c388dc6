"""cluster.budget end to end: `pugc run` on the sample slice with a token budget that the first LLM stage's
estimate fits and the second's, on top of what the first measurably spent, does not. The run stops before the
second stage, exit 1, with the budget's one line; the stages before it ran and their lineage carries the
spending the line names. Tokens, because a CPU run measures them (its GPU-hours are 0)."""
import contextlib
import io
import json
import re

import pytest

from pugc.cli import main

pytestmark = pytest.mark.e2e


def merged_lineage(run_dir, stage):
    """The lineage of a stage's merged output, as the local runner recorded it."""
    for output in run_dir.glob("artifacts/*/merge-shards*/executor_output.json"):
        metadata = json.loads(output.read_text())["artifacts"]["merged"]["artifacts"][0]["metadata"]
        if metadata["stage"] == stage:
            return metadata
    raise AssertionError(f"no merged output of {stage} under {run_dir}")


def test_a_budget_the_next_stage_would_pass_stops_the_run_before_it(tmp_path, sample_slice):
    console, errors = io.StringIO(), io.StringIO()
    # one token per document (cluster.estimate.document_tokens): ugc_filter's estimate is 2 per document, well
    # under 200 for the slice's 58 documents; what it really spends (whole prompts) is far over
    with contextlib.redirect_stdout(console), contextlib.redirect_stderr(errors):
        code = main(["run", "--input", str(sample_slice), "--output", str(tmp_path), "--run-id", "budget",
                     "--set", "cluster.budget.tokens=200", "--set", "cluster.estimate.document_tokens=1"])
    assert code == 1, console.getvalue() + errors.getvalue()
    lines = errors.getvalue().strip().splitlines()
    assert len(lines) == 1, lines
    stopped = re.match(r"pugc: budget: stopped before safety_screen: spent ([\d,]+) tokens, its estimate ([\d,]+) "
                       r"tokens, budget cluster\.budget\.tokens 200 tokens \(task safety-screen; ", lines[0])
    assert stopped, lines[0]
    run_dir = tmp_path / "budget"
    assert (run_dir / "FAILED").exists() and not (run_dir / "summary.json").exists()
    filtered = merged_lineage(run_dir, "ugc_filter")  # the stage before ran, and its lineage holds its spending
    spent = json.loads(filtered["spent"])
    assert spent["tokens"] == filtered["tokens_in"] + filtered["tokens_out"] > 200
    assert int(stopped.group(1).replace(",", "")) == spent["tokens"]
    assert int(stopped.group(2)) == 2 * filtered["rows_out"]  # the screen's estimate on what the filter kept
    assert re.search(r"\[2/14\] +ugc_filter", console.getvalue()) and "safety_screen " not in console.getvalue()
    assert not list(run_dir.glob("artifacts/*/*/safety-screen/screened_ugc"))  # the screen wrote nothing
