"""Google Cloud Storage: UGC input from a gs:// file or prefix, and model export that a reader can trust.

Export uploads every file with GCS's resumable protocol in chunks, keeping the session URL beside the local
file, so an upload cut off by a preempted pod resumes where it stopped; files already uploaded whole are
skipped. A completion marker listing every file (size, md5) is written last and removed first, so a reader
that finds the marker finds the whole model, and `download_model` refuses a folder without it.
Works against real GCS (application default credentials) and against an emulator (STORAGE_EMULATOR_HOST).
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "_COMPLETE.json"
CHUNK_SIZE = 8 * 1024 * 1024  # resumable chunks must be multiples of 256 KiB


class IncompleteUpload(RuntimeError):
    """The upload stopped before its end (a fault-injection hook, or a dropped connection)."""


class IncompleteModel(RuntimeError):
    """A gs:// model folder without its completion marker, or whose files do not match it."""


def is_gcs(uri: str) -> bool:
    return str(uri).startswith("gs://")


def split(uri: str) -> tuple[str, str]:
    bucket, _, path = str(uri)[len("gs://"):].partition("/")
    if not bucket:
        raise ValueError(f"{uri}: not a gs://bucket/path URI")
    return bucket, path


@lru_cache(maxsize=1)
def client():
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "pugc"), credentials=AnonymousCredentials())
    return storage.Client()


def blob(uri: str):
    bucket, path = split(uri)
    return client().bucket(bucket).blob(path)


def input_files(uri: str) -> list[str]:
    """A gs:// file, or every input object (pugc.io.file_format) under a gs:// prefix, in name order."""
    from pugc.io import INPUT_KINDS, file_format

    bucket, path = split(uri)
    if path and not path.endswith("/") and blob(uri).exists():
        return [uri]
    prefix = path if path.endswith("/") or not path else path + "/"
    names = sorted(b.name for b in client().list_blobs(bucket, prefix=prefix) if file_format(b.name))
    if not names:
        raise FileNotFoundError(f"{uri}: no object, and no input objects ({INPUT_KINDS}) under it")
    return [f"gs://{bucket}/{name}" for name in names]


def versions(uris: list[str]) -> list[list]:
    """[uri, size, generation, crc32c] per object: what tells one version of an object from another."""
    found = []
    for uri in uris:
        obj = blob(uri)
        obj.reload()
        found.append([uri, obj.size, obj.generation, obj.crc32c])
    return found


def open_binary(uri: str):
    """A streaming binary reader of the object (readline with a size limit works on it)."""
    return blob(uri).open("rb")


def read_bytes(uri: str) -> bytes:
    return blob(uri).download_as_bytes()


