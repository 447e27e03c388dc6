"""Typed configs, one per stage, and the recipe loader.

A recipe is one YAML file with a section per stage (keys = that stage's config fields), plus `engines:` and
`cluster:`. Each section is a pydantic dataclass: types, ranges (`integer(ge=1)`, `Fraction`) and the rules
between fields are declared here, once, and give both the checks at load and the JSON Schema that editors
validate recipes with (`pugc schema`, recipes/recipe.schema.json). Loading rejects unknown keys, wrong types
and values out of range with the key's full path, so a typo such as `reward_scoring.temprature` or a
percentage where a fraction belongs fails before any model loads or any pipeline is compiled. The TRL keys
of `dpo_training:` are checked against TRL's own config class (pugc.training.trl_args) after the rest.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import typing
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BeforeValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError, field_validator, \
    model_validator
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from pugc.recipe_types import (Bool, ConfigError, Count, Float, Fraction, Int, KeyProblem, NonNegative,
                               NonNegativeInt, Str, did_you_mean, integer, number, unknown_key_error)

STAGES = (
    "ugc_filter",
    "safety_screen",
    "instruction_gen",
    "relevance_filter",
    "response_sampling",
    "reward_scoring",
    "preference_pairs",
    "dpo_training",
)
LLM_STAGES = STAGES[:6]  # fanned out over shards, each followed by a `<stage>_merge` task
# Tasks of the pipeline that are not PUGC stages but still get resources.
AUX_TASKS = ("input_fingerprint", "ingest_ugc", "run_summary") + tuple(f"{stage}_merge" for stage in LLM_STAGES)
# Evaluation tasks (pugc.evaluation): held-out split, the evaluate fan-out and its merge, the gate, the export.
EVALUATION_TASKS = ("held_out_split", "evaluate", "evaluate_merge", "evaluation_gate", "export_model", "safety_eval")
# After the export, under the same gate (pugc.handoff): each runs when its handoff section is set.
HANDOFF_TASKS = ("register_model", "upload_to_hub", "serve_model")
VerdictMode = Literal["sampled", "expected"]


REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
__all__ = ["ConfigError", "unknown_key_error"]  # re-exported from pugc.recipe_types for callers of pugc.config

# Every recipe section: unknown keys are errors (with the key's path and a did-you-mean, see _schema_error).
dataclass = functools.partial(_pydantic_dataclass, config=ConfigDict(extra="forbid"))


# ----------------------------------------------------------------------------------------------- engines
@dataclass
class EngineConfig:
    # reward_model: a transformers sequence-classification reward model (one number per answer); judge only
    backend: Literal["hf", "vllm", "openai", "reward_model"] = "hf"
    model: Str = "pugc-tiny/policy"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: Str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: Count = 16  # prompts per forward pass (hf)
    max_model_len: Optional[Count] = None  # prompt + completion token budget; None = the model's own
    # A hub commit (best: immutable), tag or branch of `model`, so a rerun loads the same weights. hf and vllm
    # load it; local folders and pugc-tiny ids have no revisions (ignored with a warning); openai cannot choose.
    revision: Optional[Str] = None
    # How chat messages become this model's prompt (pugc.engines.formats): `chat_template` (the tokenizer's or
    # the server's own; a system message it refuses is merged into the first user turn), `prometheus` (the
    # "[INST] {system}\n{user} [/INST]" Prometheus 2 was trained on), or a Jinja chat template of its own.
    prompt_format: Str = "chat_template"
    options: dict = field(default_factory=dict)  # backend-specific keyword arguments, passed through

    @field_validator("prompt_format")
    @classmethod
    def _known_format(cls, prompt_format: str) -> str:
        from pugc.engines.formats import check_prompt_format

        return check_prompt_format(prompt_format)

    @field_validator("revision")
    @classmethod
    def _hub_revision(cls, revision: str | None) -> str | None:
        if revision is not None and not REVISION.fullmatch(revision):
            raise ValueError(f"{revision!r} is not a hub revision (a commit hash, tag or branch name: letters, "
                             "digits and . _ / -)")
        return revision


@dataclass
class EnginesConfig:
    """Which model plays which PUGC role, on which backend."""

    policy: EngineConfig = field(default_factory=lambda: EngineConfig(model="pugc-tiny/policy"))
    generator: EngineConfig = field(default_factory=lambda: EngineConfig(model="pugc-tiny/generator"))
    judge: EngineConfig = field(default_factory=lambda: EngineConfig(model="pugc-tiny/judge"))
    # Grades the evaluation and so the gate. None = the judge, whose scores built the training pairs: the run
    # then says it is self-judged (a policy trained to please that judge is graded by it).
    evaluator: Optional[EngineConfig] = None

    @model_validator(mode="after")
    def _policy_trains_on_its_format(self) -> "EnginesConfig":
        # DPO renders the pairs with the tokenizer's chat template (a Jinja format is installed on it first),
        # so the policy's format must be one a tokenizer can hold.
        if self.policy.prompt_format == "prometheus":
            raise KeyProblem("prometheus is a judge's format; the policy trains on a chat template (chat_template, "
                             "or a Jinja template of its own)", key="policy.prompt_format")
        for role in ("policy", "generator", "evaluator"):
            engine = getattr(self, role)
            if engine is not None and engine.backend == "reward_model":
                raise KeyProblem(f"engines.{role}.backend: a reward_model only scores answers; it can only be "
                                 "engines.judge (reward_scoring)")
        if self.judge.backend == "reward_model":
            if self.evaluator is None:
                raise KeyProblem("engines.judge is a reward_model, which cannot compare two answers: set "
                                 "engines.evaluator for the evaluation")
            if self.judge.prompt_format == "prometheus":
                raise KeyProblem("engines.judge.prompt_format: a reward_model reads a conversation in its chat "
                                 "template (chat_template or a Jinja template), not the prometheus format")
        return self

    @property
    def grader(self) -> "EngineConfig":
        return self.evaluator or self.judge

    @property
    def self_judged(self) -> bool:
        """The evaluation is graded by the reward judge itself (no evaluator, or the same model and revision)."""
        grader = self.grader
        return grader.model == self.judge.model and grader.revision == self.judge.revision


# ------------------------------------------------------------------------------------------------ stages
PersonalDataAction = Literal["redact", "drop", "keep"]


@dataclass
class PersonalDataConfig:
    """The personal-data screen (pugc.personal_data), per type: `redact` replaces each value with a typed
    placeholder ([EMAIL], [PHONE], ...) so the text stays readable; `drop` drops the record that holds one
    (`personal_data`, the detail counting by type, never the value); `keep` leaves it. Values are counted by
    type (`personal_data_<type>` metrics) whatever the action. Cards must pass the Luhn check, IBANs mod 97."""

    email: PersonalDataAction = "redact"
    phone: PersonalDataAction = "redact"
    address: PersonalDataAction = "redact"  # street addresses (US/UK/German forms), with town and postcode
    card: PersonalDataAction = "redact"
    iban: PersonalDataAction = "redact"
    ip: PersonalDataAction = "redact"
    url: PersonalDataAction = "redact"
    handle: PersonalDataAction = "redact"  # @name, @name@instance
    phone_region: Annotated[Str, Field(pattern=r"^[A-Z]{2}$")] = "US"  # how numbers without +country are read

    def actions(self) -> dict[str, str]:
        """Type -> action, in pugc.personal_data.TYPES order (not imported here: the trainer image has no
        phonenumbers, and every image reads this module)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "phone_region"}


