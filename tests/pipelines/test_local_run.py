"""The whole pipeline through KFP's local SubprocessRunner on a slice of the sample data, tiny models, CPU.

The module's run goes through `pugc run` (in process), so its console output is checked too."""
import contextlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from pugc.cli import main
from pugc.config import load_recipe
from pugc.evaluation import SELF_JUDGED
from pugc.models import resolve_model

ONE_TO_ONE = ["ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "reward_scoring", "preference_pairs"]
CHAIN = ["ingest_ugc", "ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "held_out_split",
         "response_sampling"]
DAG_STAGES = ["ingest_ugc", "ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "held_out_split",
              "response_sampling", "reward_scoring", "preference_pairs", "dpo_training", "evaluate", "evaluation_gate", "export_model",
              "run_summary"]

pytestmark = pytest.mark.e2e


MAX_CONSOLE_LINES = 36  # 14 stage lines, the stage table, its cost line, personal data, totals, reports, the gate


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, sample_slice):
    """`pugc run` as a user types it; returns (runs folder, run folder, summary, console output)."""
    root = tmp_path_factory.mktemp("runs")
    console = io.StringIO()
    with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
        code = main(["run", "--input", str(sample_slice), "--output", str(root), "--run-id", "e2e"])
    assert code == 0, console.getvalue()
    summary = json.loads((root / "e2e" / "summary.json").read_text())
    return root, root / "e2e", summary, console.getvalue()


@pytest.fixture(scope="module")
def run(cli_run):
    return cli_run[:3]


