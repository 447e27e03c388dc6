"""What each image runs (pipelines/pugc_pipeline.py, components/images.py) and where its stages stop."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE_BACKENDS = ("pugc.engines.hf", "pugc.engines.vllm_engine", "pugc.engines.openai_engine",
                   "pugc.engines.reward_model")
WHY_NO_ENGINE = "runner.stage.LazyEngine imports the engine backends only for a stage with an engine role"
WHY_NO_INGEST = ("pugc.stages imports every stage module, but only ingest_ugc's task (base image) builds the "
                 "near-duplicate filter (pugc.near_duplicates, numpy)")
WHY_NO_ALPACA_EVAL = "AlpacaEval 2's GLM runs in evaluation_gate's task (base image)"
WHY_NO_PERSONAL_DATA = ("pugc.stages imports every stage module, but only ingest (base image), instruction_gen and "
                        "response_sampling (vllm image) screen personal data (phonenumbers); training reads "
                        "pairs already screened")
WHY_NO_SCREENS = ("only ingest_ugc's task (base image) and `pugc run`'s checks build the consent and language "
                  "screens (py3langid)")


@dataclass(frozen=True)
class ImageStages:
    image: str
    components: tuple[str, ...]  # component modules whose base_image is this image
    also_runs: tuple[str, ...] = ()  # pugc modules those stages load by configuration (engines, training)
    # pugc modules the stages import somewhere but never reach in this image (module -> why): not followed
    not_entered: dict[str, str] = field(default_factory=dict)
    # third-party modules imported only under `try/except ImportError` and absent on purpose (module -> why)
    optional_absent: dict[str, str] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return ROOT / "images" / self.image

    @property
    def entry_modules(self) -> list[str]:
        return [f"pugc.components.{c}" for c in self.components] + list(self.also_runs)


IMAGES = {
    "base": ImageStages(
        "base", ("input_fingerprint", "ingest_ugc", "merge_shards", "held_out_split", "preference_pairs",
                 "evaluation_gate", "export_model", "run_summary", "register_model", "upload_to_hub", "serve_model"),
        not_entered={
            **{backend: WHY_NO_ENGINE + " (preference_pairs has none)" for backend in ENGINE_BACKENDS},
            "pugc.training": "runner.training.run_training and config's DPO section check: dpo_training's task only",
            "pugc.models": "model ids resolve for engines and training only",
        },
    ),
    "trainer": ImageStages(
        "trainer", ("dpo_training",), also_runs=("pugc.training.dpo", "pugc.training.trl_args", "pugc.training.launch",
                                                               "pugc.training.trainjob"),
        not_entered={**{backend: WHY_NO_ENGINE + " (dpo_training has none)" for backend in ENGINE_BACKENDS},
                     "pugc.stages.ingest": WHY_NO_INGEST, "pugc.consent": WHY_NO_SCREENS,
                     "pugc.alpaca_eval_lc": WHY_NO_ALPACA_EVAL,
                     "pugc.personal_data": WHY_NO_PERSONAL_DATA},
    ),
    "vllm": ImageStages(
        "vllm", ("ugc_filter", "safety_screen", "instruction_gen", "relevance_filter", "response_sampling",
                 "reward_scoring", "evaluate"),
        also_runs=(*ENGINE_BACKENDS, "pugc.models.tiny"),  # the recipe picks the backend; tiny models in tests
        not_entered={"pugc.training": "runner.training.run_training and config's DPO section check: the trainer's",
                     "pugc.stages.ingest": WHY_NO_INGEST, "pugc.consent": WHY_NO_SCREENS,
                     "pugc.reports": "pugc.evaluation writes its HTML report in evaluation_gate's task (base image)",
                     "pugc.alpaca_eval_lc": WHY_NO_ALPACA_EVAL},
    ),
}


def modules_to_import(image: str) -> list[str]:
    """The pugc modules an image's stages reach and the third-party modules they import (required ones)."""
    from tests.images.closure import third_party_reach

    stages = IMAGES[image]
    reach = third_party_reach(stages.entry_modules, stages.not_entered)
    return sorted(reach.pugc_modules) + sorted(reach.required)


if __name__ == "__main__":  # python -m tests.images.stages IMAGE: what CI imports inside the built image
    import sys

    print(" ".join(modules_to_import(sys.argv[1])))
