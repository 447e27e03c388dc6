"""gs:// input, model export with resumable uploads and a completion marker, against the GCS emulator."""
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pugc import gcs
from pugc.config import InputConfig
from pugc.io import iter_input_rows
from pugc.stage_runner import run_ingest
from pugc.stages import ingest


def put(bucket, name, data: bytes):
    bucket.blob(name).upload_from_string(data)
    return f"gs://{bucket.name}/{name}"


def test_ingest_reads_a_gs_file(bucket, tmp_path):
    uri = put(bucket, "ugc/one.jsonl", b'{"text": "First."}\nnot json\n{"text": "Second."}\n')
    report = run_ingest(uri, {}, str(tmp_path / "ugc"), str(tmp_path / "q"), str(tmp_path / "d"))
    assert report["input_lines"] == 3 and report["quarantined"] == 1 and report["counts"]["out"] == 2
    quarantined = json.loads((tmp_path / "q").read_text().splitlines()[0])
    assert quarantined["source"] == uri and quarantined["line"] == 2


def test_ingest_reads_a_gs_prefix_of_jsonl_and_parquet_shards(bucket):
    put(bucket, "corpus/part-0.jsonl", b'{"text": "A."}\n{"text": "B."}\n')
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": ["C.", "D."]}), sink)
    put(bucket, "corpus/part-1.parquet", sink.getvalue().to_pybytes())
    put(bucket, "corpus/_SUCCESS", b"")
    put(bucket, "corpus-other/part-9.jsonl", b'{"text": "not under the prefix"}\n')
    outcome = ingest.run(iter_input_rows(f"gs://{bucket.name}/corpus"), InputConfig())
    assert [d.text for d in outcome.result.kept] == ["A.", "B.", "C.", "D."]
    assert outcome.result.kept[2].meta["source_file"].endswith("part-1.parquet")


def test_missing_gs_input_fails_clearly(bucket):
    with pytest.raises(FileNotFoundError, match=r"no input objects \(.jsonl, .parquet, .csv, .tsv"):
        list(iter_input_rows(f"gs://{bucket.name}/nothing-here"))


def model_dir(tmp_path, big=3 * 256 * 1024 + 17):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(os.urandom(big))
    (folder / "tokenizer.json").write_text("{}")
    return folder


def test_export_writes_the_marker_last_and_a_reader_refuses_without_it(bucket, tmp_path):
    folder = model_dir(tmp_path)
    uri = f"gs://{bucket.name}/models/run-1"
    with pytest.raises(gcs.IncompleteUpload):
        gcs.export_model(folder, uri, chunk_size=256 * 1024, stop_after_files=2)
    assert bucket.blob("models/run-1/config.json").exists()  # part of the model is there ...
    with pytest.raises(gcs.IncompleteModel, match="no _COMPLETE.json"):
        gcs.download_model(uri, tmp_path / "reader")  # ... but no reader takes it
    report = gcs.export_model(folder, uri, chunk_size=256 * 1024)
    assert report["skipped"] == ["config.json", "model.safetensors"]  # the rerun does not upload them again
    assert [u["file"] for u in report["uploaded"]] == ["tokenizer.json"]
    got = gcs.download_model(uri, tmp_path / "reader")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (got / name).read_bytes() == (folder / name).read_bytes()


def test_an_interrupted_file_upload_resumes_from_its_session(bucket, tmp_path):
    folder = model_dir(tmp_path)
    path = folder / "model.safetensors"
    uri = f"gs://{bucket.name}/models/run-2/model.safetensors"
    with pytest.raises(gcs.IncompleteUpload, match="stopped after 2 chunks"):
        gcs.upload_file(path, uri, folder, chunk_size=256 * 1024, stop_after_chunks=2)
    assert (folder / ".model.safetensors.upload-session").exists()
    result = gcs.upload_file(path, uri, folder, chunk_size=256 * 1024)
    assert result["resumed_from"] == 2 * 256 * 1024 and result["chunks"] == 2
    assert bucket.blob("models/run-2/model.safetensors").download_as_bytes() == path.read_bytes()
    assert not (folder / ".model.safetensors.upload-session").exists()