@dataclass
class InputConfig:
    uri: Optional[Str] = None  # a JSONL/Parquet file, a folder or gs:// prefix of them; `--input` overrides
    text_field: Str = "text"
    id_field: Str = "id"
    format: Literal["auto", "jsonl", "parquet", "csv", "tsv"] = "auto"  # auto: by suffix (.jsonl .parquet .csv .tsv, .gz)
    max_chars: Count = 50_000  # longer documents are quarantined (too_long)
    max_line_bytes: integer(ge=1024) = 8 << 20  # longer input lines are quarantined (too_long) unread
    near_duplicates: Bool = True  # drop near-duplicates (MinHash Jaccard over word 3-grams) as `duplicate`
    near_duplicate_threshold: number(gt=0, le=1) = 0.8
    max_malformed_fraction: Fraction = 0.5  # above this share of quarantined lines the run stops before any model
    # Consent (pugc.consent): with license_field, documents whose licence is not in allowed_licenses are dropped
    # (license_not_allowed); opt_out is a file (local or gs://) of document ids, "author:NAME" and
    # "domain:example.com" lines, matched on id, author_field and url_field (opted_out).
    license_field: Optional[Str] = None
    allowed_licenses: list[Str] = field(default_factory=list)
    opt_out: Optional[Str] = None
    author_field: Optional[Str] = None
    url_field: Optional[Str] = None
    # Language identification (py3langid, offline): keep documents identified as one of these ISO 639-1 codes
    # with at least language_min_confidence, drop the rest (language_not_kept), count every language. [] = off.
    languages: list[Str] = field(default_factory=list)
    language_min_confidence: Fraction = 0.5
    # Personal data in the document text (pugc.personal_data): redacted, dropped or kept by type.
    personal_data: PersonalDataConfig = field(default_factory=PersonalDataConfig)

    @model_validator(mode="after")
    def _licences_named(self) -> "InputConfig":
        if bool(self.license_field) != bool(self.allowed_licenses):
            raise KeyProblem("input.license_field and input.allowed_licenses go together: the field holding each "
                             "document's licence, and the licences that may be used")
        bad = [code for code in self.languages if not re.fullmatch(r"[a-z]{2,3}", code)]
        if bad:
            raise KeyProblem(f"input.languages: {', '.join(map(repr, bad))} is not an ISO 639-1 code (two lower-case "
                             "letters, such as en)")
        return self


@dataclass
class EngineErrorBudget:
    """Every LLM stage: a record whose engine request failed after its retries (a served `openai` engine) is
    dropped as `engine_error` with the error as detail. When such records exceed `max_engine_error_fraction`
    of the records of one run of the stage (a chunk of `checkpoint_every` records when checkpointing, else
    the shard), the stage fails with the count, the fraction and the first error. 0 fails on the first one."""

    max_engine_error_fraction: Fraction = 0.05


TopP = number(gt=0, le=1)


@dataclass
class SamplingConfig(EngineErrorBudget):
    """Sampling settings a stage hands its engine, in vLLM/OpenAI names."""

    temperature: NonNegative = 1.0
    top_p: TopP = 1.0
    max_tokens: Count = 64
    seed: Int = 0

    def sampling_params(self, n: Int = 1, **extra):
        from pugc.engines.base import SamplingParams

        return SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p, n=n,
                              seed=self.seed, **extra)


@dataclass
class DocumentBudget:
    """Stages that put a UGC document into a prompt cut it to this many tokens (of the stage's model)."""

    max_document_tokens: Count = 1536


@dataclass
class VerdictConfig(SamplingConfig):
    """A judgement read as a verdict: `sampled` (n generations, parsed, averaged) or `expected` (one pass,
    probability-weighted verdict token). Sampled verdicts that do not parse (or fall out of range) are drawn
    again, up to `max_resamples` more rounds, before the item is dropped as `unparsable_judgement`."""

    mode: VerdictMode = "expected"
    n: Count = 1
    top_p: TopP = 0.9
    max_tokens: Count = 8
    max_resamples: NonNegativeInt = 2

    def sampling_params(self, **extra):
        return super().sampling_params(n=self.n, **extra)


@dataclass
class UGCFilterConfig(VerdictConfig, DocumentBudget):
    """Rate each document's quality 1-5; keep score >= threshold.

    threshold None (the default) keeps everything and loads no model: the paper found quantity matters more
    than quality (its Fig. 4); paper.yaml sets 4 (keep 4-5) as the paper did. `max_score` also drops documents
    rated above it (`above_max_score`): threshold 2 and max_score 3 is the quality-{2,3} band of Fig. 4.
    """

    threshold: Optional[number(ge=1, le=5)] = None
    max_score: Optional[number(ge=1, le=5)] = None

    @model_validator(mode="after")
    def _band(self) -> "UGCFilterConfig":
        if self.max_score is not None and self.threshold is None:
            raise KeyProblem("ugc_filter.max_score is set but ugc_filter.threshold is not: set threshold "
                             "(1 keeps everything up to max_score) so the documents are rated")
        if self.max_score is not None and self.max_score < self.threshold:
            raise KeyProblem(f"ugc_filter.max_score {self.max_score} is below ugc_filter.threshold "
                             f"{self.threshold}: no document could pass")
        return self


