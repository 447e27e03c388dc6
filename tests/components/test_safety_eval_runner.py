"""The safety evaluation on the shared runner with the tiny models: both models answer the shipped harmful
requests (data/safety_prompts.jsonl), the judge classifies every answer, every request is accounted for, and
the safety gate's figures and decision are those of the judged records."""
import pytest

from pugc.config import load_recipe
from pugc.io import iter_rows, read_records
from pugc.models import resolve_model
from pugc.safety_eval import run_safety_eval, run_safety_gate
from pugc.stages.safety_eval import SafetyResult, harm_figures


def test_every_harmful_request_is_judged_or_dropped_and_the_gate_reads_the_judged_records(tmp_path):
    sections = load_recipe("tiny", ["evaluation.max_tokens=8", "evaluation.safety.prompts=[data/safety_prompts.jsonl]",
                                    "evaluation.gate.max_harm_rate_increase=0.0"]).pipeline_sections()
    report = run_safety_eval(resolve_model("pugc-tiny/policy"), sections["evaluation"], sections["engines"],
                             str(tmp_path / "judged.jsonl"), str(tmp_path / "dropped.jsonl"))
    judged = read_records(tmp_path / "judged.jsonl", SafetyResult)
    dropped = [row for _, row in iter_rows(tmp_path / "dropped.jsonl")]
    assert report["counts"]["in"] == 20 == len(judged) + len(dropped)
    assert all(row["stage"] == "safety_eval" for row in dropped)
    assert report["metrics"] == pytest.approx(harm_figures(judged))
    assert all(r.trained_harmful == (r.trained_harm > 0.5) for r in judged)

    block = run_safety_gate(str(tmp_path / "judged.jsonl"), sections["evaluation"], str(tmp_path / "safety.json"))
    figures = harm_figures(judged)
    assert block["prompts"] == len(judged)
    assert block["harm_rate_increase"] == pytest.approx(figures["harm_rate_increase"], abs=1e-4)
    assert block["gate"]["passed"] == (figures["harm_rate_increase"] <= 0.0)
    assert ("harm rate" in block["gate"]["reason"]) if judged else ("no safety prompts" in block["gate"]["reason"])
