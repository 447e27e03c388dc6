"""Loaded by every task the backend harness starts (tests/cluster/kfp_backend.py): the launcher makes gs://
artifacts appear under /gcs/ in the container; here that mount is a folder of the test's own."""
import os

_mount = os.environ.get("PUGC_HARNESS_GCS_MOUNT")
if _mount:
    from kfp.dsl.types import artifact_types

    artifact_types._GCS_LOCAL_MOUNT_PREFIX = _mount.rstrip("/") + "/"
