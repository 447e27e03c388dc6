"""The one shape every LLM stage shares: prompts -> engine -> parse.

`generate_parsed` serves the stages that want text (questions, responses); `judge` serves the stages that
want a verdict (quality, safety, relevance, reward), in either mode:
- sampled: n generations per prompt, each parsed; the score is the mean over those that parsed.
- expected: one pass reads the probabilities of the verdict tokens at the verdict position and takes the
  expectation. With `rationale_tokens`, the judge first writes its rationale greedily and the verdict is
  read right after `verdict_prefix` (Prometheus: feedback, then "[RESULT] ").

A served engine's request that failed after its retries reaches a stage as that prompt's error
(`Parsed.error`, `Judgement.error`); the stage drops the record as `engine_error` (`engine_error_drop`), and the
runner stops a stage whose errors exceed `max_engine_error_fraction` of its records (`check_engine_errors`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable, Generic, Sequence, TypeVar

from pugc.engines.base import Completion, Engine, EngineError, Prompt, SamplingParams
from pugc.metrics import MEAN, SUM, MetricRules
from pugc.records import Dropped, StageResult, ids_of
from pugc.stages.verdicts import VerdictScale

log = logging.getLogger(__name__)
T = TypeVar("T")
ENGINE_ERROR = "engine_error"  # drop reason: the engine's request for this record failed after its retries


class StageEngineError(RuntimeError):
    """A stage stopped: more of its records failed in the engine than the recipe allows."""


@dataclass
class Parsed(Generic[T]):
    value: T | None  # None when the output could not be parsed (or the request failed)
    completion: Completion

    @property
    def error(self) -> str | None:
        return self.completion.error


def generate_parsed(
    engine: Engine, prompts: Sequence[Prompt], params: SamplingParams, parse: Callable[[str], T | None]
) -> list[list[Parsed[T]]]:
    outputs = engine.generate(prompts, params)
    return [[Parsed(None if c.error else parse(c.text), c) for c in completions] for completions in outputs]


def first_error(samples: Sequence[Parsed]) -> str | None:
    """The error of a prompt none of whose samples came back (a record to drop as `engine_error`)."""
    errors = [s.error for s in samples]
    return errors[0] if errors and all(errors) else None


def engine_error_drop(stage: str, record, error: str) -> Dropped:
    return Dropped(stage, ENGINE_ERROR, record.id, error, ids_of(record))


def check_engine_errors(result: StageResult, max_fraction: float) -> None:
    """Stop a stage whose engine errors exceed the recipe's fraction of its records: a few failed requests
    are dropped records, many mean the server or the recipe is wrong."""
    errors = [d for d in result.dropped if d.reason == ENGINE_ERROR]
    if not errors or not result.n_in:
        return
    fraction = len(errors) / result.n_in
    if fraction > max_fraction:
        raise StageEngineError(
            f"{result.stage}: {len(errors)} of {result.n_in} records failed in the engine ({fraction:.1%}, over "
            f"{result.stage}.max_engine_error_fraction {max_fraction}); first error: {errors[0].detail}")


@dataclass
class Judgement:
    score: float | None  # None when no sample parsed
    votes: list[float | None] = field(default_factory=list)  # parsed verdict of each sample
    raw: list[str] = field(default_factory=list)  # the judge's own text (samples, or the greedy rationale)
    verdict_mass: float | None = None  # expected mode: probability held by valid verdict tokens
    generated_tokens: int = 0
    error: str | None = None  # the engine's error when no verdict came back (then score is None)


def judge(
    engine: Engine,
    prompts: Sequence[Prompt],
    scale: VerdictScale,
    mode: str,
    params: SamplingParams,
    rationale_tokens: int = 0,
    verdict_prefix: str = "",
    rationale_stop: str | None = None,
    max_resamples: int = 0,
) -> list[Judgement]:
    if mode == "sampled":
        return _judge_sampled(engine, prompts, scale, params, max_resamples)
    if mode == "expected":
        return _judge_expected(engine, prompts, scale, rationale_tokens, verdict_prefix, rationale_stop)
    raise ValueError(f"unknown verdict mode {mode!r}; use 'sampled' or 'expected'")


RESAMPLE_SEED_STEP = 1_000_003


def _judge_sampled(engine, prompts, scale, params, max_resamples) -> list[Judgement]:
    """n samples per prompt; samples that do not parse are drawn again (new seeds), up to max_resamples rounds.
    A greedy judge is never re-drawn: at temperature 0 a new seed gives the same unparsable output again."""
    if params.greedy and max_resamples:
        log.info("greedy verdicts: re-sampling skipped (it would re-draw the same outputs)")
        max_resamples = 0
    outputs = generate_parsed(engine, prompts, params, scale.parse)
    votes = [[None if s.value is None else float(s.value) for s in samples] for samples in outputs]
    raw = [[s.completion.text for s in samples if not s.error] for samples in outputs]
    tokens = [sum(s.completion.num_tokens for s in samples) for samples in outputs]
    errors = [first_error(samples) for samples in outputs]
    for attempt in range(1, max_resamples + 1):
        missing = {i: v.count(None) for i, v in enumerate(votes) if None in v and not errors[i]}
        if not missing:
            break
        retry = replace(params, n=max(missing.values()), seed=(params.seed or 0) + attempt * RESAMPLE_SEED_STEP)
        redrawn = generate_parsed(engine, [prompts[i] for i in missing], retry, scale.parse)
        for (i, count), samples in zip(missing.items(), redrawn):
            fresh = iter(samples[:count])
            for slot, vote in enumerate(votes[i]):
                if vote is None:
                    sample = next(fresh)
                    if sample.error:  # a failed re-draw leaves the slot unparsed; the parsed votes still count
                        errors[i] = errors[i] or sample.error
                        continue
                    votes[i][slot] = None if sample.value is None else float(sample.value)
                    raw[i].append(sample.completion.text)
                    tokens[i] += sample.completion.num_tokens
        log.info("re-sampled unparsable verdicts of %d prompts (round %d)", len(missing), attempt)
    judgements = []
    for v, r, t, error in zip(votes, raw, tokens, errors):
        parsed = [x for x in v if x is not None]
        failed = error if not parsed else None
        judgements.append(Judgement(score=sum(parsed) / len(parsed) if parsed else None, votes=[] if failed else v,
                                    raw=r, generated_tokens=t, error=failed))
    return judgements


def _judge_expected(engine, prompts, scale, rationale_tokens, verdict_prefix, rationale_stop) -> list[Judgement]:
    rationales = [""] * len(prompts)
    generated = [0] * len(prompts)
    errors: list[str | None] = [None] * len(prompts)
    if rationale_tokens > 0:
        greedy = SamplingParams(max_tokens=rationale_tokens, temperature=0.0, n=1)
        for i, (completion,) in enumerate(engine.generate(prompts, greedy)):
            if completion.error:
                errors[i] = completion.error
                continue
            text = completion.text
            cut = text.lower().find(rationale_stop.lower()) if rationale_stop else -1
            if cut >= 0:  # the judge's own verdict (its marker in any case) is read from probs instead
                text = text[:cut]
            # A rationale cut by max_tokens inside a character ends in U+FFFD on transformers, while vLLM's
            # detokenizer holds the partial character back: drop it, so both engines continue the same text.
            rationales[i] = text.rstrip().rstrip("\ufffd").rstrip()
            generated[i] = completion.num_tokens
    scoring = [i for i, error in enumerate(errors) if not error]  # no verdict without its rationale
    scoring_prompts = [
        replace(prompts[i], assistant_prefix=prompts[i].assistant_prefix + rationales[i]
                + (" " if rationales[i] else "") + verdict_prefix)
        for i in scoring
    ]
    probs = dict(zip(scoring, engine.next_token_probs(scoring_prompts, list(scale.options)) if scoring else []))
    judgements = []
    for i, (rationale, tokens) in enumerate(zip(rationales, generated)):
        token_probs = probs.get(i)
        if isinstance(token_probs, EngineError) or errors[i]:
            judgements.append(Judgement(score=None, raw=[rationale], generated_tokens=tokens,
                                        error=errors[i] or token_probs.message))
            continue
        score, mass = scale.expectation(token_probs)
        judgements.append(
            Judgement(score=score, votes=[score], raw=[rationale], verdict_mass=mass, generated_tokens=tokens)
        )
    return judgements


def drop_unscored(stage: str, record, verdict: Judgement) -> Dropped:
    """A record without a score: its engine request failed, or no verdict parsed."""
    if verdict.error:
        return engine_error_drop(stage, record, verdict.error)
    return Dropped(stage, "unparsable_judgement", record.id, repr(verdict.raw[:2]), ids_of(record))


def verdict_filter_metrics(score_field: str) -> MetricRules:
    """The figures of a stage that filters by a verdict (`filter_by_verdict`) and cuts documents to a budget."""
    return MetricRules({f"{score_field}_mean": MEAN, "pass_rate": MEAN, "documents_truncated": SUM})


def filter_by_verdict(stage: str, items: list, prompts: Sequence[Prompt], engine: Engine, scale: VerdictScale,
                      config, threshold: float, score_field: str, drop_reason: str,
                      ceiling: float | None = None, ceiling_reason: str = "above_max_score") -> StageResult:
    """Judge every item, store its score in `score_field`, keep it if threshold <= score (below it the reason is
    `drop_reason`) and score <= ceiling, if any (above it, `ceiling_reason`)."""
    judgements = judge(engine, prompts, scale, config.mode, config.sampling_params(), max_resamples=config.max_resamples)
    kept, dropped = [], []
    for item, verdict in zip(items, judgements):
        if verdict.score is None:
            dropped.append(drop_unscored(stage, item, verdict))
            continue
        setattr(item, score_field, round(verdict.score, 4))
        if verdict.score < threshold:
            detail = f"{score_field} {verdict.score:.3f} < {threshold}"
            dropped.append(Dropped(stage, drop_reason, item.id, detail, ids_of(item)))
        elif ceiling is not None and verdict.score > ceiling:
            detail = f"{score_field} {verdict.score:.3f} > {ceiling}"
            dropped.append(Dropped(stage, ceiling_reason, item.id, detail, ids_of(item)))
        else:
            kept.append(item)
    scores = [j.score for j in judgements if j.score is not None]
    return StageResult(stage, len(items), kept, dropped, metrics={
        f"{score_field}_mean": mean(scores), "pass_rate": len(kept) / len(items) if items else 0.0,
    })


def fit_documents(engine: Engine, texts: Sequence[str], max_tokens: int) -> tuple[list[str], int]:
    """Documents cut to the stage's token budget (by the engine's own tokenizer), and how many were cut."""
    fitted = [engine.truncate(text, max_tokens) for text in texts]
    return [text for text, _ in fitted], sum(cut for _, cut in fitted)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
