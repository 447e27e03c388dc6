"""The local run's console filter on the runner's own output shapes: one line per finished stage, warnings,
colour only on a terminal (the e2e module checks a real run's console)."""
import io

from pugc.pipelines.local import ConsoleFilter, stage_plan

RUNNER_OUTPUT = """\
04:36:10.189 - INFO - Executing task \x1b[96m'ugc-filter'\x1b[0m
04:36:31 INFO pugc.stage_runner: ugc_filter: 196 input records from /runs/x/ingest-ugc/ugc
04:36:31 INFO pugc.engines.hf: pugc-tiny/generator score: 64/196 prompts (3.1s)
04:36:31 INFO pugc.stage_runner: ugc_filter: in 196, out 182, dropped low_quality=14 (17.3s)
04:36:34.797 - INFO - Task \x1b[96m'ugc-filter'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m
04:36:36 WARNING pugc.stage_runner: something worth reading
04:36:36 INFO pugc.stage_runner: ugc_filter: merged 1 shards: in 196, out 182, dropped low_quality=14
04:36:36.318 - INFO - Task \x1b[96m'merge-shards'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m
Traceback (most recent call last):
"""
PLAN = stage_plan({"input_fingerprint": "input-fingerprint", "ingest_ugc": "ingest-ugc", "ugc_filter": "ugc-filter",
                   "ugc_filter_merge": "merge-shards", "run_summary": "run-summary"})


class Terminal(io.StringIO):
    def isatty(self):
        return True


def filtered(console) -> str:
    log = io.StringIO()
    stream = ConsoleFilter(log, console, PLAN)
    for chunk in (RUNNER_OUTPUT[:100], RUNNER_OUTPUT[100:]):  # lines split across writes
        stream.write(chunk)
    assert log.getvalue() == RUNNER_OUTPUT  # the log keeps everything
    return console.getvalue()


def test_plan_folds_merges_and_the_fingerprint_into_their_stage():
    assert PLAN == [("ingest_ugc", ["input-fingerprint", "ingest-ugc"]), ("ugc_filter", ["ugc-filter", "merge-shards"]),
                    ("run_summary", ["run-summary"])]


def test_one_line_per_finished_stage_and_no_colour_in_a_pipe():
    lines = filtered(io.StringIO()).splitlines()
    assert lines[0] == "  ! something worth reading"
    assert lines[1].split() == ["[1/3]", "ugc_filter", "in", "196,", "out", "182,", "dropped", "low_quality=14",
                                lines[1].split()[-1]]
    assert len(lines) == 2 and "\x1b[" not in "".join(lines)


def test_colour_on_a_terminal():
    assert "\x1b[32m[1/3] ugc_filter" in filtered(Terminal())


def test_stages_are_numbered_as_they_finish_so_the_console_counts_up():
    """run_summary may finish before export_model (they run side by side): the count still goes up."""
    plan = [("export_model", ["export-model"]), ("run_summary", ["run-summary"])]
    console = io.StringIO()
    ConsoleFilter(io.StringIO(), console, plan).write(
        "04:40:01.100 - INFO - Task 'run-summary' finished with status SUCCESS\n"
        "04:40:02.100 - INFO - Task 'export-model' finished with status SUCCESS\n")
    assert [line.split()[:2] for line in console.getvalue().splitlines()] == [
        ["[1/2]", "run_summary"], ["[2/2]", "export_model"]]


ROUND_OUTPUT = """\
04:40:01 INFO pugc.runner.training: dpo_training: 8 pairs, 4 steps on 1 process, final loss 0.5
04:40:02.100 - INFO - Task \x1b[96m'dpo-training-2'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m
04:40:03 INFO pugc.evaluation: evaluate: in 9, out 9, dropped none
04:40:04.100 - INFO - Task \x1b[96m'merge-shards-3-4'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m
"""


def test_a_rounds_stages_are_named_by_round_and_matched_by_the_name_the_runner_logs():
    plan = stage_plan({"round_2.dpo_training": "dpo-training-2", "round_2.evaluate_previous": "evaluate-2",
                       "round_2.evaluate_previous_merge": "merge-shards-3-4"})
    assert plan[1] == ("round_2.evaluate_previous", ["evaluate-2", "merge-shards-3-4"])
    console = io.StringIO()
    ConsoleFilter(io.StringIO(), console, plan).write(ROUND_OUTPUT)
    lines = [line.split() for line in console.getvalue().splitlines()]
    assert lines[0][:6] == ["[1/2]", "dpo_training", "(round", "2)", "8", "pairs,"]
    assert lines[1][:6] == ["[2/2]", "evaluate_previous", "(round", "2)", "in", "9,"]  # evaluate's own line


def test_round_tasks_map_to_the_component_names_the_local_runner_logs():
    from pugc.config import load_recipe
    from pugc.pipelines.local import local_task_names
    from pugc.pipelines.pugc_pipeline import build_pipeline

    names: dict = {}
    pipeline = build_pipeline(load_recipe("tiny", ["rounds=2"]), import_input=False, task_names=names)
    logged_as = local_task_names(pipeline.pipeline_spec)
    assert names["round_1.dpo_training"] == "round-1/dpo-training" and logged_as["round-1/dpo-training"] == "dpo-training"
    assert logged_as["round-2/dpo-training"] == "dpo-training-2"  # the same task name, another component
    assert len({logged_as[name] for name in names.values()}) == len(names)  # one logged name per task
