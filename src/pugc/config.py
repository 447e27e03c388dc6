"""Typed configs, one per stage, and the recipe loader.

A recipe is one YAML file with a section per stage (keys = that stage's config fields), plus `engines:` and
`cluster:`. Loading rejects unknown keys and wrong types with the key's full path, so a typo such as
`reward_scoring.temprature` fails before any model loads or any pipeline is compiled.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

STAGES = (
    "ugc_filter",
    "instruction_gen",
    "relevance_filter",
    "response_sampling",
    "reward_scoring",
    "preference_pairs",
    "dpo_training",
)
LLM_STAGES = STAGES[:5]  # fanned out over shards, each followed by a `<stage>_merge` task
# Tasks of the pipeline that are not PUGC stages but still get resources.
AUX_TASKS = ("input_fingerprint", "ingest_ugc", "run_summary") + tuple(f"{stage}_merge" for stage in LLM_STAGES)
# Evaluation tasks (pugc.evaluation): held-out split, the evaluate fan-out and its merge, the gate, the export.
EVALUATION_TASKS = ("held_out_split", "evaluate", "evaluate_merge", "evaluation_gate", "export_model")
VerdictMode = Literal["sampled", "expected"]


REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


class ConfigError(ValueError):
    """A recipe or override that does not fit the schema; the message names the key's path."""


# ----------------------------------------------------------------------------------------------- engines
@dataclass
class EngineConfig:
    backend: Literal["hf", "vllm", "openai"] = "hf"
    model: str = "pugc-tiny/policy"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: int = 16  # prompts per forward pass (hf)
    max_model_len: Optional[int] = None  # prompt + completion token budget; None = the model's own
    # A hub commit (best: immutable), tag or branch of `model`, so a rerun loads the same weights. hf and vllm
    # load it; local folders and pugc-tiny ids have no revisions (ignored with a warning); openai cannot choose.
    revision: Optional[str] = None
    options: dict = field(default_factory=dict)  # backend-specific keyword arguments, passed through

    def check(self, path: str) -> None:
        if self.revision is not None and not REVISION.fullmatch(self.revision):
            raise ConfigError(f"{path}.revision: {self.revision!r} is not a hub revision (a commit hash, tag or "
                              "branch name: letters, digits and . _ / -)")


@dataclass
class EnginesConfig:
    """Which model plays which PUGC role, on which backend."""

    policy: EngineConfig = field(default_factory=lambda: EngineConfig(model="pugc-tiny/policy"))
    generator: EngineConfig = field(default_factory=lambda: EngineConfig(model="pugc-tiny/generator"))
    judge: EngineConfig = field(default_factory=lambda: EngineConfig(model="pugc-tiny/judge"))


# ------------------------------------------------------------------------------------------------ stages
@dataclass
class InputConfig:
    uri: Optional[str] = None  # a JSONL/Parquet file, a folder or gs:// prefix of them; `--input` overrides
    text_field: str = "text"
    id_field: str = "id"
    format: Literal["auto", "jsonl", "parquet"] = "auto"
    max_chars: int = 50_000  # longer documents are quarantined (too_long)
    max_line_bytes: int = 8 << 20  # longer input lines are quarantined (too_long) without being read whole
    near_duplicates: bool = True  # drop near-duplicates (MinHash Jaccard over word 3-grams) as `duplicate`
    near_duplicate_threshold: float = 0.8
    max_malformed_fraction: float = 0.5  # above this share of quarantined lines the run stops before any model


@dataclass
class EngineErrorBudget:
    """Every LLM stage: a record whose engine request failed after its retries (a served `openai` engine) is
    dropped as `engine_error` with the error as detail. When such records exceed `max_engine_error_fraction`
    of the records of one run of the stage (a chunk of `checkpoint_every` records when checkpointing, else
    the shard), the stage fails with the count, the fraction and the first error. 0 fails on the first one."""

    max_engine_error_fraction: float = 0.05