def write_dump(folder: Path, slice_path: Path) -> Path:
    """The slice as users' dumps come: gzipped JSONL around a CSV part (the malformed lines in the gzipped
    parts), each record with a licence, and a README the folder read skips by name."""
    import csv
    import gzip

    lines = [licensed(line, number) for number, line in enumerate(slice_path.read_text(encoding="utf-8")
                                                                  .splitlines(keepends=True))]
    folder.mkdir()
    with gzip.open(folder / "part-1.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(lines[:13])
    with open(folder / "part-2.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text", "source", "domain", "license"])
        writer.writeheader()
        writer.writerows(json.loads(line) for line in lines[13:47])
    with gzip.open(folder / "part-3.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(lines[47:])
    (folder / "README.md").write_text("forum dump, December")
    return folder


LICENCES = ("cc-by-4.0", "cc0-1.0")


def licensed(line: str, number: int) -> str:
    """A JSONL line with a licence added (alternating), a malformed one as it is."""
    try:
        row = json.loads(line)
    except ValueError:
        return line
    return json.dumps({**row, "license": LICENCES[number % 2]}) + "\n"


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_input_line_is_accounted_for(run):
    _, run_dir, summary = run
    stages = summary["stages"]
    assert summary["input_lines"] == 60 and summary["quarantined"] == 2
    assert summary["input_records"] == 58 == stages["ingest_ugc"]["in"]
    for stage in ONE_TO_ONE + ["ingest_ugc"]:
        counts = stages[stage]
        assert counts["in"] == counts["out"] + sum(counts["dropped"].values()), stage
    for before, after in zip(CHAIN, CHAIN[1:]):
        assert stages[after]["in"] == stages[before]["out"], after
    assert stages["reward_scoring"]["in"] == stages["response_sampling"]["out"]
    rejected = rows(run_dir / "rejected.jsonl")
    total_dropped = sum(sum(s["dropped"].values()) for s in stages.values())
    assert len(rejected) == summary["quarantined"] + total_dropped
    malformed = [r for r in rejected if r["reason"].startswith("malformed:")]
    assert sorted(r["ids"]["line"] for r in malformed) == [13, 48]
    assert {r["reason"] for r in malformed} == {"malformed:not_json"}


def test_summary_has_the_documented_fields(run):
    root, run_dir, summary = run
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk == summary
    for key in ("run_id", "recipe", "input_lines", "quarantined", "input_records", "stages", "preference_pairs",
                "model_dir", "wall_seconds"):
        assert key in summary, key
    assert summary["recipe"] == "tiny" and summary["run_id"] == "e2e"
    assert os.path.realpath(root / "latest") == os.path.realpath(run_dir)
    # the saved recipe names the input actually read (input.uri), not the recipe's default
    assert load_recipe(run_dir / "recipe.yaml").input.uri == summary["input_uri"]
    assert load_recipe(run_dir / "recipe.yaml").digest() == \
        load_recipe("tiny", [f"input.uri={summary['input_uri']}"]).digest()
    assert summary["status"] == "succeeded" and not (run_dir / "FAILED").exists()
    assert (run_dir / "pipeline.log").stat().st_size > 0


def test_summary_accounts_for_time_and_tokens_per_stage(cli_run):
    """The cost block: the LLM stages' engines' tokens and seconds as measured; a local run held no GPU, so its
    GPU-hours are 0, and the console's closing table and the HTML page show the figures."""
    _, run_dir, summary, console = cli_run
    cost = summary["cost"]
    assert cost["where"] == "local" and cost["total"]["gpu_hours"] == 0
    assert cost["stages"]["ugc_filter"]["tokens_in"] > 0  # expected mode: prompts read, nothing generated
    for stage in ("instruction_gen", "response_sampling", "reward_scoring"):
        entry = cost["stages"][stage]
        assert entry["tokens_in"] > 0 and entry["tokens_out"] > 0 and entry["task_seconds"] > 0, stage
        assert entry["tokens_out"] == summary["stages"][stage]["tokens_out"]
        assert entry["throughput"] == round(entry["tokens_out"] / entry["task_seconds"], 1)
    assert cost["total"]["tokens_out"] == sum(e["tokens_out"] for e in cost["stages"].values())
    assert cost["total"]["per_preference_pair"]["tokens"] == round(
        (cost["total"]["tokens_in"] + cost["total"]["tokens_out"]) / summary["preference_pairs"], 1)
    assert "GPU-hours" in console and "a local run holds no accelerator" in console
    assert "<h2>Cost</h2>" in (run_dir / "reports" / "run_summary.html").read_text()


def test_pairs_are_trl_conversational_and_traceable(run):
    _, run_dir, summary = run
    pairs = rows(run_dir / "preference_pairs.jsonl")
    assert len(pairs) == summary["preference_pairs"] >= 5
    (ingested,) = run_dir.glob("artifacts/*/ingest-ugc/ugc")
    doc_ids = {doc["id"] for doc in rows(ingested)}
    for pair in pairs:
        assert [m["role"] for m in pair["prompt"]] == ["user"]
        assert [m["role"] for m in pair["chosen"]] == ["assistant"] == [m["role"] for m in pair["rejected"]]
        assert pair["score_chosen"] > pair["score_rejected"]
        assert pair["margin"] == pytest.approx(pair["score_chosen"] - pair["score_rejected"], abs=1e-3)
        assert pair["chosen_id"].startswith(pair["instruction_id"]) and pair["rejected_id"] != pair["chosen_id"]
        assert pair["doc_id"] in doc_ids


def test_dpo_checkpoint_loads_and_differs_from_the_policy(run):
    _, _, summary = run
    trained = AutoModelForCausalLM.from_pretrained(summary["model_dir"]).state_dict()
    base = AutoModelForCausalLM.from_pretrained(resolve_model("pugc-tiny/policy")).state_dict()
    assert trained.keys() == base.keys()
    assert any(not torch.equal(trained[k], base[k]) for k in base)
    assert summary["training"]["steps"] == load_recipe("tiny").dpo_training.trainer["max_steps"]
    for path in [Path(summary["model_dir"]), *Path(summary["model_dir"]).rglob("*")]:  # from_pretrained by anyone
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path


def test_quarantined_lines_keep_their_raw_text(run):
    _, run_dir, _ = run
    malformed = [r for r in rows(run_dir / "rejected.jsonl") if r["reason"] == "malformed:not_json"]
    assert malformed and all(r["raw"].strip() for r in malformed)


def test_console_is_short_and_says_where_things_are(cli_run):
    """Start: run id, folder, log; one line per DAG stage (merges and the fingerprint folded in); the
    malformed lines in one capped line; end: the table, the totals and the reports path. No colour in a pipe."""
    root, run_dir, summary, console = cli_run
    lines = console.rstrip("\n").splitlines()
    assert len(lines) <= MAX_CONSOLE_LINES, console
    assert lines[0].startswith("pugc run e2e: recipe tiny") and f"log {run_dir / 'pipeline.log'}" in lines[1]
    stage_lines = [line for line in lines if re.match(r"\[\d+/14\] ", line)]
    finished = [line.split()[1] for line in stage_lines]  # export and summary are independent: either may end first
    assert finished[:-2] == DAG_STAGES[:-2] and sorted(finished[-2:]) == sorted(DAG_STAGES[-2:])
    assert [int(line[1:line.index("/")]) for line in stage_lines] == list(range(1, len(stage_lines) + 1))
    assert re.search(r"\[2/14\] +ugc_filter +in 58, out \d+, .* +\d+\.\ds$", stage_lines[1])
    assert re.search(r"\[12/14\] +evaluation_gate +\d+ judged: win \d+, tie \d+, lose \d+, .*gate passed", console)
    assert [line for line in lines if "quarantined 2 of 60 lines (not_json 2)" in line]
    assert "merge" not in console and "Executing task" not in console and "\x1b[" not in console
    assert f"{summary['preference_pairs']} preference pairs in" in lines[-3]
    assert lines[-2] == f"reports: {(run_dir / 'reports' / 'index.html').resolve()}"
    assert lines[-1].startswith("evaluation on ") and "gate passed (win_rate" in lines[-1]


def test_the_trained_model_is_judged_against_its_starting_policy_on_held_out_questions(run):
    _, run_dir, summary = run
    evaluation = summary["evaluation"]
    held_out = summary["stages"]["held_out_split"]["dropped"]["held_out"]
    judged = rows(run_dir / "evaluation.jsonl")
    assert evaluation["prompts"] == len(judged) == held_out - summary["stages"]["evaluate"]["dropped"].get(
        "unparsable_judgement", 0) > 0
    assert evaluation["win"] + evaluation["tie"] + evaluation["lose"] == evaluation["prompts"]
    assert evaluation["win_rate"] == pytest.approx((evaluation["win"] + evaluation["tie"] / 2) / evaluation["prompts"],
                                                   abs=1e-4)
    assert 0.0 <= evaluation["lc_win_rate"] <= 1.0
    assert evaluation["mean_length"]["trained"]["tokens"] > 0 and evaluation["mean_length"]["baseline"]["chars"] > 0
    # The tiny recipe names no evaluator, so its reward judge grades the gate and the reason says so.
    assert evaluation["self_judged"] is True
    # ... and, with a handful of held-out prompts, that the figure is noisy
    noisy = f"only {evaluation['prompts']} prompts judged: a noisy figure (gate.min_prompts refuses such a gate)"
    assert evaluation["gate"] == {"passed": True,
                                  "reason": f"win_rate {evaluation['win_rate']:.3f} >= 0.0; {SELF_JUDGED}; {noisy}",
                                  "thresholds": {"min_win_rate": 0.0, "min_lc_win_rate": None,
                                                 "min_alpaca_eval_lc_win_rate": None, "min_mt_bench": None},
                                  "min_prompts": None}
    trained_on = {p["instruction_id"] for p in rows(run_dir / "preference_pairs.jsonl")}
    assert trained_on and not trained_on & {r["id"] for r in judged}  # held-out questions are never trained on
    assert all(r["doc_id"] and r["trained"] != r["baseline"] for r in judged[:3])
    assert list(run_dir.glob("artifacts/*/export-model/exported"))  # the gate passed: the export task ran
    assert "Evaluation: trained vs baseline" in (run_dir / "reports" / "evaluation_report.html").read_text()


def test_the_model_and_the_pairs_carry_cards_the_hub_parser_reads(run):
    from huggingface_hub import DatasetCard, ModelCard

    _, run_dir, summary = run
    model = ModelCard.load(run_dir / "model" / "README.md")
    assert model.data.base_model == summary["training"]["base_model"]
    assert model.data.to_dict()["pugc"]["gate"]["passed"] is True
    assert {r.metric_type: r.metric_value for r in model.data.eval_results}["win_rate"] == pytest.approx(
        summary["evaluation"]["win_rate"])
    pairs = DatasetCard.load(run_dir / "preference_pairs.md")
    assert pairs.data.to_dict()["pugc"]["preference_pairs"] == summary["preference_pairs"]
    assert list(run_dir.glob("artifacts/*/run-summary/model_card"))  # also the task's Markdown artifacts


@pytest.fixture(scope="module")
def gated_cut(tmp_path_factory, sample_slice):
    """One run for two checks: a gate nothing passes (min_win_rate 1.0) and policy answers of up to 160 tokens,
    of which the tiny policy ends a few, under `cut_responses: rejected_only`."""
    root = tmp_path_factory.mktemp("gated")
    console = io.StringIO()
    with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
        code = main(["run", "--input", str(sample_slice), "--output", str(root), "--run-id", "gated",
                     "--set", "evaluation.gate.min_win_rate=1.0",
                     "--set", "preference_pairs.cut_responses=rejected_only",
                     "--set", "response_sampling.max_tokens=160"])
    return code, root, console


def test_a_model_below_the_gate_is_not_exported_and_the_run_exits_3(gated_cut):
    code, tmp_path, console = gated_cut
    assert code == 3, console.getvalue()
    summary = json.loads((tmp_path / "gated" / "summary.json").read_text())
    gate = summary["evaluation"]["gate"]
    assert gate["passed"] is False and gate["reason"].startswith("win_rate 0.")
    # no engines.evaluator: the reward judge graded its own trainee, and every place that shows the gate says so
    assert summary["evaluation"]["self_judged"] is True and f"< 1.0; {SELF_JUDGED}" in gate["reason"]
    assert summary["evaluation"]["evaluator"] == summary["evaluation"]["judge"] == {"model": "pugc-tiny/judge",
                                                                                    "revision": None}
    assert "self-judged" in (tmp_path / "gated" / "reports" / "evaluation_report.html").read_text()
    assert not list((tmp_path / "gated").glob("artifacts/*/export-model"))  # skipped under the gate
    assert (tmp_path / "gated" / "model" / "config.json").is_file()  # trained, kept locally, just not exported
    assert "gate FAILED (win_rate" in console.getvalue().splitlines()[-1]
    assert "export_model" not in console.getvalue()


def test_no_pair_chooses_an_answer_cut_at_max_tokens(gated_cut):
    """The tiny policy rarely ends an answer (the tiny recipe allows cut answers for that reason); at 160 tokens a
    few end, and under the default `rejected_only` only those can be chosen."""
    _, root, _ = gated_cut
    run_dir = root / "gated"
    summary = json.loads((run_dir / "summary.json").read_text())
    scored = {row["id"]: row for path in run_dir.glob("artifacts/*/merge-shards*/merged")
              for row in rows(path) if "judge_scores" in row}
    pairs = rows(run_dir / "preference_pairs.jsonl")
    cut = {i for i, row in scored.items() if row["finish_reason"] == "length"}
    assert pairs and cut and len(cut) < len(scored)  # some answers were cut, some ended, and pairs were made
    assert not {pair["chosen_id"] for pair in pairs} & cut
    stage = summary["stages"]["preference_pairs"]
    assert stage["dropped"]["cut_at_max_tokens"] > 0
    assert stage["metrics"]["cut_rejected"] == sum(pair["rejected_id"] in cut for pair in pairs) > 0
    (lengths,) = summary["lengths"]
    assert lengths["cut_chosen"] == 0 and lengths["truncated_fraction"] == pytest.approx(len(cut) / len(scored))
    assert "Answers cut at max_tokens: chosen in 0 pairs" in (run_dir / "reports" / "pairs_report.html").read_text()


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
REPORT_HEADINGS = {
    "index": ["PUGC run e2e", "Models", "Stages", "Reports"],
    "pairs_report": ["Preference pairs", "Widest-margin pairs"],
    "loss_curve": ["DPO training loss"],
    "evaluation_report": ["Evaluation: trained vs baseline", "Side by side"],
    "run_summary": ["Run summary", "Stages"],
}
# every chart's axis labels, page by page: matplotlib's text stays text in the inline SVG
CHART_TEXT = {"pairs_report": ["judge score (1-5)", "pairs", "Score margins", "Chosen response lengths"],
              "loss_curve": ["training step", "DPO loss", "reward accuracy", "reward margin", "learning rate"],
              "evaluation_report": ["outcome", "prompts", "characters", "answers"],
              "run_summary": ["Records per stage", "stage", "records"]}
WIDTH = 1280
# Appended to a copy of each page: what sticks out past the window, and how far the page scrolls sideways.
OVERFLOW_PROBE = """<script>
const width = document.documentElement.clientWidth;
const over = [...document.querySelectorAll('table, figure, svg, pre')]
  .filter(e => e.getBoundingClientRect().right > width + 1).map(e => e.tagName);
document.body.setAttribute('data-overflow', JSON.stringify(over));
document.body.setAttribute('data-scroll', String(document.documentElement.scrollWidth - width));
</script>"""


def browser(*args, timeout=90):
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not BROWSER, reason="no chromium or chrome on PATH: `make browser` installs Debian's chromium "
                                        "(as root), or run on a machine with Chrome")
