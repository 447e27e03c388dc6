"""Kill a stage midway (fault injection), run it again: it resumes from its checkpoints, and the result is
byte for byte the uninterrupted run's: no duplicates, no gaps. Reruns over the same inputs are identical."""
import json
import os
import subprocess
import sys

import pytest
import torch

from pugc.checkpoint import FAULT_EXIT_CODE
from pugc.config import load_recipe
from pugc.io import write_jsonl
from pugc.records import Instruction, PreferencePair, Response
from pugc.stage_runner import run_stage, run_training

SECTIONS = load_recipe("tiny", ["reward_scoring.mode=sampled", "reward_scoring.n=2", "reward_scoring.max_tokens=12",
                                "response_sampling.max_tokens=12"]).pipeline_sections()


def killed(code: str, env_name: str, after: int) -> int:
    """Run `code` in a fresh Python with the fault-injection variable set; return its exit code."""
    env = {**os.environ, env_name: str(after)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).returncode


def stage_call(stage, source, out, checkpoint_root, run_id):
    runtime = {"checkpoint_root": str(checkpoint_root), "checkpoint_every": 6}
    return (f"from pugc.stage_runner import run_stage; run_stage({stage!r}, {str(source)!r}, {str(out)!r}, "
            f"{str(out) + '.dropped'!r}, {SECTIONS[stage]!r}, {SECTIONS['engines']!r}, 0, 1, {runtime!r}, "
            f"scope={run_id + '/task'!r}, tables={tables(source.parent)!r})")


def tables(folder) -> dict:
    """The document and question tables reward_scoring joins, written next to its input."""
    write_jsonl(folder / "documents.jsonl", [{"id": f"d{q}", "text": f"Reference answer {q}."} for q in range(20)])
    write_jsonl(folder / "questions.jsonl", [{"id": f"i{q}", "doc_id": f"d{q}", "instruction": f"Question {q}?"}
                                             for q in range(20)])
    return {"documents": str(folder / "documents.jsonl"), "instructions": str(folder / "questions.jsonl")}


CASES = {
    "response_sampling": lambda: [Instruction(id=f"i{i}", doc_id=f"d{i}", instruction=f"How do I fix thing {i}?")
                                  for i in range(20)],
    "reward_scoring": lambda: [Response(id=f"i{i // 3}-{i % 3}", instruction_id=f"i{i // 3}", doc_id=f"d{i // 3}",
                                        response=f"Answer {i}.", sample_index=i % 3) for i in range(21)],
}


@pytest.mark.parametrize("stage", sorted(CASES))
def test_killed_stage_resumes_to_the_uninterrupted_result(tmp_path, stage):
    source = tmp_path / "in.jsonl"
    write_jsonl(source, CASES[stage]())
    checkpoints = tmp_path / "checkpoints"
    out = tmp_path / "resumed.jsonl"
    assert killed(stage_call(stage, source, out, checkpoints, "run-a"), "PUGC_FAIL_AFTER_CHUNKS", 2) == FAULT_EXIT_CODE
    assert not out.exists()  # nothing half-written where the output goes
    assert len(list(checkpoints.glob("run-a/task/*/chunk-*"))) == 2
    runtime = {"checkpoint_root": str(checkpoints), "checkpoint_every": 6}
    resumed = run_stage(stage, str(source), str(out), str(out) + ".dropped", SECTIONS[stage], SECTIONS["engines"],
                        0, 1, runtime, scope="run-a/task", tables=tables(tmp_path))
    clean = tmp_path / "clean.jsonl"
    run_stage(stage, str(source), str(clean), str(clean) + ".dropped", SECTIONS[stage], SECTIONS["engines"], 0, 1,
              {"checkpoint_root": str(tmp_path / "fresh"), "checkpoint_every": 6}, tables=tables(tmp_path))
    assert out.read_bytes() == clean.read_bytes()
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == len(set(ids))  # no duplicates
    n_in = len(CASES[stage]())
    assert resumed["counts"]["in"] == n_in  # no gaps
    assert resumed["resumed_chunks"] == 2  # the two chunks of the killed try were loaded, not redone
    assert not list(checkpoints.glob("run-a/task/*/chunk-*"))  # cleared once the output is whole


