"""Errors that come from the command line say so: a misspelt tiny model fails `--dry-run` naming the ones
there are, an unknown recipe lists the recipes, and a bad `--set` is blamed on that `--set`, not on the file."""
import pytest

from pugc.cli import main


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_misspelt_tiny_model_fails_the_dry_run_naming_the_tiny_models(capsys, sample_data):
    assert main(["run", "--dry-run", "--input", str(sample_data), "--set", "engines.judge.model=pugc-tiny/jugde"]) == 2
    line = one_line(capsys)
    assert "engines.judge.model: no tiny model 'pugc-tiny/jugde'" in line and "pugc-tiny/judge," in line


def test_an_unknown_recipe_lists_the_recipes(capsys, sample_data):
    assert main(["run", "--dry-run", "--input", str(sample_data), "--recipe", "tinyy"]) == 2
    line = one_line(capsys)
    assert "recipe 'tinyy' not found" in line and "paper-base-simpo" in line and line.endswith("tiny")


@pytest.mark.parametrize("setting, words", [
    ("reward_scoring.nn=3", "--set reward_scoring.nn=3: unknown key 'reward_scoring.nn' (did you mean 'n'?)"),
    ("rounds=abc", "--set rounds=abc: rounds: expected an integer"),
    ("engines.policy.prompt_format=prometheus", "--set engines.policy.prompt_format=prometheus: engines.policy"),
    ("foo", "--set: override 'foo' must look like section.key=value"),
])
def test_a_bad_set_is_blamed_on_the_command_line(capsys, sample_data, setting, words):
    assert main(["run", "--dry-run", "--input", str(sample_data), "--set", setting]) == 2
    assert words in one_line(capsys)


def test_a_bad_recipe_file_is_still_blamed_on_the_file_beside_a_good_set(capsys, sample_data, tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("reward_scoring: {nn: 3}\n")
    assert main(["run", "--dry-run", "--input", str(sample_data), "--recipe", str(recipe),
                 "--set", "reward_scoring.n=2"]) == 2
    assert f"{recipe}: unknown key 'reward_scoring.nn'" in one_line(capsys)


def test_a_benchmark_file_that_is_missing_or_malformed_fails_before_launch(sample_data, capsys, tmp_path):
    bench = "tests/data/benchmarks"
    alpaca = [f"evaluation.benchmarks.alpaca_eval.reference_outputs={bench}/alpaca_eval_reference.json",
              f"evaluation.benchmarks.alpaca_eval.glm_data={bench}/df_gamd.csv"]
    assert main(["run", "--dry-run", "--input", str(sample_data), *sum((["--set", s] for s in alpaca), [])]) == 2
    line = one_line(capsys)
    assert "evaluation.benchmarks.alpaca_eval.glm_data" in line and "df_gamd.csv: no such file" in line
    (tmp_path / "question.jsonl").write_text('{"question_id": 1, "category": "math", "turns": ["only one"]}\n')
    mt_bench = [f"evaluation.benchmarks.mt_bench.questions={tmp_path}/question.jsonl",
                f"evaluation.benchmarks.mt_bench.judge_prompts={bench}/mt_bench_judge_prompts.jsonl"]
    assert main(["run", "--dry-run", "--input", str(sample_data), *sum((["--set", s] for s in mt_bench), [])]) == 2
    line = one_line(capsys)
    assert "question.jsonl row 1" in line and "`turns`, a list of 2 strings" in line
