"""The compiled pipeline YAML: DAG shape, images, per-stage resources, and parameters that round-trip."""
import dataclasses

import pytest
import yaml

from pugc.config import STAGE_CONFIGS, build, load_recipe
from pugc.pipelines.local import compile_pipeline

LLM_STAGES = ["ugc_filter", "instruction_gen", "relevance_filter", "response_sampling", "reward_scoring"]
GPU_STAGES = LLM_STAGES + ["dpo_training"]
ALL_TASKS = ["ingest_ugc", *GPU_STAGES[:5], "preference_pairs", "dpo_training", "run_summary"]


def compiled(tmp_path, recipe_name, overrides=()):
    path = compile_pipeline(load_recipe(recipe_name, overrides), tmp_path / f"{recipe_name}.yaml")
    return yaml.safe_load(path.read_text())


def executor(spec, stage):
    return spec["deploymentSpec"]["executors"][f"exec-{stage.replace('_', '-')}"]["container"]


def test_dag_reads_like_the_method(tmp_path):
    """ingest -> each LLM stage as a shard loop + merge -> pairs -> DPO, and a summary of everything."""
    spec = compiled(tmp_path, "paper", ["cluster.shards=4", "cluster.resources.reward_scoring.shards=8"])
    tasks = spec["root"]["dag"]["tasks"]
    by_name = {t["taskInfo"]["name"]: key for key, t in tasks.items()}
    chain = ["ingest_ugc"]
    for stage in LLM_STAGES:
        chain += [f"{stage}-shards", f"{stage}_merge"]
    chain += ["preference_pairs", "dpo_training"]
    assert set(by_name) == set(chain) | {"run_summary"}
    for before, after in zip(chain, chain[1:]):
        assert tasks[by_name[after]]["dependentTasks"] == [by_name[before]], after
    for stage in LLM_STAGES:
        loop = tasks[by_name[f"{stage}-shards"]]
        shards = 8 if stage == "reward_scoring" else 4
        assert loop["parameterIterator"]["items"]["raw"] == str(list(range(shards)))
        inner = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
        assert [t["taskInfo"]["name"] for t in inner.values()] == [stage]
    assert all(t.get("cachingOptions", {}).get("enableCache") for t in tasks.values() if "componentRef" in t
               and not t["taskInfo"]["name"].endswith("-shards"))


def test_paper_recipe_puts_llm_stages_and_dpo_on_gpus_and_pairs_on_cpu(tmp_path):
    spec = compiled(tmp_path, "paper")
    recipe = load_recipe("paper")
    for stage in GPU_STAGES:
        resources = executor(spec, stage)["resources"]
        wanted = recipe.cluster.resources[stage]
        assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu", stage
        assert int(resources["accelerator"]["resourceCount"]) == wanted.accelerator_count >= 1, stage
        assert resources["resourceMemoryLimit"] == wanted.memory_limit, stage
    for stage in ["ingest_ugc", "preference_pairs", "run_summary"]:
        assert "accelerator" not in executor(spec, stage).get("resources", {}), stage


def test_images_come_from_one_module_tagged_with_the_version(tmp_path):
    from pugc import __version__
    from pugc.components import images

    spec = compiled(tmp_path, "paper")
    assert executor(spec, "reward_scoring")["image"] == images.INFERENCE
    assert executor(spec, "dpo_training")["image"] == images.TRAINER
    assert executor(spec, "preference_pairs")["image"] == images.BASE
    assert images.BASE.endswith(f":{__version__}")
    # Images carry kfp and pugc: the command must not pip-install kfp at start-up.
    assert "pip install" not in " ".join(executor(spec, "reward_scoring")["command"])


def test_tiny_recipe_requests_no_accelerator(tmp_path):
    spec = compiled(tmp_path, "tiny")
    for stage in ALL_TASKS:
        assert "accelerator" not in executor(spec, stage).get("resources", {}), stage


@pytest.mark.parametrize("recipe_name", ["tiny", "paper"])
def test_parameter_defaults_rebuild_the_same_typed_configs(tmp_path, recipe_name):
    """What a component rebuilds from the compiled defaults (numbers as floats, nulls left out) is the recipe."""
    recipe = load_recipe(recipe_name, ["ugc_filter.threshold=null"])
    spec = yaml.safe_load(compile_pipeline(recipe, tmp_path / "p.yaml").read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    for stage, cls in STAGE_CONFIGS.items():
        rebuilt = build(cls, params[f"{stage}_config"]["defaultValue"], stage)
        assert rebuilt == getattr(recipe, stage), stage
    assert params["recipe_digest"]["defaultValue"] == recipe.digest()


def test_every_optional_config_field_defaults_to_none():
    """KFP dict parameters cannot carry null, so nulls are left out; that is only lossless if None is the default."""
    import typing

    from pugc import config as cfg

    classes = [c for c in vars(cfg).values() if dataclasses.is_dataclass(c) and isinstance(c, type)]
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if type(None) in typing.get_args(hints[field.name]):
                assert field.default is None, f"{cls.__name__}.{field.name}"


def test_typo_fails_before_compiling(tmp_path):
    from pugc.cli import main

    out = tmp_path / "never.yaml"
    assert main(["compile", "--recipe", "paper", "--set", "reward_scoring.temprature=1", "-o", str(out)]) == 2
    assert not out.exists()
