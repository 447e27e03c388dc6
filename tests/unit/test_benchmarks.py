"""AlpacaEval 2 and MT-Bench by their own protocols (pugc.stages.benchmarks), on small files in the benchmarks'
own formats (tests/data/benchmarks): the length-controlled win rate is alpaca_eval's, computed by the package;
MT-Bench grades both turns of both models with its single-answer prompts and reports per turn and category."""
import random
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pugc.config import EvaluationConfig, MTBenchConfig, load_recipe
from pugc import alpaca_eval_lc
from pugc.stages import benchmarks, evaluate
from pugc.stages.evaluate import EvalPrompt, PairwiseResult
from tests.fakes import FakeEngine

DATA = Path(__file__).parent.parent / "data" / "benchmarks"
ALPACA = str(DATA / "alpaca_eval_reference.json")
GLM_DATA = str(DATA / "df_gamed.csv")
MT_BENCH = MTBenchConfig(questions=str(DATA / "mt_bench_questions.jsonl"),
                         judge_prompts=str(DATA / "mt_bench_judge_prompts.jsonl"),
                         reference_answers=str(DATA / "mt_bench_reference_answers.jsonl"))


def alpaca_results(seed=0):
    """The 20 AlpacaEval prompts judged: a trained answer longer or shorter than the reference, and both
    orders' P(trained better), as evaluate's judge pass writes them."""
    rng = random.Random(seed)
    results = []
    for item in benchmarks.alpaca_eval_items(ALPACA):
        trained = item.reference + " and more" * rng.randint(0, 25)
        p = rng.random()
        results.append(PairwiseResult(
            id=str(item.index), source="alpaca_eval", instruction=item.instruction, trained=trained,
            baseline=item.reference, trained_tokens=0, baseline_tokens=0, outcome="tie",
            trained_first=p, baseline_first=min(1.0, p + 0.1), benchmark="alpaca_eval", benchmark_index=item.index,
            reference_generator=item.generator))
    return results


def hub_cache_holding(folder: Path, filename: str, source: str) -> Path:
    """A Hugging Face cache in which the hub dataset tatsu-lab/alpaca_eval holds `filename` (the layout
    huggingface_hub reads offline)."""
    commit = "0" * 40
    repo = folder / "datasets--tatsu-lab--alpaca_eval"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(Path(source).read_bytes())
    return folder


def test_the_length_controlled_win_rate_is_what_alpaca_eval_computes_from_the_hub_file(tmp_path, monkeypatch):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from alpaca_eval import constants
        from alpaca_eval.metrics import get_length_controlled_winrate

    results = alpaca_results()
    annotations = benchmarks.alpaca_eval_annotations(results, "the-evaluator")
    ours = alpaca_eval_lc.alpaca_eval_figures(annotations, GLM_DATA)
    # the package unchanged, reading df_gamed.csv through huggingface_hub from an offline cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "DEFAULT_CACHE_DIR", str(hub_cache_holding(tmp_path, "df_gamed.csv", GLM_DATA)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        package = get_length_controlled_winrate(benchmarks.alpaca_eval_annotations(results, "the-evaluator"),
                                                save_weights_dir=None)
    assert ours["prompts"] == 20
    assert ours["lc_win_rate"] == pytest.approx(package["length_controlled_winrate"] / 100, abs=1e-4)
    assert ours["win_rate"] == pytest.approx(package["win_rate"] / 100, abs=1e-4)
    # and the GLM did control for length: the trained answers are longer, so LC differs from the raw rate
    assert ours["lc_win_rate"] != pytest.approx(ours["win_rate"], abs=1e-3)


def test_annotations_encode_preference_as_alpaca_eval_does():
    (first, *_) = benchmarks.alpaca_eval_annotations(alpaca_results(), "judge")
    assert first["preference"] == pytest.approx(1 + (alpaca_results()[0].trained_first
                                                      + alpaca_results()[0].baseline_first) / 2)
    assert (first["generator_1"], first["generator_2"], first["index"]) == ("reference_model", "trained", 0)


def test_alpaca_eval_never_downloads_a_file_it_was_not_given(tmp_path):
    from alpaca_eval.metrics import glm_winrate

    with alpaca_eval_lc._hub_files(glm_winrate, {"df_gamed.csv": GLM_DATA}):
        with pytest.raises(FileNotFoundError, match="instruction_difficulty.csv"):
            glm_winrate.hf_hub_download(repo_id="tatsu-lab/alpaca_eval", filename="instruction_difficulty.csv")
    assert glm_winrate.hf_hub_download.__module__.startswith("huggingface_hub")


def test_benchmark_prompts_carry_the_reference_outputs_turns_and_references():
    config = EvaluationConfig(benchmarks={"alpaca_eval": {"reference_outputs": ALPACA, "glm_data": GLM_DATA},
                                          "mt_bench": MT_BENCH})
    prompts = list(evaluate.benchmark_prompts(config.benchmarks))
    alpaca = [p for p in prompts if p.benchmark == "alpaca_eval"]
    mt = {p.category: p for p in prompts if p.benchmark == "mt_bench"}
    assert len(alpaca) == 20 and alpaca[3].benchmark_index == 3 and alpaca[3].baseline.startswith("Bread")
    assert len({p.id for p in prompts}) == len(prompts) == 24
    assert mt["math"].references == ["84", "21"]  # from the question's own `reference`
    assert mt["reasoning"].references[1] == "Not necessarily."  # from the reference answers file
    assert mt["writing"].references == [] and mt["writing"].followup.startswith("Now rewrite")