def test_reports_render_in_a_headless_browser(run, tmp_path):
    """Every page of reports/ opens from disk as a rendered page at 1280 pixels: a screenshot is taken, the
    expected headings and every chart's axis labels are in the DOM, no table or chart is wider than the window,
    every page links back to the index and says the tiny models' text is meaningless, and the index shows the
    gate's decision."""
    _, run_dir, summary = run
    reports = run_dir / "reports"
    index = (reports / "index.html").read_text()
    for name in ("pairs_report", "loss_curve", "evaluation_report", "run_summary"):
        assert f"href='{name}.html'" in index
    assert "gate passed: win_rate" in index and summary["input_uri"] in index and "pugc-tiny/judge" in index
    for name, headings in REPORT_HEADINGS.items():
        source = (reports / f"{name}.html").read_text()
        assert "href='index.html'" in source and "tiny random models" in source, name
        probed = tmp_path / f"{name}.html"
        probed.write_text(source.replace("</body>", OVERFLOW_PROBE + "</body>"))
        shot = tmp_path / f"{name}.png"
        done = browser(f"--screenshot={shot}", f"--window-size={WIDTH},1400", (reports / f"{name}.html").as_uri())
        assert shot.is_file(), done.stderr[-2000:]
        png = shot.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == WIDTH
        dom = browser(f"--window-size={WIDTH},1400", "--dump-dom", probed.as_uri()).stdout
        found = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<h[12][^>]*>(.*?)</h[12]>", dom)]
        assert set(headings) <= set(found), found
        for text in CHART_TEXT.get(name, []):
            assert f">{text}<" in dom, (name, text)
        assert 'data-overflow="[]"' in dom and 'data-scroll="0"' in dom, (name, re.findall(r'data-\w+="[^"]*"', dom))
        assert dom.count("<html") == 1 and "&lt;html" not in dom and "&lt;svg" not in dom  # rendered, not shown
    assert f"{summary['training']['steps']} steps on {summary['preference_pairs']} pairs, final loss " in \
        (reports / "loss_curve.html").read_text()