def test_another_run_neither_reuses_nor_clears_a_runs_checkpoints(tmp_path):
    stage = "reward_scoring"
    source = tmp_path / "in.jsonl"
    write_jsonl(source, CASES[stage]())
    checkpoints = tmp_path / "checkpoints"
    first_try = stage_call(stage, source, tmp_path / "a.jsonl", checkpoints, "scheduled-run")
    assert killed(first_try, "PUGC_FAIL_AFTER_CHUNKS", 2) == FAULT_EXIT_CODE
    runtime = {"checkpoint_root": str(checkpoints), "checkpoint_every": 6}
    other = run_stage(stage, str(source), str(tmp_path / "b.jsonl"), str(tmp_path / "b.dropped"), SECTIONS[stage],
                      SECTIONS["engines"], 0, 1, runtime, scope="push-run/task",
                      tables=tables(tmp_path))
    assert other["resumed_chunks"] == 0  # the same recipe and input, but another run: computed afresh
    assert len(list(checkpoints.glob("scheduled-run/task/*/chunk-*/result.json"))) == 2  # and left alone


def test_a_chunk_without_its_marker_is_not_done(tmp_path):
    from pugc.checkpoint import ChunkCheckpoints
    from pugc.records import StageResult

    checkpoints = ChunkCheckpoints(tmp_path / "c")
    checkpoints.save(0, StageResult("reward_scoring", 0, []))
    checkpoints.save(1, StageResult("reward_scoring", 0, []))
    (checkpoints.folder / "chunk-000001" / "result.json").unlink()  # killed between the records and the marker
    assert checkpoints.done() == {0}
    checkpoints.save(1, StageResult("reward_scoring", 0, []))  # the retry writes over the partial chunk
    assert checkpoints.done() == {0, 1}


@pytest.mark.parametrize("stage", sorted(CASES))
def test_rerunning_a_stage_is_byte_identical(tmp_path, stage):
    source = tmp_path / "in.jsonl"
    write_jsonl(source, CASES[stage]())
    outputs = []
    for attempt in range(2):
        out = tmp_path / f"out{attempt}.jsonl"
        run_stage(stage, str(source), str(out), str(out) + ".dropped", SECTIONS[stage], SECTIONS["engines"],
                  tables=tables(tmp_path))
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_killed_dpo_resumes_from_its_last_checkpoint(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, [PreferencePair(prompt=[{"role": "user", "content": f"Q{i}?"}],
                                       chosen=[{"role": "assistant", "content": f"A careful answer {i}."}],
                                       rejected=[{"role": "assistant", "content": "no"}], score_chosen=5.0,
                                       score_rejected=1.0, margin=4.0, instruction_id=f"q{i}", doc_id="d",
                                       chosen_id="c", rejected_id="r") for i in range(16)])
    sections = load_recipe("tiny", ["dpo_training.max_steps=4"]).to_dict()
    runtime = {"checkpoint_root": str(tmp_path / "ckpt"), "dpo_save_steps": 1}
    code = (f"from pugc.stage_runner import run_training; run_training({str(pairs)!r}, {str(tmp_path / 'm1')!r}, "
            f"{sections['dpo_training']!r}, {sections['engines']!r}, {runtime!r})")
    assert killed(code, "PUGC_FAIL_AFTER_STEPS", 2) == FAULT_EXIT_CODE
    resumed = run_training(str(pairs), str(tmp_path / "m1"), sections["dpo_training"], sections["engines"], runtime)
    assert resumed["training"]["resumed_from"].endswith("checkpoint-2")
    assert resumed["training"]["steps"] == 4
    clean = run_training(str(pairs), str(tmp_path / "m2"), sections["dpo_training"], sections["engines"],
                         {"checkpoint_root": str(tmp_path / "ckpt-clean"), "dpo_save_steps": 1})
    assert clean["training"]["resumed_from"] is None
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "m1" / "model.safetensors"), load_file(tmp_path / "m2" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