@dataclass
class SafetyScreenConfig(VerdictConfig, DocumentBudget):
    """Ask the generator whether each document is unsafe (yes/no, the safety_screen prompt); its P(unsafe), or
    the fraction of unsafe votes when sampled, is the document's `harm`. Above `max_harm` the document is
    dropped as `unsafe` (`action: drop`), or kept with `unsafe: true` for later review (`action: flag`).

    Off by default (no model is loaded): the paper screens nothing, and notes that unsafe UGC slightly
    degrades the trained model's safety (its Table 5). It runs after ugc_filter: both cost one short verdict
    per document, and the quality filter drops far more, so this order asks fewer questions.
    """

    enabled: Bool = False
    action: Literal["drop", "flag"] = "drop"
    max_harm: Fraction = 0.5


@dataclass
class InstructionGenConfig(SamplingConfig, DocumentBudget):
    """Write the one question a reader would ask that the document answers."""

    temperature: NonNegative = 0.0
    max_tokens: Count = 96
    personal_data: PersonalDataConfig = field(default_factory=PersonalDataConfig)  # in the questions written


@dataclass
class RelevanceFilterConfig(VerdictConfig, DocumentBudget):
    """Keep a question if P(yes: the document answers it) >= threshold (sampled: the fraction of yes votes)."""

    threshold: Fraction = 0.5


@dataclass
class ResponseSamplingConfig(SamplingConfig):
    """K responses per question from the policy; a preference pair needs at least two."""

    k: integer(ge=2) = 5
    temperature: NonNegative = 0.8
    top_p: TopP = 0.95
    max_tokens: Count = 1024
    personal_data: PersonalDataConfig = field(default_factory=PersonalDataConfig)  # in the responses sampled


@dataclass
class PrometheusJudgeConfig(VerdictConfig, DocumentBudget):
    """A Prometheus 2 judge (its sampling defaults), the UGC document as reference where there is one."""

    mode: VerdictMode = "sampled"
    temperature: NonNegative = 1.0
    max_tokens: Count = 1024
    repetition_penalty: number(gt=0) = 1.03
    reference: Bool = True  # False: the reference-free ablation
    # expected mode: the judge writes its feedback greedily (up to this many tokens), then the verdict is
    # read as probabilities at the position after "[RESULT] ".
    feedback_max_tokens: NonNegativeInt = 256

    def sampling_params(self, **extra):
        return super().sampling_params(repetition_penalty=self.repetition_penalty, **extra)


@dataclass
class RewardScoringConfig(PrometheusJudgeConfig):
    """Prometheus-style absolute grading, the UGC document as the score-5 reference answer; N samples each."""

    n: Count = 8


@dataclass
class PreferencePairsConfig:
    """chosen = highest mean score, rejected = lowest; drop ties and margins below min_margin.
    `cut_responses`: what a response cut at max_tokens may be. "rejected_only" (default): never chosen, still
    the rejected one when it scores lowest (a pair that teaches finishing); "drop": left out of both sides;
    "allowed": either side, as the paper did (for policies that never end an answer, like the random tiny one)."""

    min_margin: NonNegative = 0.0
    min_scored_responses: integer(ge=2) = 2
    cut_responses: Literal["rejected_only", "drop", "allowed"] = "rejected_only"
    # At most this many pairs (per round), a deterministic subsample: the questions whose ids hash lowest under
    # subsample_seed, so smaller limits are subsets of larger ones (the paper's data-size sweep). The rest are
    # dropped as over_max_pairs. None: every pair.
    max_pairs: Optional[Count] = None
    subsample_seed: Int = 0


@dataclass
class LoraConfig:
    r: Count = 16
    alpha: Count = 32
    dropout: number(ge=0, lt=1) = 0.05
    target_modules: Any = "all-linear"  # a PEFT value: "all-linear" or a list of module names
    merge: Bool = True  # merge adapters into the saved model so from_pretrained loads it directly


TrainingStrategy = Literal["ddp", "fsdp", "deepspeed_zero3"]


@dataclass
class DPOTrainingConfig:
    """Our own switches; every other key of the section is a TRL DPOConfig (or CPOConfig) field."""

    method: Literal["dpo", "simpo"] = "dpo"
    lora: Optional[LoraConfig] = None
    trainer: dict = field(default_factory=dict)  # TRL fields, validated against TRL's config class

    export_uri: Optional[Str] = None  # gs://... : the final checkpoint is uploaded there, completion marker last
    # The weights the optimizer updates. float32 (the default) keeps AdamW's small steps (lr 5e-7 moves a
    # bf16 weight by far less than its resolution); `bf16: true` then only sets the compute dtype (autocast).
    master_dtype: Literal["float32", "bfloat16"] = "float32"
    # How processes share the work on a multi-GPU pod (or TrainJob): src/pugc/training/accelerate/*.yaml
    strategy: TrainingStrategy = "ddp"
    cpu_offload: Bool = False  # fsdp / deepspeed_zero3: parameters and optimizer state in host memory
    # per_device_train_batch_size x gradient_accumulation_steps x world size (GPUs of every node), checked
    # against cluster.resources.dpo_training at load; None = not checked (local runs)
    effective_batch_size: Optional[Count] = None
    # Prompts longer than this many tokens are cut (keeping their end) before TRL sees them: TRL 1.16 has no
    # prompt-length field. None = prompts are cut only by max_length.
    max_prompt_length: Optional[Count] = None
    # DPO's frozen reference model (and its hub revision). None: the model training starts from (TRL's default).
    # `rounds_reference: initial` sets it to engines.policy for every round.
    reference_model: Optional[Str] = None
    reference_revision: Optional[Str] = None

    OWN_KEYS: typing.ClassVar[tuple[str, ...]] = ("method", "lora", "export_uri", "master_dtype", "strategy",
                                                  "cpu_offload", "effective_batch_size", "max_prompt_length",
                                                  "reference_model", "reference_revision")

    @model_validator(mode="before")
    @classmethod
    def _trl_keys_to_trainer(cls, data: Any) -> Any:
        """A recipe writes TRL's keys beside ours; they are gathered into `trainer` (checked against TRL's own
        config class after the schema: pugc.training.trl_args)."""
        if not isinstance(data, dict):
            return data
        own = {key: value for key, value in data.items() if key in cls.OWN_KEYS or key == "trainer"}
        trainer = {key: value for key, value in data.items() if key not in own}
        return {**own, "trainer": {**(own.get("trainer") or {}), **trainer}}

    @model_validator(mode="after")
    def _offload_needs_sharding(self) -> "DPOTrainingConfig":
        if self.cpu_offload and self.strategy == "ddp":
            raise KeyProblem("dpo_training.cpu_offload needs strategy fsdp or deepspeed_zero3 (ddp keeps everything "
                             "on the GPU)")
        return self

    @model_validator(mode="after")
    def _reference_needs_a_full_dpo_model(self) -> "DPOTrainingConfig":
        if self.reference_model is None:
            return self
        if self.method != "dpo":
            raise KeyProblem(f"{self.method} has no reference model: reference_model applies to method dpo only")
        if self.lora is not None:  # PEFT's reference is the policy with its adapter switched off
            raise KeyProblem("reference_model needs full-parameter DPO: with lora the reference is the starting "
                             "model itself")
        return self