@dataclass
class SamplingConfig(EngineErrorBudget):
    """Sampling settings a stage hands its engine, in vLLM/OpenAI names."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 64
    seed: int = 0

    def sampling_params(self, n: int = 1, **extra):
        from pugc.engines.base import SamplingParams

        return SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p, n=n,
                              seed=self.seed, **extra)


@dataclass
class DocumentBudget:
    """Stages that put a UGC document into a prompt cut it to this many tokens (of the stage's model)."""

    max_document_tokens: int = 1536


@dataclass
class VerdictConfig(SamplingConfig):
    """A judgement read as a verdict: `sampled` (n generations, parsed, averaged) or `expected` (one pass,
    probability-weighted verdict token). Sampled verdicts that do not parse (or fall out of range) are drawn
    again, up to `max_resamples` more rounds, before the item is dropped as `unparsable_judgement`."""

    mode: VerdictMode = "expected"
    n: int = 1
    top_p: float = 0.9
    max_tokens: int = 8
    max_resamples: int = 2

    def sampling_params(self, **extra):
        return super().sampling_params(n=self.n, **extra)


@dataclass
class UGCFilterConfig(VerdictConfig, DocumentBudget):
    """Rate each document's quality 1-5; keep score >= threshold.

    threshold None (the default) keeps everything and loads no model: the paper found quantity matters more
    than quality (its Fig. 4); paper.yaml sets 4 (keep 4-5) as the paper did.
    """

    threshold: Optional[float] = None


@dataclass
class InstructionGenConfig(SamplingConfig, DocumentBudget):
    """Write the one question a reader would ask that the document answers."""

    temperature: float = 0.0
    max_tokens: int = 96


@dataclass
class RelevanceFilterConfig(VerdictConfig, DocumentBudget):
    """Keep a question if P(yes: the document answers it) >= threshold (sampled: the fraction of yes votes)."""

    threshold: float = 0.5


@dataclass
class ResponseSamplingConfig(SamplingConfig):
    k: int = 5
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 1024


@dataclass
class RewardScoringConfig(VerdictConfig, DocumentBudget):
    """Prometheus-style absolute grading, the UGC document as the score-5 reference answer."""

    mode: VerdictMode = "sampled"
    n: int = 8
    max_tokens: int = 1024
    repetition_penalty: float = 1.03
    reference: bool = True  # False: the reference-free ablation
    # expected mode: the judge writes its feedback greedily (up to this many tokens), then the verdict is
    # read as probabilities at the position after "[RESULT] ".
    feedback_max_tokens: int = 256

    def sampling_params(self, **extra):
        return super().sampling_params(repetition_penalty=self.repetition_penalty, **extra)


@dataclass
class PreferencePairsConfig:
    """chosen = highest mean score, rejected = lowest; drop ties and margins below min_margin."""

    min_margin: float = 0.0
    min_scored_responses: int = 2


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: Any = "all-linear"  # a PEFT value: "all-linear" or a list of module names
    merge: bool = True  # merge adapters into the saved model so from_pretrained loads it directly


TrainingStrategy = Literal["ddp", "fsdp", "deepspeed_zero3"]


@dataclass
class DPOTrainingConfig:
    """Our own switches; every other key of the section is a TRL DPOConfig (or CPOConfig) field."""

    method: Literal["dpo", "simpo"] = "dpo"
    lora: Optional[LoraConfig] = None
    trainer: dict = field(default_factory=dict)  # TRL fields, validated against TRL's config class

    export_uri: Optional[str] = None  # gs://... : the final checkpoint is uploaded there, completion marker last
    # The weights the optimizer updates. float32 (the default) keeps AdamW's small steps (lr 5e-7 moves a
    # bf16 weight by far less than its resolution); `bf16: true` then only sets the compute dtype (autocast).
    master_dtype: Literal["float32", "bfloat16"] = "float32"
    # How processes share the work on a multi-GPU pod (or TrainJob): src/pugc/training/accelerate/*.yaml
    strategy: TrainingStrategy = "ddp"
    cpu_offload: bool = False  # fsdp / deepspeed_zero3: parameters and optimizer state in host memory
    # per_device_train_batch_size x gradient_accumulation_steps x world size (GPUs of every node), checked
    # against cluster.resources.dpo_training at load; None = not checked (local runs)
    effective_batch_size: Optional[int] = None
    # Prompts longer than this many tokens are cut (keeping their end) before TRL sees them: TRL 1.16 has no
    # prompt-length field. None = prompts are cut only by max_length.
    max_prompt_length: Optional[int] = None

    OWN_KEYS: typing.ClassVar[tuple[str, ...]] = ("method", "lora", "export_uri", "master_dtype", "strategy",
                                                  "cpu_offload", "effective_batch_size", "max_prompt_length")


# -------------------------------------------------------------------------------------------- evaluation
@dataclass
class PairwiseJudgeConfig(VerdictConfig, DocumentBudget):
    """Prometheus 2 relative grading (`[RESULT] A|B`), the UGC document as reference where there is one."""

    mode: VerdictMode = "sampled"
    temperature: float = 1.0
    max_tokens: int = 1024
    repetition_penalty: float = 1.03
    reference: bool = True
    feedback_max_tokens: int = 256  # expected mode: greedy feedback first, then P(A) vs P(B) after "[RESULT] "

    def sampling_params(self, **extra):
        return super().sampling_params(repetition_penalty=self.repetition_penalty, **extra)


@dataclass
class GateConfig:
    """Export only a model that beats the baseline by these figures (fractions 0-1); None = not checked."""

    min_win_rate: Optional[float] = None
    min_lc_win_rate: Optional[float] = None


@dataclass
class EvaluationConfig(SamplingConfig):
    """Head-to-head evaluation of the trained model against a baseline, and the gate on its export.

    `held_out_fraction` of the relevant questions (chosen by a hash of the question id) never reach sampling
    or training; they are the evaluation set, each with its UGC document as the judge's reference.
    `prompt_sets` add JSONL prompt files (local or gs://): AlpacaEval rows (`instruction`) or MT-Bench
    questions (`turns`, first turn used), judged without reference. The sampling fields are the answers'
    (both models alike). `baseline` is a model id, a path, or a gs:// model exported by a past run
    (export_model); None = the starting policy (engines.policy).
    """

    held_out_fraction: float = 0.1
    prompt_sets: list[str] = field(default_factory=list)
    baseline: Optional[str] = None
    temperature: float = 0.0
    max_tokens: int = 512
    judge: PairwiseJudgeConfig = field(default_factory=PairwiseJudgeConfig)
    gate: GateConfig = field(default_factory=GateConfig)


# ----------------------------------------------------------------------------------------------- cluster
Quantity = Optional[Union[str, int, float]]  # a Kubernetes quantity: "500m", 2, "16Gi"


@dataclass
class ResourceSpec:
    cpu_request: Quantity = None
    cpu_limit: Quantity = None
    memory_request: Quantity = None
    memory_limit: Quantity = None
    accelerator_type: Optional[str] = None  # Kubernetes resource name, e.g. nvidia.com/gpu
    accelerator_count: int = 0
    vertex_accelerator_type: Optional[str] = None  # Vertex enum name, e.g. NVIDIA_H100_80GB; else cluster.gpu's
    vertex_machine_type: Optional[str] = None  # e.g. a3-highgpu-8g; None = derived from the accelerators
    vertex_boot_disk_size_gb: Optional[int] = None  # None = cluster.vertex.boot_disk_size_gb
    node_selector: dict[str, str] = field(default_factory=dict)  # added to cluster.gpu.node_selector
    # dpo_training only: > 1 trains as a Kubeflow Trainer TrainJob on this many nodes x accelerator_count GPUs
    nodes: int = 1
    shards: Optional[int] = None  # LLM stages: parallel tasks (one GPU pod each); None = cluster.shards
    timeout_seconds: Optional[int] = None


@dataclass
class Toleration:
    key: Optional[str] = None
    operator: Literal["Equal", "Exists"] = "Exists"
    value: Optional[str] = None
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None


@dataclass
class RetryPolicy:
    """Task retries with exponential backoff (preemptible GPU nodes come and go).

    `backoff_max_duration` is how long after the first start a retry may still begin: Argo (open-source KFP)
    counts it from the first try, so None (the default) derives it from the task's timeout to cover every
    try (pipelines/platform.py); Vertex AI caps it at one hour.
    """

    max_retries: int = 2
    backoff_duration: str = "60s"
    backoff_factor: float = 2.0
    backoff_max_duration: Optional[str] = None


@dataclass
class GPUSettings:
    """Applied to every task that requests an accelerator."""

    node_selector: dict[str, str] = field(default_factory=dict)  # e.g. cloud.google.com/gke-accelerator: nvidia-h100-80gb
    tolerations: list[Toleration] = field(
        default_factory=lambda: [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")])
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    vertex_accelerator_type: str = "NVIDIA_H100_80GB"


@dataclass
class VertexSettings:
    """Vertex AI only. GPU tasks run as Vertex custom jobs, so each gets a machine type and a boot disk big
    enough for its model's weights (the default 100 GB cannot hold a 70B model in bf16, about 141 GB)."""

    # Secret Manager name of the Hugging Face token, projects/P/secrets/S[/versions/V]: read by the task at
    # run time with its service account (pugc.secrets), never compiled into the pipeline.
    hf_token_secret: Optional[str] = None
    # Vertex tasks share no volume: checkpoints go to Cloud Storage through its FUSE mount, /gcs/BUCKET/...
    checkpoint_root: Optional[str] = None
    boot_disk_type: str = "pd-ssd"
    boot_disk_size_gb: int = 200
    strategy: Literal["STANDARD", "SPOT", "FLEX_START"] = "STANDARD"  # SPOT: preemptible, retried on loss


@dataclass
class ClusterConfig:
    pipeline_root: Optional[str] = None  # gs://bucket/prefix for cluster runs (pugc compile/submit --pipeline-root)
    shards: int = 1  # default fan-out of every LLM stage (ParallelFor over shards, merged in order)
    caching: bool = True
    labels: dict[str, str] = field(default_factory=dict)  # pod labels on every task
    run_as_user: int = 10001  # the images' non-root user (a high UID, clear of host users)
    # Where runs execute and as whom (pugc submit sends both; pugc preflight checks them). Standalone KFP
    # starts every run's pods in its own namespace (`kubeflow`) whatever the client names; multi-user KFP
    # uses the profile namespace named here. The service account is a Kubernetes one (manifests/ create
    # `pugc-pipeline-runner`); None = the backend's default (pipeline-runner, or default-editor).
    namespace: Optional[str] = None
    service_account: Optional[str] = None
    # Model tasks (LLM stages, DPO): Hugging Face token, model cache, shared memory.
    hf_token_secret: Optional[str] = None  # name of a Kubernetes Secret; its value never enters the pipeline
    hf_token_secret_key: str = "token"
    # The openai engine's API key, from a Kubernetes Secret, on the tasks whose engine role uses backend
    # openai, as that engine's `api_key_env` variable (OPENAI_API_KEY by default).
    openai_api_key_secret: Optional[str] = None
    openai_api_key_secret_key: str = "api-key"
    model_cache_pvc: Optional[str] = None  # a ReadWriteMany PVC shared by the model tasks
    model_cache_path: str = "/cache"  # HF_HOME and vLLM's cache live under it
    shm_size: str = "16Gi"  # /dev/shm as a memory-backed emptyDir (vLLM workers, DataLoader, NCCL)
    # Resume after preemption: LLM stages save each engine batch as it completes, DPO every `dpo_save_steps`
    # steps, under this durable path (a shared volume such as the cache PVC, or /gcs/... on Vertex). The first
    # batch has `checkpoint_every` records; later ones grow toward `checkpoint_seconds` of work each, up to
    # `engine_batch` records (pugc/runner/chunks.py).
    checkpoint_root: Optional[str] = None
    checkpoint_every: int = 512
    checkpoint_seconds: int = 600
    engine_batch: int = 16384
    dpo_save_steps: int = 50
    # dpo_training with resources.dpo_training.nodes > 1: the Kubeflow Trainer runtime its TrainJob references
    # (a ClusterTrainingRuntime installed with Kubeflow Trainer; manifests/README.md) and how often to poll it
    trainjob_runtime: str = "torch-distributed"
    trainjob_poll_seconds: int = 30
    gpu: GPUSettings = field(default_factory=GPUSettings)
    vertex: VertexSettings = field(default_factory=VertexSettings)
    resources: dict[str, ResourceSpec] = field(default_factory=dict)

    def runtime(self, target: str = "kfp") -> dict:
        """What tasks need at run time beyond their stage config (a pipeline parameter, nulls left out)."""
        root = self.checkpoint_root
        if target == "vertex":
            root = self.vertex.checkpoint_root
            if root and not root.startswith("/gcs/"):
                raise ConfigError(f"cluster.vertex.checkpoint_root: Vertex tasks share no volume; use a Cloud "
                                  f"Storage FUSE path such as /gcs/BUCKET/pugc/checkpoints, not {root!r}")
        training = self.resources.get("dpo_training") or ResourceSpec()
        return without_nulls({"checkpoint_root": root, "checkpoint_every": self.checkpoint_every,
                              "checkpoint_seconds": self.checkpoint_seconds, "engine_batch": self.engine_batch,
                              "dpo_save_steps": self.dpo_save_steps,
                              "dpo_processes_per_node": max(training.accelerator_count, 1)})

    def shards_for(self, stage: str) -> int:
        spec = self.resources.get(stage)
        count = spec.shards if spec and spec.shards is not None else self.shards
        if count < 1:
            raise ConfigError(f"cluster shards for {stage} must be at least 1, got {count}")
        return count


# ------------------------------------------------------------------------------------------------ recipe
@dataclass
class Recipe:
    name: str = "unnamed"
    description: str = ""
    rounds: int = 1  # online iterative training: the training questions in this many parts, one per round
    input: InputConfig = field(default_factory=InputConfig)
    engines: EnginesConfig = field(default_factory=EnginesConfig)
    ugc_filter: UGCFilterConfig = field(default_factory=UGCFilterConfig)
    instruction_gen: InstructionGenConfig = field(default_factory=InstructionGenConfig)
    relevance_filter: RelevanceFilterConfig = field(default_factory=RelevanceFilterConfig)
    response_sampling: ResponseSamplingConfig = field(default_factory=ResponseSamplingConfig)
    reward_scoring: RewardScoringConfig = field(default_factory=RewardScoringConfig)
    preference_pairs: PreferencePairsConfig = field(default_factory=PreferencePairsConfig)
    dpo_training: DPOTrainingConfig = field(default_factory=DPOTrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        dpo = data["dpo_training"]
        data["dpo_training"] = {**{key: dpo[key] for key in DPOTrainingConfig.OWN_KEYS}, **dpo["trainer"]}
        return data

    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def pipeline_sections(self) -> dict:
        """Sections as KFP dict parameters. KFP structs cannot hold null; every Optional field defaults to
        None, so leaving nulls out rebuilds the same config on the other side."""
        return without_nulls(self.to_dict())


def without_nulls(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: without_nulls(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [without_nulls(v) for v in data]
    return data


STAGE_CONFIGS = {
    "ugc_filter": UGCFilterConfig,
    "instruction_gen": InstructionGenConfig,
    "relevance_filter": RelevanceFilterConfig,
    "response_sampling": ResponseSamplingConfig,
    "reward_scoring": RewardScoringConfig,
    "preference_pairs": PreferencePairsConfig,
    "dpo_training": DPOTrainingConfig,
}


# ------------------------------------------------------------------------------------------- validation
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against the annotation `tp`; return it (numbers normalised), or raise naming `path`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} fits none of {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        if args:
            return {k: _coerce(v, args[1], f"{path}.{k}") for k, v in value.items()}
        return dict(value)
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        return [_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        # KFP hands dict parameters back with every number as a float; accept integral floats.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {path}")


def unknown_key_error(key: str, known: typing.Iterable[str], path: str) -> ConfigError:
    hint = difflib.get_close_matches(key, list(known), n=1)
    suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
    return ConfigError(f"unknown key '{path}'{suggestion}")


def build(cls: type, data: Any, path: str) -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(data).__name__}")
    if cls is DPOTrainingConfig:
        return _build_dpo(data, path)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise unknown_key_error(str(key), names, key_path)
        kwargs[key] = _coerce(value, hints[key], key_path)
    built = cls(**kwargs)
    if hasattr(built, "check"):  # rules across a section's fields
        built.check(path)
    return built


def _build_dpo(data: dict, path: str) -> DPOTrainingConfig:
    own = {k: v for k, v in data.items() if k in DPOTrainingConfig.OWN_KEYS}
    trainer = {k: v for k, v in data.items() if k not in DPOTrainingConfig.OWN_KEYS}
    hints = typing.get_type_hints(DPOTrainingConfig)
    kwargs = {key: _coerce(value, hints[key], f"{path}.{key}") for key, value in own.items()}
    from pugc.training.trl_args import validate_trainer_args

    trainer = validate_trainer_args(kwargs.get("method", "dpo"), trainer, path)
    return DPOTrainingConfig(**kwargs, trainer=trainer)


def check_training_world(recipe: "Recipe") -> None:
    """The recipe's effective batch must be what its batch keys and GPUs multiply to, and the strategy must fit."""
    dpo, spec = recipe.dpo_training, recipe.cluster.resources.get("dpo_training") or ResourceSpec()
    if spec.nodes < 1:
        raise ConfigError(f"cluster.resources.dpo_training.nodes must be at least 1, got {spec.nodes}")
    if spec.nodes > 1 and spec.accelerator_count < 1:
        raise ConfigError("cluster.resources.dpo_training.nodes > 1 needs accelerator_count (GPUs per node)")
    if dpo.cpu_offload and dpo.strategy == "ddp":
        raise ConfigError("dpo_training.cpu_offload needs strategy fsdp or deepspeed_zero3 (ddp keeps everything on the GPU)")
    if dpo.effective_batch_size is None:
        return
    per_device = int(dpo.trainer.get("per_device_train_batch_size", 8))  # TRL's default
    accumulation = int(dpo.trainer.get("gradient_accumulation_steps", 1))
    world = max(spec.accelerator_count, 1) * spec.nodes
    product = per_device * accumulation * world
    if product != dpo.effective_batch_size:
        raise ConfigError(
            f"dpo_training.effective_batch_size is {dpo.effective_batch_size}, but dpo_training."
            f"per_device_train_batch_size ({per_device}) x dpo_training.gradient_accumulation_steps "
            f"({accumulation}) x world size ({world}: cluster.resources.dpo_training.accelerator_count "
            f"{spec.accelerator_count} x nodes {spec.nodes}) = {product}")


def _check_resource_keys(data: dict) -> None:
    resources = (data.get("cluster") or {}).get("resources") or {}
    for task in resources if isinstance(resources, dict) else ():
        if task not in STAGES + AUX_TASKS + EVALUATION_TASKS:
            raise unknown_key_error(task, STAGES + AUX_TASKS + EVALUATION_TASKS, f"cluster.resources.{task}")


# ----------------------------------------------------------------------------------- loading, overrides
TOP_LEVEL_SETTINGS = ("name", "description", "rounds")  # recipe keys that are values, not sections


def parse_override(text: str) -> tuple[list[str], Any]:
    """'reward_scoring.n=4' -> (['reward_scoring', 'n'], 4), 'rounds=3' -> (['rounds'], 3); the value is YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts or (len(parts) == 1 and parts[0] not in TOP_LEVEL_SETTINGS):
        raise ConfigError(f"override {text!r} must name a section and a key, e.g. reward_scoring.n=4")
    return parts, yaml.safe_load(raw) if raw.strip() else ""


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return data


def recipe_from_dict(data: dict) -> Recipe:
    _check_resource_keys(data)
    recipe = build(Recipe, data, "")
    if recipe.rounds < 1:
        raise ConfigError(f"rounds: must be at least 1, got {recipe.rounds}")
    lora = recipe.dpo_training.lora
    if recipe.rounds > 1 and lora is not None and not lora.merge:  # the next round loads it as its policy
        raise ConfigError("rounds > 1 needs a full model from each round: set dpo_training.lora.merge: true")
    training = recipe.cluster.resources.get("dpo_training")
    if recipe.rounds > 1 and training is not None and training.nodes > 1:
        # A TrainJob's pods read the pipeline root, not the previous round's model mounted in the launcher pod.
        raise ConfigError("rounds > 1 trains on one node: cluster.resources.dpo_training.nodes > 1 (a TrainJob) "
                          "cannot yet start from the previous round's model")
    check_training_world(recipe)
    return recipe


def find_recipe(name_or_path: str | Path) -> Path:
    """A path, or a bare name (`paper`, `paper.yaml`) looked up in ./recipes and in the source checkout's recipes/.

    Anything with a folder in it is a path and must exist: `/elsewhere/paper.yaml` never falls back to the
    bundled `paper` recipe."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if len(path.parts) > 1:
        raise ConfigError(f"recipe file {str(name_or_path)!r} not found")
    name = path.name if path.suffix else f"{path.name}.yaml"
    for folder in (Path.cwd() / "recipes", Path(__file__).resolve().parents[2] / "recipes"):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"recipe {str(name_or_path)!r} not found (a YAML path, or a name under recipes/)")


def read_recipe(name_or_path: str | Path, overrides: typing.Iterable[str] = ()) -> tuple[Path, dict]:
    """The recipe file and its data with overrides applied, not yet validated."""
    path = find_recipe(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections")
    data.setdefault("name", path.stem)
    try:
        return path, apply_overrides(data, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_section(name_or_path: str | Path, section: str, overrides: typing.Iterable[str] = ()) -> Any:
    """One section of a recipe, validated on its own: quick, for checks that must not wait for the whole
    recipe (validating `dpo_training:` imports TRL, seconds)."""
    path, data = read_recipe(name_or_path, overrides)
    cls = typing.get_type_hints(Recipe)[section]
    try:
        return build(cls, data.get(section), section)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_recipe(name_or_path: str | Path, overrides: typing.Iterable[str] = ()) -> Recipe:
    path, data = read_recipe(name_or_path, overrides)
    try:
        return recipe_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)