def test_four_shards_of_a_gzipped_and_csv_dump_give_the_pairs_of_one_jsonl(cli_run, tmp_path, sample_slice):
    """Every LLM stage fanned out over 4 shards and merged, reading the slice as a dump of .jsonl.gz and .csv
    parts: the same accounting and pairs as the unsharded JSONL run, and the pairs counted by source licence.

    Samples are seeded per prompt, so texts and choices match exactly; expected-mode scores come from batched
    forward passes whose float rounding depends on batch shape, so they match to 1e-3, not bit for bit.
    """
    _, run_dir, summary, _ = cli_run
    dump = write_dump(tmp_path / "export", sample_slice)
    console = io.StringIO()
    with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
        code = main(["run", "--input", str(dump), "--output", str(tmp_path), "--run-id", "shards4",
                     "--set", "cluster.shards=4", "--set", "input.license_field=license",
                     "--set", f"input.allowed_licenses=[{','.join(LICENCES)}]"])
    assert code == 0, console.getvalue()[-3000:]
    sharded = json.loads((tmp_path / "shards4" / "summary.json").read_text())
    assert "README.md" in console.getvalue()  # named as skipped
    assert (sharded["input_lines"], sharded["quarantined"]) == (summary["input_lines"], summary["quarantined"]) == (60, 2)
    assert {s: (c["in"], c["out"], c["dropped"]) for s, c in sharded["stages"].items()} == \
           {s: (c["in"], c["out"], c["dropped"]) for s, c in summary["stages"].items()}
    one, four = rows(run_dir / "preference_pairs.jsonl"), rows(tmp_path / "shards4" / "preference_pairs.jsonl")
    fields = ("prompt", "chosen", "rejected", "instruction_id", "doc_id", "chosen_id", "rejected_id")
    assert [[p[f] for f in fields] for p in four] == [[p[f] for f in fields] for p in one]
    for a, b in zip(one, four):
        assert b["score_chosen"] == pytest.approx(a["score_chosen"], abs=1e-3)
        assert b["score_rejected"] == pytest.approx(a["score_rejected"], abs=1e-3)
    assert len(list((tmp_path / "shards4" / "artifacts").glob("*/for-loop-*-iteration-3"))) == 7  # 6 LLM stages + evaluate
    # every pair counted under its document's licence, in the summary and the pairs' dataset card
    assert set(sharded["pair_licenses"]) <= set(LICENCES) and sum(sharded["pair_licenses"].values()) == len(four)
    card = (tmp_path / "shards4" / "preference_pairs.md").read_text()
    assert all(f"| {licence} | {sharded['input_licenses'][licence]} | {n} |" in card
               for licence, n in sharded["pair_licenses"].items())


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory, sample_slice):
    """`rounds: 2`: the training questions in two parts, round 2 sampling and training from round 1's model."""
    root = tmp_path_factory.mktemp("rounds")
    console = io.StringIO()
    with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
        code = main(["run", "--input", str(sample_slice), "--output", str(root), "--run-id", "rounds2",
                     "--set", "rounds=2"])
    assert code == 0, console.getvalue()
    return root / "rounds2", json.loads((root / "rounds2" / "summary.json").read_text()), console.getvalue()