def test_reexport_replaces_a_changed_file_and_keeps_the_marker_honest(bucket, tmp_path):
    folder = model_dir(tmp_path, big=1000)
    uri = f"gs://{bucket.name}/models/run-3"
    gcs.export_model(folder, uri)
    (folder / "config.json").write_text('{"model_type": "llama", "changed": true}')
    report = gcs.export_model(folder, uri)
    assert [u["file"] for u in report["uploaded"]] == ["config.json"]
    got = gcs.download_model(uri, tmp_path / "reader")
    assert json.loads((got / "config.json").read_text())["changed"] is True


def test_the_export_task_uploads_the_trained_checkpoint_to_gcs(bucket, tmp_path):
    from transformers import AutoModelForCausalLM

    from pugc.config import load_recipe
    from pugc.evaluation import run_export
    from pugc.io import write_jsonl
    from pugc.records import PreferencePair
    from pugc.stage_runner import run_training

    write_jsonl(tmp_path / "pairs.jsonl", [
        PreferencePair(prompt=[{"role": "user", "content": f"Q{i}?"}], chosen=[{"role": "assistant", "content": "Good."}],
                       rejected=[{"role": "assistant", "content": "no"}], score_chosen=5.0, score_rejected=1.0,
                       margin=4.0, instruction_id=f"q{i}", doc_id="d", chosen_id="c", rejected_id="r") for i in range(4)])
    uri = f"gs://{bucket.name}/exports/dpo"
    sections = load_recipe("tiny", ["dpo_training.max_steps=1", f"dpo_training.export_uri={uri}"]).to_dict()
    run_training(str(tmp_path / "pairs.jsonl"), str(tmp_path / "model"), sections["dpo_training"], sections["engines"])
    assert not gcs.blob(f"{uri}/config.json").exists()  # training alone exports nothing: the gate decides
    assert run_export(str(tmp_path / "model"), sections["dpo_training"])["export_uri"] == uri
    AutoModelForCausalLM.from_pretrained(gcs.download_model(uri, tmp_path / "fetched"))


def test_input_fingerprint_changes_with_new_or_rewritten_objects_only(bucket):
    from pugc.io import input_fingerprint

    prefix = f"gs://{bucket.name}/ugc/"
    bucket.blob("ugc/part-0.jsonl").upload_from_string('{"text": "a"}\n')
    first = input_fingerprint(prefix)
    assert input_fingerprint(prefix) == first  # nothing changed: a cache hit stays possible
    bucket.blob("ugc/part-1.jsonl").upload_from_string('{"text": "b"}\n')
    second = input_fingerprint(prefix)
    assert second != first  # a new file under the same prefix
    bucket.blob("ugc/part-1.jsonl").upload_from_string('{"text": "c"}\n')
    assert input_fingerprint(prefix) not in (first, second)  # the same name, new contents


def test_local_input_fingerprint_follows_the_file(tmp_path):
    import os

    from pugc.io import input_fingerprint

    data = tmp_path / "ugc.jsonl"
    data.write_text('{"text": "a"}\n')
    first = input_fingerprint(data)
    data.write_text('{"text": "a"}\n{"text": "b"}\n')
    os.utime(data, ns=(1, 2))
    assert input_fingerprint(data) != first


def test_a_model_on_gcs_is_exported_within_cloud_storage_and_a_retry_copies_nothing_twice(bucket, tmp_path):
    from pugc.evaluation import run_export

    folder = model_dir(tmp_path, big=1000)
    source = f"gs://{bucket.name}/root/pugc/run-9/dpo-training/uuid/dpo_model"
    gcs.export_model(folder, source)  # as the launcher uploads the training task's output
    bucket.blob(source.split("/", 3)[3] + "/_COMPLETE.json").delete()  # the launcher writes no marker
    first = run_export(source, {"export_uri": f"gs://{bucket.name}/exported/v1"})
    again = gcs.copy_model(source, f"gs://{bucket.name}/exported/v1")
    assert first["files"] == again["files"] == len([p for p in folder.rglob("*") if p.is_file()])
    assert again["copied"] == [] and len(again["skipped"]) == again["files"]
    got = gcs.download_model(f"gs://{bucket.name}/exported/v1", tmp_path / "reader")
    assert (got / "config.json").read_text() == (folder / "config.json").read_text()
