"""The GitHub `images` workflow builds every image and imports its stages inside it (it runs on GitHub, where
Docker is; tests/cluster/test_artifacts.py validates the file against the workflow schema), and on main pushes
each image tagged by commit."""
import yaml

from tests.images.stages import IMAGES, ROOT, modules_to_import


def images_job() -> dict:
    return workflow()["jobs"]["images"]


def workflow() -> dict:
    return yaml.safe_load((ROOT / ".github/workflows/images.yml").read_text())


def test_ci_builds_each_image_and_checks_it_inside():
    job = images_job()
    assert sorted(job["strategy"]["matrix"]["image"]) == sorted(IMAGES) == sorted(
        p.parent.name for p in ROOT.glob("images/*/Dockerfile"))
    commands = "\n".join(step.get("run", "") for step in job["steps"])
    assert 'docker buildx build -f "images/${{ matrix.image }}/Dockerfile"' in commands
    assert "python -m tests.images.stages" in commands and "/checks/import_all.py" in commands
    assert "python3 -m pip check" in commands


def test_ci_time_limit_fits_the_largest_image():
    """Pulling and unpacking vllm/vllm-openai alone takes 10-15 minutes on a hosted runner."""
    assert 30 <= images_job()["timeout-minutes"] <= 90


def test_module_list_for_ci_names_each_images_key_packages():
    assert {"numpy", "pugc.near_duplicates"} <= set(modules_to_import("base"))
    assert {"peft", "trl", "torch"} <= set(modules_to_import("trainer"))
    assert {"vllm", "pugc.engines.vllm_engine"} <= set(modules_to_import("vllm"))


def test_images_are_built_when_their_inputs_change_and_pushed_by_commit_from_main():
    flow = workflow()
    triggers = flow[True]  # YAML 1.1 reads the key `on` as true
    assert {"src/**", "images/**", "components/**", "pipelines/**"} <= set(triggers["push"]["paths"])
    assert triggers["pull_request"]["paths"] == triggers["push"]["paths"]
    assert flow["concurrency"]["cancel-in-progress"] is True
    steps = images_job()["steps"]
    push = next(s for s in steps if s.get("name", "").startswith("Push"))
    assert push["if"] == "github.event_name == 'push'" and ':$TAG"' in push["run"]
    tag = next(s for s in steps if "12 characters" in s.get("name", ""))
    assert "${TAG:0:12}" in tag["run"]  # what components/images.py compiles in (COMMIT_CHARS)
    assert any(s.get("uses", "").startswith("google-github-actions/auth@") for s in steps)
    build = next(s for s in steps if s.get("name", "").startswith("Build"))
    assert "type=gha" in build["run"]
