"""The definitions each supported backend parses our objects with, installed side by side for the tests:
kfp-kubernetes's protobufs per Kubeflow Pipelines release (the KubernetesExecutorConfig its API server and
driver read) and kubeflow-trainer-api's models per Kubeflow Trainer release.

    python tests/cluster/backend_models.py install DIR    (what `make backend-models` runs, once per table)

One `pip install --target` folder per release (they share import names, and the 1.x protobufs need protobuf 4,
the 2.x ones protobuf 6); a test runs each in a subprocess. Which kfp-kubernetes release matches which backend
was read off the backend's own proto at each tag (kubeflow/pipelines kubernetes_platform/proto,
kubernetes_executor_config.proto): 2.4.x has the fields of kfp-kubernetes 1.4.0, 2.5.0 those of 1.5.0, and from
2.14 the releases share version numbers.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

KFP_BACKENDS = {  # cluster.kfp_version -> what to install for its KubernetesExecutorConfig
    "2.4": ["protobuf==4.25.8", "kfp-kubernetes==1.4.0"],
    "2.5": ["protobuf==4.25.8", "googleapis-common-protos==1.63.2", "kfp-pipeline-spec==0.7.0", "kfp-kubernetes==1.5.0"],
    "2.15": ["protobuf==6.33.5", "googleapis-common-protos==1.70.0", "kfp-pipeline-spec==2.15.2", "kfp-kubernetes==2.15.2"],
    "2.16": ["protobuf==6.33.5", "googleapis-common-protos==1.70.0", "kfp-pipeline-spec==2.16.1", "kfp-kubernetes==2.16.1"],
    "2.17": ["protobuf==6.33.5", "googleapis-common-protos==1.70.0", "kfp-pipeline-spec==2.17.3", "kfp-kubernetes==2.17.3"],
}
TRAINER_APIS = {"2.1": ["kubeflow-trainer-api==2.1.0"], "2.2": ["kubeflow-trainer-api==2.3.0"]}  # cluster.trainer_version


def folders(root: str | Path) -> dict[str, Path]:
    root = Path(root)
    return {**{f"kfp-{v}": root / f"kfp-{v}" for v in KFP_BACKENDS}, **{f"trainer-{v}": root / f"trainer-{v}" for v in TRAINER_APIS}}


def install(root: str | Path) -> None:
    targets = folders(root)
    for version, packages in KFP_BACKENDS.items():
        _pip(targets[f"kfp-{version}"], packages)
    for version, packages in TRAINER_APIS.items():
        _pip(targets[f"trainer-{version}"], packages)


def _pip(target: Path, packages: list[str]) -> None:
    """One pip call per folder: a second --target call into the same folder would not merge `google/`."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--target", str(target), *packages], check=True)


if __name__ == "__main__":
    if sys.argv[1:2] != ["install"] or len(sys.argv) != 3:
        sys.exit("usage: backend_models.py install DIR")
    install(sys.argv[2])