# ------------------------------------------------------------------------------------------------ export
def _md5(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324  (GCS reports md5; this is an integrity check, not security)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def _persisted_bytes(session_url: str, total: int) -> int | None:
    """Ask a resumable session how much it holds; None if the session is gone or already complete."""
    import requests

    reply = requests.put(session_url, headers={"Content-Range": f"bytes */{total}"}, timeout=60)
    if reply.status_code == 308:
        held = reply.headers.get("Range")
        return int(held.rsplit("-", 1)[1]) + 1 if held else 0
    return None


def upload_file(path: Path, uri: str, state_dir: Path, chunk_size: int = CHUNK_SIZE,
                stop_after_chunks: int | None = None) -> dict:
    """Upload one file with the resumable protocol; a session left by an earlier try is resumed."""
    import requests

    total = path.stat().st_size
    state = state_dir / f".{path.name}.upload-session"
    offset, session = 0, None
    if state.exists():
        session = state.read_text().strip()
        held = _persisted_bytes(session, total)
        if held is None:
            session = None
        else:
            offset = held
    if session is None:
        session = blob(uri).create_resumable_upload_session(size=total)
        state.write_text(session)
    resumed_from, chunks = offset, 0
    with open(path, "rb") as handle:
        handle.seek(offset)
        while offset < total or total == 0:
            if stop_after_chunks is not None and chunks >= stop_after_chunks:
                raise IncompleteUpload(f"{uri}: stopped after {chunks} chunks at byte {offset} of {total}")
            data = handle.read(chunk_size)
            end = offset + len(data) - 1
            content_range = f"bytes {offset}-{end}/{total}" if data else f"bytes */{total}"
            reply = requests.put(session, data=data, headers={"Content-Range": content_range}, timeout=600)
            chunks += 1
            if reply.status_code in (200, 201):
                break
            if reply.status_code != 308:
                raise IncompleteUpload(f"{uri}: upload answered {reply.status_code}: {reply.text[:200]}")
            held = reply.headers.get("Range")
            offset = int(held.rsplit("-", 1)[1]) + 1 if held else 0
    state.unlink(missing_ok=True)
    return {"file": path.name, "bytes": total, "resumed_from": resumed_from, "chunks": chunks}


def export_model(local_dir: str | Path, uri: str, chunk_size: int = CHUNK_SIZE,
                 stop_after_files: int | None = None, extra_files: dict[str, bytes] | None = None) -> dict:
    """Upload a model folder to gs://; marker removed first, written last. Returns what was uploaded.
    `extra_files` (name -> content, such as the model card's README.md) join the folder's, before the marker."""
    local_dir = Path(local_dir)
    base = uri.rstrip("/")
    marker = blob(f"{base}/{MARKER}")
    if marker.exists():
        marker.delete()
    files = sorted(p for p in local_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    manifest, uploaded, skipped = {}, [], []
    for number, path in enumerate(files):
        if stop_after_files is not None and number >= stop_after_files:
            raise IncompleteUpload(f"{uri}: stopped after {number} of {len(files)} files")
        name = path.relative_to(local_dir).as_posix()
        manifest[name] = {"size": path.stat().st_size, "md5": _md5(path)}
        target = blob(f"{base}/{name}")
        if target.exists():
            target.reload()
            if target.size == manifest[name]["size"] and target.md5_hash == manifest[name]["md5"]:
                skipped.append(name)
                continue
        uploaded.append(upload_file(path, f"{base}/{name}", path.parent, chunk_size))
    manifest.update(_upload_extra(base, extra_files))
    marker.upload_from_string(json.dumps({"files": manifest, "completed_at": time.time()}, indent=2),
                              content_type="application/json")
    log.info("exported %d files to %s (%d already there)", len(uploaded), uri, len(skipped))
    return {"uri": uri, "uploaded": uploaded, "skipped": skipped, "files": len(manifest)}


def _upload_extra(base: str, extra_files: dict[str, bytes] | None) -> dict:
    """Write small files beside a model's (they replace a source file of the same name); their manifest rows."""
    manifest = {}
    for name, content in (extra_files or {}).items():
        target = blob(f"{base}/{name}")
        target.upload_from_string(content)
        target.reload()
        manifest[name] = {"size": target.size, "md5": target.md5_hash}
    return manifest


def copy_model(source_uri: str, uri: str, extra_files: dict[str, bytes] | None = None) -> dict:
    """Copy a model folder from one gs:// prefix to another inside Cloud Storage (rewrite: nothing passes
    through this machine); files already there with the same size and MD5 are skipped, so a retry resumes.
    Marker removed first, written last, with the same manifest `export_model` writes."""
    source_bucket, source_prefix = split(source_uri.rstrip("/") + "/")
    base = uri.rstrip("/")
    marker = blob(f"{base}/{MARKER}")
    if marker.exists():
        marker.delete()
    manifest, copied, skipped = {}, [], []
    for source in client().list_blobs(source_bucket, prefix=source_prefix):
        name = source.name[len(source_prefix):]
        if not name or name.rsplit("/", 1)[-1].startswith("."):
            continue
        manifest[name] = {"size": source.size, "md5": source.md5_hash}
        target = blob(f"{base}/{name}")
        if target.exists():
            target.reload()
            if target.size == source.size and target.md5_hash == source.md5_hash:
                skipped.append(name)
                continue
        token, _, _ = target.rewrite(source)
        while token is not None:  # large objects move in several calls
            token, _, _ = target.rewrite(source, token=token)
        copied.append(name)
    if not manifest:
        raise FileNotFoundError(f"{source_uri}: no model files to export")
    manifest.update(_upload_extra(base, extra_files))
    marker.upload_from_string(json.dumps({"files": manifest, "completed_at": time.time()}, indent=2),
                              content_type="application/json")
    log.info("exported %d files to %s within Cloud Storage (%d already there)", len(copied), uri, len(skipped))
    return {"uri": uri, "copied": copied, "skipped": skipped, "files": len(manifest)}


def download_model(uri: str, local_dir: str | Path) -> Path:
    """Fetch a model exported by `export_model`; refuses one without its marker or with files that differ."""
    base = uri.rstrip("/")
    marker = blob(f"{base}/{MARKER}")
    if not marker.exists():
        raise IncompleteModel(f"{uri}: no {MARKER}: the export is missing or still running; refusing to load it")
    manifest = json.loads(marker.download_as_bytes())["files"]
    local_dir = Path(local_dir)
    for name, expected in manifest.items():
        target = local_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        blob(f"{base}/{name}").download_to_filename(str(target))
        if target.stat().st_size != expected["size"] or _md5(target) != expected["md5"]:
            raise IncompleteModel(f"{uri}/{name}: does not match the completion marker")
    return local_dir
