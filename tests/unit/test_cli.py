"""The `pugc` command without KFP: one stage at a time on files, recipe printing, errors."""
import json

from pugc.cli import main
from pugc.io import read_records
from pugc.records import Document


def test_stage_commands_chain_on_files(tmp_path, sample_slice, capsys):
    docs = tmp_path / "docs.jsonl"
    assert main(["stage", "ingest_ugc", "--input", str(sample_slice), "--output", str(docs)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_lines"] == 60 and report["quarantined"] == 2
    assert len(read_records(docs, Document)) == report["counts"]["out"] == 58
    assert (tmp_path / "docs.quarantine.jsonl").is_file()

    kept = tmp_path / "kept.jsonl"
    code = main(["stage", "ugc_filter", "--input", str(docs), "--output", str(kept),
                 "--set", "ugc_filter.threshold=null"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"in": 58, "out": 58, "dropped": {}}
    assert report["model"] is None  # a disabled filter loads no model


def test_recipe_command_prints_the_resolved_recipe(capsys):
    assert main(["recipe", "--recipe", "paper", "--set", "reward_scoring.n=4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# digest ") and "n: 4" in out


def test_recipe_typo_exits_2_naming_the_key(capsys):
    assert main(["recipe", "--recipe", "tiny", "--set", "response_sampling.kk=3"]) == 2
    assert "unknown key 'response_sampling.kk' (did you mean 'k'?)" in capsys.readouterr().err


def test_stage_command_can_checkpoint(tmp_path, sample_slice, capsys):
    docs = tmp_path / "docs.jsonl"
    assert main(["stage", "ingest_ugc", "--input", str(sample_slice), "--output", str(docs)]) == 0
    capsys.readouterr()
    code = main(["stage", "ugc_filter", "--input", str(docs), "--output", str(tmp_path / "kept.jsonl"),
                 "--set", "ugc_filter.threshold=2.0", "--checkpoint-dir", str(tmp_path / "ckpt"),
                 "--checkpoint-every", "20"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["in"] == 58 and report["resumed_chunks"] == 0
    assert not list((tmp_path / "ckpt").glob("ugc_filter/*/chunk-*"))  # cleared once the output was written


def test_runs_lists_status_recipe_input_pairs_and_gate(tmp_path, capsys):
    """`pugc runs`: finished runs with their recipe, input, pairs and the gate once an evaluation exists, failed
    runs with the reason (whole with --full), and folders without an outcome as incomplete."""
    root = tmp_path / "runs"
    for name, summary in (("20260101-a", {"status": "succeeded", "preference_pairs": 96, "wall_seconds": 150.4}),
                          ("20260102-b", {"preference_pairs": 12, "wall_seconds": 80, "recipe": "paper",
                                          "evaluation": {"gate": {"passed": False, "reason": "win rate 0.4"}}})):
        (root / name).mkdir(parents=True)
        (root / name / "summary.json").write_text(json.dumps(summary))
    (root / "20260101-a" / "recipe.yaml").write_text("name: tiny\ninput: {uri: /data/dumps/march.jsonl.gz}\n")
    (root / "20260103-c").mkdir()
    long_reason = "reward_scoring: " + "the judge server at http://judge:8000/v1 refused the request " * 3
    (root / "20260103-c" / "FAILED").write_text(long_reason + "\n")
    (root / "20260103-c" / "recipe.yaml").write_text("name: tiny\ninput: {uri: gs://bucket/ugc/}\n")
    (root / "20260104-d").mkdir()
    (root / "latest").symlink_to("20260104-d")
    assert main(["runs", "--output", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "status", "recipe", "input", "pairs", "gate", "seconds", "reason"]
    assert [line.split()[:7] for line in lines[1:]] == [
        ["20260104-d", "incomplete", "-", "-", "-", "-", "-"],
        ["20260103-c", "failed", "tiny", "ugc", "-", "-", "-"],
        ["20260102-b", "succeeded", "paper", "-", "12", "failed", "80"],
        ["20260101-a", "succeeded", "tiny", "march.jsonl.gz", "96", "-", "150"],
    ]
    assert lines[2].endswith("…") and len(lines[2].split("-  ", 1)[-1]) < len(long_reason)
    assert lines[3].endswith("win rate 0.4")
    assert main(["runs", "--output", str(root), "--full"]) == 0
    full = capsys.readouterr().out.splitlines()
    assert long_reason.strip() in full[2] and "gs://bucket/ugc/" in full[2] and "/data/dumps/march.jsonl.gz" in full[4]