def test_round_two_trains_from_round_one_and_round_one_from_the_base_policy(two_rounds):
    run_dir, summary, _ = two_rounds
    first, second = summary["rounds"]
    assert (first["round"], second["round"]) == (1, 2)
    assert first["base_model"] == "pugc-tiny/policy"
    round_one_model = Path(second["base_model"])  # round 1's Model artifact, handed to round 2 as its policy
    assert round_one_model.parent.name == "dpo-training" and round_one_model.parent.parent.parent.name == "artifacts"
    assert json.loads((round_one_model / "training_report.json").read_text())["base_model"] == "pugc-tiny/policy"
    final = json.loads((run_dir / "model" / "training_report.json").read_text())
    assert final["base_model"] == second["base_model"] == summary["training"]["base_model"]
    weights = [AutoModelForCausalLM.from_pretrained(path).state_dict() for path in
               (resolve_model("pugc-tiny/policy"), round_one_model, run_dir / "model")]
    name = next(k for k in weights[0] if k.endswith("q_proj.weight"))
    assert not torch.equal(weights[0][name], weights[1][name]) and not torch.equal(weights[1][name], weights[2][name])
    # each round's responses came from the policy it trains: round 2 sampled with round 1's model
    assert (first["sampled_with"], second["sampled_with"]) == ("pugc-tiny/policy", str(round_one_model))