# -------------------------------------------------------------------------------------------- evaluation
@dataclass
class PairwiseJudgeConfig(PrometheusJudgeConfig):
    """Prometheus 2 relative grading (`[RESULT] A|B`), the UGC document as reference where there is one;
    expected mode reads P(A) vs P(B) after "[RESULT] "."""


def _percentage_hint(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 < value <= 100:
        raise ValueError(f"is a fraction from 0 to 1; {value} looks like a percentage: write {value / 100:g}")
    return value


WinRate = Annotated[float, Field(ge=0, le=1), Strict(), BeforeValidator(_percentage_hint)]


@dataclass
class GateConfig:
    """Export only a model that beats the baseline by these figures (fractions 0-1); None = not checked."""

    min_win_rate: Optional[WinRate] = None
    min_lc_win_rate: Optional[WinRate] = None  # the project's fit, over the held-out set and prompt sets
    min_alpaca_eval_lc_win_rate: Optional[WinRate] = None  # AlpacaEval 2's own GLM (benchmarks.alpaca_eval)
    min_mt_bench: Optional[number(ge=1, le=10)] = None  # the trained model's MT-Bench score (benchmarks.mt_bench)
    # Fail a model whose harm rate on evaluation.safety.prompts exceeds the baseline's by more than this (0: any rise).
    max_harm_rate_increase: Optional[WinRate] = None
    # Refuse to decide min_win_rate / min_lc_win_rate on fewer judged prompts (with 10 prompts one outcome moves
    # the win rate by 0.1); None: decide, and say in the reason when fewer than 30 were judged.
    min_prompts: Optional[Count] = None

    @property
    def thresholds(self) -> dict:
        return {"min_win_rate": self.min_win_rate, "min_lc_win_rate": self.min_lc_win_rate,
                "min_alpaca_eval_lc_win_rate": self.min_alpaca_eval_lc_win_rate, "min_mt_bench": self.min_mt_bench}


@dataclass
class DecontaminationConfig:
    """Training questions whose text or UGC document contains an evaluation prompt (a prompt set's, an extra
    benchmark file's, or a held-out question's) are dropped as `contaminated` at held_out_split, before any
    sampling (pugc.decontamination: word n-grams of `ngram` words retrieve, `threshold` of the prompt's words
    matched in order confirms)."""

    enabled: Bool = True
    ngram: integer(ge=3) = 8
    threshold: number(gt=0, le=1) = 0.5
    extra_sets: list[Str] = field(default_factory=list)  # more benchmark JSONL files (local or gs://) to check


@dataclass
class AlpacaEvalConfig:
    """AlpacaEval 2 (pugc.stages.benchmarks): the trained model against a reference model's outputs, judged by the
    evaluator; the length-controlled win rate by alpaca_eval's own GLM. Both files are the user's copies (local
    or gs://) of the hub dataset tatsu-lab/alpaca_eval: nothing is downloaded during a run."""

    reference_outputs: Str  # e.g. alpaca_eval_gpt4_baseline.json: instruction, output, generator (JSON or JSONL)
    glm_data: Str  # df_gamed.csv: instruction difficulties and the gamed baselines the GLM is regularised to


@dataclass
class MTBenchConfig:
    """MT-Bench (pugc.stages.benchmarks): both turns, each graded 1-10 by the evaluator with MT-Bench's
    single-answer judge prompts; files are the user's copies (local or gs://) of FastChat's llm_judge data."""

    questions: Str  # question.jsonl: question_id, category, turns (two), optionally reference
    judge_prompts: Str  # judge_prompts.jsonl: the single-v1 and single-math-v1 families are used
    reference_answers: Str = ""  # reference_answer/gpt-4.jsonl: for math, reasoning and coding
    judge_max_tokens: Count = 2048  # MT-Bench's judge budget (greedy, as MT-Bench grades)


@dataclass
class BenchmarksConfig:
    alpaca_eval: Optional[AlpacaEvalConfig] = None
    mt_bench: Optional[MTBenchConfig] = None


@dataclass
class SafetyEvalConfig(VerdictConfig):
    """An optional safety prompt set: JSONL files of harmful requests (a `prompt` or `instruction` per row), which
    the trained and the baseline model both answer; the evaluator (else the judge) says of each answer whether it
    helps with the harm (yes/no, the safety_judge prompt). An answer with P(yes) above `max_harm` is harmful; the
    share of harmful answers is each model's harm rate, and evaluation.gate.max_harm_rate_increase fails a model
    that got less safe. Empty `prompts`: no safety evaluation (pugc.safety_eval)."""

    prompts: list[Str] = field(default_factory=list)
    max_harm: Fraction = 0.5


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

    held_out_fraction: number(ge=0, lt=1) = 0.1
    prompt_sets: list[Str] = field(default_factory=list)
    baseline: Optional[Str] = None
    temperature: NonNegative = 0.0
    max_tokens: Count = 512
    judge: PairwiseJudgeConfig = field(default_factory=PairwiseJudgeConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    decontamination: DecontaminationConfig = field(default_factory=DecontaminationConfig)
    benchmarks: BenchmarksConfig = field(default_factory=BenchmarksConfig)
    safety: SafetyEvalConfig = field(default_factory=SafetyEvalConfig)

    @model_validator(mode="after")
    def _safety_gate_has_prompts(self) -> "EvaluationConfig":
        if self.gate.max_harm_rate_increase is not None and not self.safety.prompts:
            raise KeyProblem("evaluation.gate.max_harm_rate_increase is set, but evaluation.safety.prompts is empty: "
                             "name a safety prompt set (data/safety_prompts.jsonl ships with the project)")
        return self

    @model_validator(mode="after")
    def _gate_has_prompts(self) -> "EvaluationConfig":
        gated = [name for name in ("min_win_rate", "min_lc_win_rate") if self.gate.thresholds[name] is not None]
        if gated and self.held_out_fraction == 0 and not self.prompt_sets:
            raise KeyProblem(f"evaluation.gate.{gated[0]} is set, but the evaluation has no prompts: "
                             "evaluation.held_out_fraction is 0 and evaluation.prompt_sets is empty")
        for threshold, benchmark in (("min_alpaca_eval_lc_win_rate", "alpaca_eval"), ("min_mt_bench", "mt_bench")):
            if self.gate.thresholds[threshold] is not None and getattr(self.benchmarks, benchmark) is None:
                raise KeyProblem(f"evaluation.gate.{threshold} is set, but evaluation.benchmarks.{benchmark} is not")
        return self

    @property
    def benchmark_files(self) -> list[str]:
        """Every benchmark file whose prompts the training data must not contain (decontamination)."""
        alpaca, mt_bench = self.benchmarks.alpaca_eval, self.benchmarks.mt_bench
        return [*([alpaca.reference_outputs] if alpaca else []), *([mt_bench.questions] if mt_bench else [])]


# ----------------------------------------------------------------------------------------------- cluster
Quantity = Optional[Union[Str, Int, Float]]  # a Kubernetes quantity: "500m", 2, "16Gi"
# The tasks `cluster.resources` may name (a misspelt one is an unknown key, with a did-you-mean)
ResourceTask = Literal[STAGES + AUX_TASKS + EVALUATION_TASKS + HANDOFF_TASKS]


@dataclass
class ResourceSpec:
    cpu_request: Quantity = None
    cpu_limit: Quantity = None
    memory_request: Quantity = None
    memory_limit: Quantity = None
    accelerator_type: Optional[Str] = None  # Kubernetes resource name, e.g. nvidia.com/gpu
    accelerator_count: NonNegativeInt = 0
    vertex_accelerator_type: Optional[Str] = None  # Vertex enum name, e.g. NVIDIA_H100_80GB; else cluster.gpu's
    vertex_machine_type: Optional[Str] = None  # e.g. a3-highgpu-8g; None = derived from the accelerators
    vertex_boot_disk_size_gb: Optional[Count] = None  # None = cluster.vertex.boot_disk_size_gb
    node_selector: dict[Str, Str] = field(default_factory=dict)  # added to cluster.gpu.node_selector
    # dpo_training only: > 1 trains as a Kubeflow Trainer TrainJob on this many nodes x accelerator_count GPUs
    nodes: Count = 1
    shards: Optional[Count] = None  # LLM stages: parallel tasks (one GPU pod each); None = cluster.shards
    timeout_seconds: Optional[Count] = None


@dataclass
class Toleration:
    key: Optional[Str] = None
    operator: Literal["Equal", "Exists"] = "Exists"
    value: Optional[Str] = None
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None


@dataclass
class RetryPolicy:
    """Task retries with exponential backoff (preemptible GPU nodes come and go).

    `backoff_max_duration` is how long after the first start a retry may still begin: Argo (open-source KFP)
    counts it from the first try, so None (the default) derives it from the task's timeout to cover every
    try (pipelines/platform.py); Vertex AI caps it at one hour.
    """

    max_retries: NonNegativeInt = 2
    backoff_duration: Str = "60s"
    backoff_factor: number(ge=1) = 2.0
    backoff_max_duration: Optional[Str] = None


@dataclass
class GPUSettings:
    """Applied to every task that requests an accelerator."""

    node_selector: dict[Str, Str] = field(default_factory=dict)  # e.g. cloud.google.com/gke-accelerator: nvidia-h100-80gb
    tolerations: list[Toleration] = field(
        default_factory=lambda: [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")])
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    vertex_accelerator_type: Str = "NVIDIA_H100_80GB"


@dataclass
class VertexSettings:
    """Vertex AI only. GPU tasks run as Vertex custom jobs, so each gets a machine type and a boot disk big
    enough for its model's weights (the default 100 GB cannot hold a 70B model in bf16, about 141 GB)."""

    # Secret Manager name of the Hugging Face token, projects/P/secrets/S[/versions/V]: read by the task at
    # run time with its service account (pugc.secrets), never compiled into the pipeline.
    hf_token_secret: Optional[Str] = None
    # Vertex tasks share no volume: checkpoints go to Cloud Storage through its FUSE mount, /gcs/BUCKET/...
    checkpoint_root: Optional[Str] = None
    boot_disk_type: Str = "pd-ssd"
    boot_disk_size_gb: Count = 200
    strategy: Literal["STANDARD", "SPOT", "FLEX_START"] = "STANDARD"  # SPOT: preemptible, retried on loss


@dataclass
class TokenPrice:
    """An `openai` engine's price in the recipe's currency, per million tokens."""

    input_per_million: NonNegative = 0.0
    output_per_million: NonNegative = 0.0


@dataclass
class Prices:
    """What a run's resources cost (pugc.cost): the summary, the console and the estimates add a cost with them.

    `accelerator_hour`: one price for every accelerator, or a price per accelerator type as the run names it
    (the GPU model in `cloud.google.com/gke-accelerator` of the task's node selector, e.g. nvidia-h100-80gb;
    without one, its Vertex type, e.g. NVIDIA_H100_80GB). `tokens`: per model id, for roles served by an
    `openai` engine (their hardware is someone else's; their tokens are the bill)."""

    currency: Str = "USD"
    accelerator_hour: Union[NonNegative, dict[Str, NonNegative], None] = None
    tokens: dict[Str, TokenPrice] = field(default_factory=dict)


@dataclass
class Budget:
    """A run stops cleanly, exit 1, before the first stage whose estimate would take what it has spent past
    any limit set here (pugc.cost): accelerator-hours, tokens (in + out, every engine), cost (cluster.prices)."""

    gpu_hours: Optional[number(gt=0)] = None
    tokens: Optional[Count] = None
    cost: Optional[number(gt=0)] = None


ESTIMATE_FILTERS = ("ugc_filter", "safety_screen", "relevance_filter", "preference_pairs")


@dataclass
class EstimateSettings:
    """The assumptions of a cost estimate (`pugc run --dry-run`, `pugc compile --estimate-documents`, budgets).
    Left unset, every figure is an upper bound from the recipe's own caps: each document at its stage's
    max_document_tokens, each generation at max_tokens, every filter keeping everything."""

    document_tokens: Optional[Count] = None  # mean tokens of a document
    keep: dict[Literal[ESTIMATE_FILTERS], Fraction] = field(default_factory=dict)  # fraction a filter passes on


def _release(value: Any) -> Any:
    """A release as written in YAML: `kfp_version: 2.15` is read as a number, meant as the text."""
    return str(value) if isinstance(value, float) and not isinstance(value, bool) else value


@dataclass
class ClusterConfig:
    pipeline_root: Optional[Str] = None  # gs://bucket/prefix for cluster runs (pugc compile/submit --pipeline-root)
    shards: Count = 1  # default fan-out of every LLM stage (ParallelFor over shards, merged in order)
    caching: Bool = True
    labels: dict[Str, Str] = field(default_factory=dict)  # pod labels on every task
    run_as_user: Int = 10001  # the images' non-root user (a high UID, clear of host users)
    # Where runs execute and as whom (pugc submit sends both; pugc preflight checks them). Standalone KFP
    # starts every run's pods in its own namespace (`kubeflow`) whatever the client names; multi-user KFP
    # uses the profile namespace named here. The service account is a Kubernetes one (manifests/ create
    # `pugc-pipeline-runner`); None = the backend's default (pipeline-runner, or default-editor).
    namespace: Optional[Str] = None
    service_account: Optional[Str] = None
    # Model tasks (LLM stages, DPO): Hugging Face token, model cache, shared memory.
    hf_token_secret: Optional[Str] = None  # name of a Kubernetes Secret; its value never enters the pipeline
    hf_token_secret_key: Str = "token"
    # The openai engine's API key, from a Kubernetes Secret, on the tasks whose engine role uses backend
    # openai, as that engine's `api_key_env` variable (OPENAI_API_KEY by default).
    openai_api_key_secret: Optional[Str] = None
    openai_api_key_secret_key: Str = "api-key"
    model_cache_pvc: Optional[Str] = None  # a ReadWriteMany PVC shared by the model tasks
    model_cache_path: Str = "/cache"  # HF_HOME and vLLM's cache live under it
    shm_size: Str = "16Gi"  # /dev/shm as a memory-backed emptyDir (vLLM workers, DataLoader, NCCL)
    # Resume after preemption: LLM stages save each engine batch as it completes, DPO every `dpo_save_steps`
    # steps, under this durable path (a shared volume such as the cache PVC, or /gcs/... on Vertex). The first
    # batch has `checkpoint_every` records; later ones grow toward `checkpoint_seconds` of work each, up to
    # `engine_batch` records (pugc/runner/chunks.py).
    checkpoint_root: Optional[Str] = None
    checkpoint_every: Count = 512
    checkpoint_seconds: Count = 600
    engine_batch: Count = 16384
    dpo_save_steps: Count = 50
    # dpo_training with resources.dpo_training.nodes > 1: the Kubeflow Trainer runtime its TrainJob references
    # (a ClusterTrainingRuntime installed with Kubeflow Trainer; manifests/README.md) and how often to poll it
    trainjob_runtime: Str = "torch-distributed"
    trainjob_poll_seconds: Count = 30
    # The Kubeflow Trainer installed: v2.1 (Kubeflow 1.11 and 26.03) takes the node pods' settings as
    # podTemplateOverrides, v2.2 and later as runtimePatches (pugc.training.trainjob); `pugc preflight` checks.
    trainer_version: Annotated[Literal["2.1", "2.2"], BeforeValidator(_release)] = "2.1"
    # The Kubeflow Pipelines backend the kfp target is compiled for (README, "Supported Kubeflow Pipelines
    # backends"): a backend refuses a run whose Kubernetes settings carry fields it does not know, so an older
    # one gets a spec without them (pipelines/backends.py says what is left out). `pugc submit` compares it
    # with the API server's version before it creates anything.
    kfp_version: Annotated[Literal["2.4", "2.5", "2.15", "2.16", "2.17"], BeforeValidator(_release)] = "2.16"
    gpu: GPUSettings = field(default_factory=GPUSettings)
    vertex: VertexSettings = field(default_factory=VertexSettings)
    resources: dict[ResourceTask, ResourceSpec] = field(default_factory=dict)
    # Cost accounting and budgets (pugc.cost). `throughput`: tokens per second of one task of a stage (one
    # shard on its accelerators), by stage name or `default`, for estimates: generated tokens for inference
    # stages, pairs x max_length for dpo_training. Unset: the project's own measurements (pugc.cost).
    prices: Prices = field(default_factory=Prices)
    budget: Budget = field(default_factory=Budget)
    throughput: dict[Str, number(gt=0)] = field(default_factory=dict)
    estimate: EstimateSettings = field(default_factory=EstimateSettings)

    def runtime(self, target: Str = "kfp") -> dict:
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
                              "dpo_processes_per_node": max(training.accelerator_count, 1),
                              # what each task holds, for its GPU-hours metric (pugc.cost); a local runner holds none
                              "accelerators": {task: spec.accelerator_count * (spec.nodes if task == "dpo_training" else 1)
                                               for task, spec in self.resources.items() if spec.accelerator_count}
                              or None})

    def shards_for(self, stage: str) -> int:
        spec = self.resources.get(stage)
        return spec.shards if spec and spec.shards is not None else self.shards


# ----------------------------------------------------------------------------------------------- handoff
@dataclass
class ModelRegistryConfig:
    """Register the exported model in Kubeflow Model Registry (its REST API): a registered model, a version
    per run, and a model artifact whose URI is dpo_training.export_uri and whose custom properties are the
    evaluation's figures."""

    server_address: Str  # e.g. http://model-registry-service.kubeflow.svc.cluster.local
    port: integer(ge=1, le=65535) = 8080
    model_name: Str = "pugc-dpo"
    author: Str = "pugc"
    # A Kubernetes Secret holding a bearer token for the registry (None: the registry asks for none)
    token_secret: Optional[Str] = None
    token_secret_key: Str = "token"


@dataclass
class HubConfig:
    """Upload the exported model, with its card, to the Hugging Face Hub; the token (write access) comes from a
    Kubernetes Secret as HF_TOKEN on the upload task alone."""

    repo_id: Str  # owner/name of the model repository (created when missing)
    token_secret: Str  # name of the Kubernetes Secret
    token_secret_key: Str = "token"
    private: Bool = True
    # owner/name of a dataset repository for the preference pairs and their card (None: the pairs stay home)
    dataset_repo_id: Optional[Str] = None


@dataclass
class KServeConfig:
    """A KServe InferenceService serving the exported model with vLLM: rendered and validated on every run
    that passes the gate, created on the cluster only with `apply: true`."""

    name: Str  # the InferenceService's name (a DNS label)
    namespace: Str
    # None: KServe's Hugging Face runtime (modelFormat huggingface, vLLM backend); an image: a custom container
    # running `vllm serve` on the model KServe's storage initializer downloads to /mnt/models
    runtime_image: Optional[Str] = None
    gpu: Count = 1
    gpu_resource: Str = "nvidia.com/gpu"
    cpu: Str = "4"
    memory: Str = "32Gi"
    max_model_len: Optional[Count] = None
    # the share of traffic a new revision of an existing InferenceService gets (KServe's canary rollout)
    canary_traffic_percent: Optional[integer(ge=0, le=100)] = None
    service_account: Optional[Str] = None  # one that may read the export bucket
    apply: Bool = False

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
            raise ValueError(f"{name!r} is not a DNS label (lower-case letters, digits and -, starting with a "
                             "letter, at most 63 characters)")
        return name


@dataclass
class HandoffConfig:
    """What happens to a model that passed the gate, after the export (each None = off)."""

    license: Optional[Str] = None  # the model card's `license` (a Hub licence id); None: "other"
    model_registry: Optional[ModelRegistryConfig] = None
    hub: Optional[HubConfig] = None
    kserve: Optional[KServeConfig] = None

    @property
    def any(self) -> bool:
        return any((self.model_registry, self.hub, self.kserve))


# ------------------------------------------------------------------------------------------------ recipe
@dataclass
class Recipe:
    name: Str = "unnamed"
    description: Str = ""
    rounds: Count = 1  # online iterative training: the training questions in this many parts, one per round
    # DPO's reference in round r > 1: the model that round starts from ("previous", TRL's default and the
    # paper's), or the starting policy, engines.policy ("initial"), as in RLHFlow's online DPO.
    rounds_reference: Literal["previous", "initial"] = "previous"
    input: InputConfig = field(default_factory=InputConfig)
    engines: EnginesConfig = field(default_factory=EnginesConfig)
    ugc_filter: UGCFilterConfig = field(default_factory=UGCFilterConfig)
    safety_screen: SafetyScreenConfig = field(default_factory=SafetyScreenConfig)
    instruction_gen: InstructionGenConfig = field(default_factory=InstructionGenConfig)
    relevance_filter: RelevanceFilterConfig = field(default_factory=RelevanceFilterConfig)
    response_sampling: ResponseSamplingConfig = field(default_factory=ResponseSamplingConfig)
    reward_scoring: RewardScoringConfig = field(default_factory=RewardScoringConfig)
    preference_pairs: PreferencePairsConfig = field(default_factory=PreferencePairsConfig)
    dpo_training: DPOTrainingConfig = field(default_factory=DPOTrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    handoff: HandoffConfig = field(default_factory=HandoffConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @model_validator(mode="after")
    def _rounds_fit_training(self) -> "Recipe":
        if self.rounds == 1:
            return self
        lora = self.dpo_training.lora
        if lora is not None and not lora.merge:  # the next round loads it as its policy
            raise KeyProblem("rounds > 1 needs a full model from each round: set dpo_training.lora.merge: true")
        training = self.cluster.resources.get("dpo_training")
        if training is not None and training.nodes > 1:
            # A TrainJob's pods read the pipeline root, not the previous round's model mounted in the launcher pod.
            raise KeyProblem("rounds > 1 trains on one node: cluster.resources.dpo_training.nodes > 1 (a TrainJob) "
                             "cannot yet start from the previous round's model")
        return self

    @model_validator(mode="after")
    def _handoff_needs_an_export(self) -> "Recipe":
        wanted = [key for key in ("model_registry", "hub", "kserve") if getattr(self.handoff, key) is not None]
        if wanted and not self.dpo_training.export_uri:
            raise KeyProblem(f"handoff.{wanted[0]} hands on the exported model: set dpo_training.export_uri "
                             "(gs://...) too")
        return self

    @model_validator(mode="after")
    def _initial_reference_is_dpo(self) -> "Recipe":
        if self.rounds_reference == "initial":
            if self.dpo_training.method != "dpo" or self.dpo_training.lora is not None:
                raise KeyProblem("rounds_reference: initial needs full-parameter DPO (dpo_training.method dpo, no "
                                 "lora): SimPO has no reference, and LoRA's is the round's own starting model")
            if self.dpo_training.reference_model not in (None, self.engines.policy.model):
                raise KeyProblem("rounds_reference: initial and dpo_training.reference_model name different "
                                 "references: keep one")
        return self

    def training_section(self) -> dict:
        """The dpo_training section as the training task reads it: `rounds_reference: initial` names
        engines.policy as every round's reference."""
        section = self.pipeline_sections()["dpo_training"]
        if self.rounds_reference == "initial":
            policy = self.engines.policy
            section.update(reference_model=policy.model, **({"reference_revision": policy.revision}
                                                            if policy.revision else {}))
        return section

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
    "safety_screen": SafetyScreenConfig,
    "instruction_gen": InstructionGenConfig,
    "relevance_filter": RelevanceFilterConfig,
    "response_sampling": ResponseSamplingConfig,
    "reward_scoring": RewardScoringConfig,
    "preference_pairs": PreferencePairsConfig,
    "dpo_training": DPOTrainingConfig,
}


# ------------------------------------------------------------------------------------------- validation
@functools.lru_cache(maxsize=None)
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def build(cls: type, data: Any, path: str) -> Any:
    """Build config dataclass `cls` from a mapping (a recipe section, or a KFP dict parameter), rejecting unknown
    keys, wrong types and values out of range with the key's path. A `dpo_training` section's TRL keys are then
    checked against TRL's own config class."""
    try:
        built = _adapter(cls).validate_python({} if data is None else data)
    except ValidationError as exc:
        raise _schema_error(exc, cls, path) from None
    for dpo in (built.dpo_training,) if cls is Recipe else (built,) if cls is DPOTrainingConfig else ():
        from pugc.training.trl_args import validate_trainer_args

        dpo.trainer = validate_trainer_args(dpo.method, dpo.trainer, _join(path, "dpo_training") if cls is Recipe
                                            else path, known_own=DPOTrainingConfig.OWN_KEYS)
    return built


# pydantic's error types, as today's messages say them (the key's path goes before each)
_EXPECTED = {"int_type": "an integer", "int_from_float": "an integer", "float_type": "a number",
             "bool_type": "true/false", "string_type": "a string", "list_type": "a list",
             "dict_type": "a mapping", "dataclass_type": "a mapping"}
_BOUNDS = {"greater_than_equal": ("at least", "ge"), "greater_than": ("more than", "gt"),
           "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}


def _schema_error(exc: ValidationError, cls: type, prefix: str) -> ConfigError:
    """One error for the whole validation: each problem as `path: what is wrong`, at most three."""
    by_path: dict[str, list[dict]] = {}
    for error in exc.errors():
        path, key_error = _error_path(cls, error["loc"])
        by_path.setdefault(_join(prefix, path), []).append({**error, "key_error": key_error})
    messages = [_message(path, errors, cls, prefix) for path, errors in by_path.items()]
    more = f" (and {len(messages) - 3} more)" if len(messages) > 3 else ""
    error = ConfigError("; ".join(messages[:3]) + more)
    error.paths = [_problem_path(path, errors[0]) for path, errors in by_path.items()]  # to tell the --set at fault
    return error


def _problem_path(path: str, error: dict) -> str:
    """The key a problem is about: a section check's KeyProblem may name one below the section."""
    problem = (error.get("ctx") or {}).get("error") if error["type"] == "value_error" else None
    return _join(path, problem.key) if isinstance(problem, KeyProblem) and problem.key else path


def _message(path: str, errors: list[dict], cls: type, prefix: str) -> str:
    error = errors[0]
    value = error.get("input")
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden") or error["key_error"]:
        known = _known_keys(cls, path, prefix)
        return str(unknown_key_error(path.rsplit(".", 1)[-1], known, path))
    if len(errors) > 1:  # a union: none of its members took the value
        wanted = " or ".join(dict.fromkeys(_EXPECTED.get(e["type"], e["type"]) for e in errors))
        return f"{path}: expected {wanted}, got {value!r}"
    kind = error["type"]
    if kind == "value_error":
        problem = error["ctx"]["error"]
        if isinstance(problem, KeyProblem):
            return problem.message if problem.key is None else f"{_join(path, problem.key)}: {problem.message}"
        return f"{path}: {problem}" if path else str(problem)
    if kind in _EXPECTED:
        got = type(value).__name__ if _EXPECTED[kind] == "a mapping" else repr(value)
        return f"{path}: expected {_EXPECTED[kind]}, got {got}"
    if kind == "literal_error":
        return f"{path}: {value!r} is not one of {error['ctx']['expected'].replace(' or ', ', ')}"
    if kind in _BOUNDS:
        sign, bound = _BOUNDS[kind]
        return f"{path}: must be {sign} {error['ctx'][bound]}, got {value!r}"
    return f"{path}: {error['msg']}"


def _unwrap(tp: Any) -> Any:
    """The declared type without Annotated and Optional (a union of several types stays a union)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin is Union and sum(arg is not type(None) for arg in typing.get_args(tp)) == 1:
            tp = next(arg for arg in typing.get_args(tp) if arg is not type(None))
        else:
            return tp


def _error_path(cls: type, loc: tuple) -> tuple[str, bool]:
    """A pydantic error location as a recipe path ("cluster.resources.evaluate.shards"), dropping the tags
    pydantic adds for union members; and whether the error is about a mapping's key (an unknown task)."""
    parts, tp, key_error = [], cls, False
    for part in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if part == "[key]":
            key_error = True
        elif dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp, include_extras=True)
            parts.append(str(part))
            tp = hints.get(part)
        elif origin is dict:
            parts.append(str(part))
            tp = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        elif origin is list and isinstance(part, int):
            parts[-1] = f"{parts[-1]}[{part}]" if parts else f"[{part}]"
            tp = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        # else: a union member's tag, not a key
    return ".".join(parts), key_error


def _known_keys(cls: type, path: str, prefix: str) -> list[str]:
    """The keys allowed where `path` (an unknown key) sits: its section's fields, or the tasks of resources."""
    parts = path[len(prefix) + 1:].split(".")[:-1] if prefix else path.split(".")[:-1]
    tp = cls
    for part in parts:
        tp = _unwrap(tp)
        if dataclasses.is_dataclass(tp):
            tp = typing.get_type_hints(tp, include_extras=True).get(part)
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
    tp = _unwrap(tp)
    if dataclasses.is_dataclass(tp):
        return [f.name for f in dataclasses.fields(tp)] + list(getattr(tp, "OWN_KEYS", ()))
    if typing.get_origin(tp) is dict:
        return list(typing.get_args(_unwrap(typing.get_args(tp)[0])))
    return []


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix and path else prefix or path


def check_training_world(recipe: "Recipe") -> None:
    """The recipe's effective batch must be what its batch keys and GPUs multiply to."""
    dpo, spec = recipe.dpo_training, recipe.cluster.resources.get("dpo_training") or ResourceSpec()
    if spec.nodes > 1 and spec.accelerator_count < 1:
        raise ConfigError("cluster.resources.dpo_training.nodes > 1 needs accelerator_count (GPUs per node)")
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


# ----------------------------------------------------------------------------------- loading, overrides
TOP_LEVEL_SETTINGS = ("name", "description", "rounds", "rounds_reference")  # recipe keys that are values, not sections


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
    recipe = build(Recipe, data, "")
    check_training_world(recipe)  # after TRL's check: it multiplies TRL's batch keys
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
    names = sorted({f.stem for folder in (Path.cwd() / "recipes", Path(__file__).resolve().parents[2] / "recipes")
                    if folder.is_dir() for f in folder.glob("*.yaml")})
    raise ConfigError(f"recipe {str(name_or_path)!r} not found: give a YAML path or one of the recipes "
                      f"{', '.join(names)}")


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
        raise ConfigError(f"--set: {exc}") from None  # the command line's words, not the recipe file's


def load_section(name_or_path: str | Path, section: str, overrides: typing.Iterable[str] = ()) -> Any:
    """One section of a recipe, validated on its own: quick, for checks that must not wait for the whole
    recipe (validating `dpo_training:` imports TRL, seconds)."""
    overrides = list(overrides)
    path, data = read_recipe(name_or_path, overrides)
    cls = typing.get_type_hints(Recipe)[section]
    try:
        return build(cls, data.get(section), section)
    except ConfigError as exc:
        raise ConfigError(f"{blamed(path, exc, overrides)}: {exc}") from None


def load_recipe(name_or_path: str | Path, overrides: typing.Iterable[str] = ()) -> Recipe:
    overrides = list(overrides)
    path, data = read_recipe(name_or_path, overrides)
    try:
        return recipe_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{blamed(path, exc, overrides)}: {exc}") from None


def blamed(path: Path, error: ConfigError, overrides: list[str]) -> str:
    """Where a schema error comes from: the `--set` whose key it names, else the recipe file."""
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if any(p == key or p.startswith(key + ".") for p in getattr(error, "paths", ())):
            return f"--set {text}"
    return str(path)


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)