def test_the_baseline_pass_keeps_alpaca_evals_reference_outputs_and_both_turns_are_answered_in_conversation():
    engine = FakeEngine(reply=lambda text, i: f"answer to [{text[-30:]}]")
    config = EvaluationConfig(max_tokens=16, benchmarks={"mt_bench": MT_BENCH})
    prompts = [EvalPrompt("a", "alpaca_eval", "Q?", baseline="the reference", benchmark="alpaca_eval"),
               EvalPrompt("m", "mt_bench", "First?", followup="Second?", category="writing", benchmark="mt_bench")]
    result = evaluate.answer(engine, prompts, config, "baseline")
    by_id = {p.id: p for p in result.kept}
    assert by_id["a"].baseline == "the reference"
    assert by_id["m"].baseline and by_id["m"].baseline_followup
    second_turn = engine.generate_calls[1][0][0]
    assert [m["role"] for m in second_turn.messages] == ["user", "assistant", "user"]
    assert second_turn.messages[1]["content"] == by_id["m"].baseline


def test_mt_bench_grades_both_turns_of_both_models_and_reports_per_turn_and_category():
    judge_prompts = benchmarks.load_judge_prompts(MT_BENCH.judge_prompts)
    ratings = {"trained-1": "Rating: [[8]]", "trained-2": "[[6.5]]", "baseline-1": "[[5]]", "baseline-2": "no idea"}

    def reply(text, i):
        model = "trained" if "TRAINED" in text else "baseline"
        turn = 2 if "second question" in text else 1
        return f"Explanation. {ratings[f'{model}-{turn}']}"

    prompts = [EvalPrompt(p.id, p.source, p.instruction, trained=f"TRAINED {p.instruction}", baseline="plain",
                          trained_followup="TRAINED again", baseline_followup="plain again", followup=p.followup,
                          category=p.category, references=p.references, benchmark="mt_bench")
               for p in evaluate.benchmark_prompts(EvaluationConfig(benchmarks={"mt_bench": MT_BENCH}).benchmarks)]
    engine = FakeEngine(reply=reply)
    result = evaluate.grade_mt_bench(engine, prompts, MT_BENCH)
    assert len(result.kept) == 4 and all(r.trained_ratings == [8.0, 6.5] for r in result.kept)
    assert all(r.baseline_ratings == [5.0, None] and r.outcome == "win" for r in result.kept)
    figures = benchmarks.mt_bench_figures(result.kept)
    assert figures["trained"] == pytest.approx(7.25) and figures["trained_turn_2"] == 6.5
    assert figures["baseline"] == 5.0 and figures["unparsed_ratings"] == 4 and figures["questions"] == 4
    assert figures["trained_category_math"] == pytest.approx(7.25)
    # math and reasoning are graded against their references (one per turn and model), writing and roleplay not
    sent = engine.generate_calls[0][0]
    texts = ["\n".join(m["content"] for m in p.messages) for p in sent]
    assert len(texts) == 16 and sum("[Reference]" in t for t in texts) == sum("<|Reference|>" in t for t in texts) == 4
    assert engine.generate_calls[0][1].temperature == 0.0 and engine.generate_calls[0][1].max_tokens == 2048


def test_judge_prompts_missing_a_single_answer_prompt_are_refused_by_name(tmp_path):
    lines = [line for line in Path(MT_BENCH.judge_prompts).read_text().splitlines() if "single-math-v1-multi" not in line]
    (tmp_path / "judge_prompts.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="lacks single-math-v1-multi-turn"):
        benchmarks.load_judge_prompts(str(tmp_path / "judge_prompts.jsonl"))


@pytest.mark.parametrize("text, rating", [
    ("Rating: [[5]]", 5.0), ("[[7.5]] and later [[2]]", 7.5), ("no double, single [3]", 3.0),
    ("[[11]]", None), ("[[0]]", None), ("nothing", None), ("[[5.]]", 5.0), ("", None),
])
def test_ratings_read_as_mt_bench_reads_them(text, rating):
    assert benchmarks.parse_rating(text) == rating


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_judgement_parses_to_a_rating_in_range_or_none(text):
    value = benchmarks.parse_rating(text)
    assert value is None or 1.0 <= value <= 10.0


def test_a_long_run_of_digits_is_no_rating():
    # fastchat's `\[\[(\d+\.?\d*)\]\]` backtracks quadratically over such a run; the bounded pattern does not
    assert benchmarks.parse_rating("[[" + "1" * 50_000 + "." + "1" * 50_000) is None
    assert benchmarks.parse_rating("[[" + "1" * 50_000 + "]] then [[4]]") == 4.0


def test_gate_thresholds_on_a_benchmark_need_that_benchmark():
    with pytest.raises(Exception, match="benchmarks.mt_bench is not"):
        load_recipe("tiny", ["evaluation.gate.min_mt_bench=6"])


def test_the_gate_bounds_the_benchmark_figures_and_says_which_failed():
    from pugc.config import GateConfig

    gate = GateConfig(min_alpaca_eval_lc_win_rate=0.3, min_mt_bench=6.0)
    ok = evaluate.decide_gate({"alpaca_eval_prompts": 20, "alpaca_eval_lc_win_rate": 0.4, "mt_bench_questions": 4,
                               "mt_bench_score": 5.5}, gate)
    assert not ok.passed and ok.reason == "mt_bench_score 5.500 < 6.0"
    nothing = evaluate.decide_gate({"alpaca_eval_prompts": 0, "mt_bench_questions": 4, "mt_bench_score": 7}, gate)
    assert not nothing.passed and nothing.reason == "no AlpacaEval prompts were judged"
    unread = evaluate.decide_gate({"alpaca_eval_prompts": 3, "alpaca_eval_lc_win_rate": 0.5, "mt_bench_questions": 4,
                                   "mt_bench_score": None}, gate)
    assert not unread.passed and unread.reason == "no MT-Bench rating was read"