def test_each_round_has_its_figures_and_together_they_account_for_every_question(two_rounds):
    run_dir, summary, console = two_rounds
    stages, rounds = summary["stages"], summary["rounds"]
    assert sum(r["questions"] for r in rounds) == stages["held_out_split"]["out"] == stages["response_sampling"]["in"]
    assert all(r["questions"] > 0 for r in rounds)
    for entry in rounds:
        assert entry["pairs"] == entry["stages"]["preference_pairs"]["out"] > 0
        assert entry["final_loss"] > 0 and entry["steps"] == load_recipe("tiny").dpo_training.trainer["max_steps"]
        assert 0.0 <= entry["win_rate"] <= 1.0 and entry["mean_length"]["trained"]["tokens"] > 0
        assert entry["stages"]["evaluate"]["in"] == stages["held_out_split"]["dropped"]["held_out"]
    assert summary["preference_pairs"] == sum(r["pairs"] for r in rounds) == len(rows(run_dir / "preference_pairs.jsonl"))
    assert summary["evaluation"]["win_rate"] == rounds[-1]["win_rate"]  # the gate judged the last round's model
    first, second = rounds
    assert first["vs_previous"] is None and 0.0 <= second["vs_previous"]["win_rate"] <= 1.0
    # against the previous round the baseline is round 1's model: its greedy answers are round 1's own
    assert second["vs_previous"]["mean_length"]["baseline"] == first["mean_length"]["trained"]
    # the length trend: a row per round, read from that round's sampling, pairs and evaluation
    assert [row["round"] for row in summary["lengths"]] == [1, 2]
    for entry, row in zip(rounds, summary["lengths"]):
        assert row == entry["lengths"] and row["trained_answer_chars"] == entry["mean_length"]["trained"]["chars"]
        assert row["sampled_chars"] > 0 and 0.0 <= row["truncated_fraction"] <= 1.0 and row["chosen_chars"] > 0
    assert "Answer lengths" in (run_dir / "reports" / "run_summary.html").read_text()
    total_dropped = sum(sum(s["dropped"].values()) for s in stages.values())
    assert len(rows(run_dir / "rejected.jsonl")) == summary["quarantined"] + total_dropped
    assert list(run_dir.glob("artifacts/*/export-model/exported"))
    stage_lines = [line for line in console.splitlines() if line.startswith("[")]
    assert any(line.split()[1:4] == ["dpo_training", "(round", "2)"] for line in stage_lines)
    n = len(stage_lines)  # every planned stage printed once (export and summary may finish in either order)
    assert sorted(line.split()[0] for line in stage_lines) == sorted(f"[{i}/{n}]" for i in range(1, n + 1))
    assert {line.split()[1] for line in stage_lines} >= {"round_split", "round_report", "evaluate_previous",
                                                         "export_model", "run_summary"}
