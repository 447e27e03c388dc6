"""Evaluation: held-out questions, head-to-head judging of the trained model against a baseline, win rates.

Pure logic, engines injected. An evaluation is three record-to-record passes over the prompts, each a stage
of the shared runner (`EVALUATION_SPECS`: chunks, checkpoints, engine-error budget, accounting), each with its
own model loaded once (pugc.evaluation chains them): the trained model answers (`evaluate_trained`), the
baseline answers (`evaluate_baseline`), and the judge compares the two (`evaluate`) with Prometheus 2 relative
grading, in both orders to cancel position bias: the trained model wins a prompt only if it is preferred in
both orders, loses only if the baseline is, and anything else (the orders disagree, or a verdict sits exactly
at even) is a tie. A prompt whose answer or verdict fails is dropped with its reason in the pass that failed.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, Sequence

from pugc.config import BenchmarksConfig, EvaluationConfig, GateConfig, MTBenchConfig, PairwiseJudgeConfig
from pugc.decontamination import ContaminationIndex
from pugc.engines.base import Engine, Prompt, SamplingParams
from pugc.metrics import MEAN, RECOMPUTED, MetricRules
from pugc.prompts import load_template
from pugc.records import Dropped, Instruction, StageResult, content_id, ids_of
from pugc.stages import StageSpec
from pugc.stages.benchmarks import (ALPACA_EVAL, MT_BENCH, alpaca_eval_items, grading_prompt, load_judge_prompts,
                                   mt_bench_items, parse_rating)
from pugc.stages.llm import engine_error_drop, fit_documents, generate_parsed, judge
from pugc.stages.response_sampling import policy_prompt
from pugc.stages.verdicts import RESULT_A_OR_B
from pugc.tables import DOCUMENT_TEXT
from pugc.text import without_lone_surrogates

STAGE = "evaluate"
SPLIT_STAGE = "held_out_split"
HELD_OUT = "held_out"
CONTAMINATED = "contaminated"
RESULT_MARKER = "[RESULT]"
OUTCOME_SCORE = {"win": 1.0, "tie": 0.5, "lose": 0.0}


# ------------------------------------------------------------------------------------- held-out split
def is_held_out(question_id: str, fraction: float) -> bool:
    """Deterministic by id: the same question is held out on every run and machine, whatever else changes."""
    bucket = int(hashlib.sha256(f"held-out:{question_id}".encode()).hexdigest()[:12], 16) / 16 ** 12
    return bucket < fraction


def split_held_out(questions: list[Instruction], fraction: float) -> tuple[StageResult, list[Instruction]]:
    """Training questions pass on; held-out ones are accounted as dropped (`held_out`) and returned apart."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"evaluation.held_out_fraction must be in [0, 1), got {fraction}")
    kept, held_out, dropped = [], [], []
    for question in questions:
        if is_held_out(question.id, fraction):
            held_out.append(question)
            dropped.append(Dropped(SPLIT_STAGE, HELD_OUT, question.id, "evaluation set", ids_of(question)))
        else:
            kept.append(question)
    result = StageResult(SPLIT_STAGE, len(questions), kept, dropped,
                         metrics={"held_out_fraction": len(held_out) / len(questions) if questions else 0.0},
                         side=held_out)
    return result, held_out


def split_chunk(questions: list[Instruction], config: EvaluationConfig, engine=None, documents: dict | None = None,
                contamination: ContaminationIndex | None = None) -> StageResult:
    """held_out_split as a runner stage: training questions out, the evaluation set as its side output; a
    training question that contains an evaluation prompt, or whose document does, dropped as `contaminated`."""
    result = split_held_out(questions, config.held_out_fraction)[0]
    if not contamination:
        return result
    kept, dropped = [], list(result.dropped)
    for question in result.kept:
        found = contamination.match(question.instruction)
        where = "question"
        if found is None and documents is not None and question.doc_id in documents:
            found, where = contamination.match(documents[question.doc_id]), "document"
        if found is None:
            kept.append(question)
            continue
        dropped.append(Dropped(SPLIT_STAGE, CONTAMINATED, question.id, f"its {where} contains {found.prompt_set} "
                               f"prompt {found.prompt} ({found.overlap:.0%} of its words)", ids_of(question)))
    return replace(result, kept=kept, dropped=dropped)


def contamination_index(config: EvaluationConfig, questions_path: str) -> dict:
    """Every prompt the evaluation reads (its prompt sets, extra benchmark files, the held-out questions of this
    input), indexed once before the first chunk (StageSpec.prepare)."""
    from pugc.decontamination import add_prompt_files
    from pugc.io import iter_records

    settings = config.decontamination
    if not settings.enabled:
        return {}
    index = ContaminationIndex(settings.ngram, settings.threshold)
    add_prompt_files(index, [*config.prompt_sets, *config.benchmark_files, *settings.extra_sets])
    for question in iter_records(questions_path, Instruction):
        if is_held_out(question.id, config.held_out_fraction):
            index.add(HELD_OUT, question.id, question.instruction)
    return {"contamination": index}


# ----------------------------------------------------------------------------------------- records
@dataclass
class EvalPrompt:
    """One evaluation prompt: a held-out question (its UGC document, joined by doc_id, is the judge's reference)
    or a prompt-set row (none). The answer passes fill in the two models' answers."""

    id: str
    source: str  # "held_out" or the prompt set's file name
    instruction: str
    doc_id: str | None = None
    trained: str | None = None
    trained_tokens: int = 0
    baseline: str | None = None
    baseline_tokens: int = 0
    trained_cut: bool = False  # the answer was cut at max_tokens (finish_reason "length")
    baseline_cut: bool = False
    # a benchmark's prompt (evaluation.benchmarks, pugc.stages.benchmarks); None: the held-out set, a prompt set
    benchmark: str | None = None
    benchmark_index: int | None = None  # AlpacaEval: the instruction's position (its difficulty in the GLM)
    reference_generator: str | None = None  # AlpacaEval: the model whose outputs are the baseline answers
    category: str | None = None  # MT-Bench
    followup: str | None = None  # MT-Bench's second turn, asked after the answer to the first
    references: list = field(default_factory=list)  # MT-Bench's reference answers to both turns, where supplied
    trained_followup: str | None = None
    baseline_followup: str | None = None


@dataclass
class PairwiseResult:
    """Both answers to one prompt and the judge's verdicts: `outcome` is the trained model's (win/tie/lose)."""

    id: str
    source: str
    instruction: str
    trained: str
    baseline: str
    trained_tokens: int
    baseline_tokens: int
    outcome: str
    trained_first: float | None  # P(trained better) with the trained answer as A
    baseline_first: float | None  # P(trained better) with the trained answer as B
    doc_id: str | None = None
    judge_outputs: list = field(default_factory=list)
    trained_cut: bool = False  # the answer was cut at max_tokens
    baseline_cut: bool = False
    benchmark: str | None = None  # as on EvalPrompt
    benchmark_index: int | None = None
    reference_generator: str | None = None
    category: str | None = None
    followup: str | None = None
    trained_followup: str | None = None
    baseline_followup: str | None = None
    trained_ratings: list = field(default_factory=list)  # MT-Bench: 1-10 per turn, None where none parsed
    baseline_ratings: list = field(default_factory=list)

    @property
    def score(self) -> float:
        return OUTCOME_SCORE[self.outcome]


def prompt_from_row(row: object, source: str, line: int) -> EvalPrompt:
    """An AlpacaEval row (`instruction`) or an MT-Bench question (`turns`, the first turn); a bad row names the
    file and line. Lone surrogates become U+FFFD, as at ingest (pugc.text)."""
    if isinstance(row, dict) and isinstance(row.get("instruction"), str) and row["instruction"].strip():
        text = row["instruction"]
    elif isinstance(row, dict) and isinstance(row.get("turns"), list) and row["turns"] \
            and isinstance(row["turns"][0], str) and row["turns"][0].strip():
        text = row["turns"][0]
    else:
        raise ValueError(f"{source} line {line}: expected an `instruction` string or a `turns` list")
    text = without_lone_surrogates(text)
    return EvalPrompt(id=content_id(source, text), source=source, instruction=text.strip())


def prompts_from_rows(rows: Iterable[dict], source: str) -> list[EvalPrompt]:
    return [prompt_from_row(row, source, line) for line, row in enumerate(rows, start=1)]


def benchmark_prompts(benchmarks: BenchmarksConfig) -> Iterator[EvalPrompt]:
    """AlpacaEval's instructions with the reference model's outputs as the baseline answers, and MT-Bench's
    questions with their second turns, categories and reference answers."""
    if benchmarks.alpaca_eval:
        for item in alpaca_eval_items(benchmarks.alpaca_eval.reference_outputs):
            yield EvalPrompt(id=content_id(ALPACA_EVAL, str(item.index), item.instruction), source=ALPACA_EVAL,
                             instruction=item.instruction, baseline=item.reference, benchmark=ALPACA_EVAL,
                             benchmark_index=item.index, reference_generator=item.generator)
    if benchmarks.mt_bench:
        for item in mt_bench_items(benchmarks.mt_bench.questions, benchmarks.mt_bench.reference_answers):
            yield EvalPrompt(id=content_id(MT_BENCH, item.question_id), source=MT_BENCH, instruction=item.turns[0],
                             followup=item.turns[1], category=item.category, references=list(item.references or ()),
                             benchmark=MT_BENCH)


def held_out_prompt(question: Instruction) -> EvalPrompt:
    """A held-out question; its document (by doc_id) is joined as the judge's reference."""
    return EvalPrompt(id=question.id, source=HELD_OUT, instruction=question.instruction, doc_id=question.doc_id)


# ------------------------------------------------------------------------------------ generation
ANSWER_ROLES = ("trained", "baseline")


def answer(engine: Engine, prompts: Sequence[EvalPrompt], config: EvaluationConfig, role: str) -> StageResult:
    """`role`'s answer to every prompt, as the policy sees a question in training (the question alone), with
    the evaluation's sampling for both models; an MT-Bench second turn asked in the conversation of the first.
    AlpacaEval's baseline answers are its reference outputs, already on the prompt. A failed request drops its
    prompt (`engine_error`)."""
    if role not in ANSWER_ROLES:
        raise ValueError(f"answers come from one of {ANSWER_ROLES}, not {role!r}")
    given = [p for p in prompts if role == "baseline" and p.benchmark == ALPACA_EVAL]
    asked, dropped = _first_turns(engine, [p for p in prompts if p not in given], config, role)
    answered, followup_dropped = _second_turns(engine, asked, config, role)
    return StageResult(STAGE, len(prompts), given + answered, dropped + followup_dropped)


def _first_turns(engine: Engine, prompts: Sequence[EvalPrompt], config: EvaluationConfig, role: str):
    outputs = generate_parsed(engine, [policy_prompt(p.instruction) for p in prompts], config.sampling_params(),
                              str.strip)
    kept, dropped = [], []
    for prompt, (sample,) in zip(prompts, outputs):
        if sample.error:
            dropped.append(engine_error_drop(STAGE, prompt, f"the {role} model's answer: {sample.error}"))
            continue
        kept.append(replace(prompt, **{role: sample.value or "", f"{role}_tokens": sample.completion.num_tokens,
                                       f"{role}_cut": sample.completion.finish_reason == "length"}))
    return kept, dropped


def _second_turns(engine: Engine, prompts: Sequence[EvalPrompt], config: EvaluationConfig, role: str):
    asked = [p for p in prompts if p.followup is not None]
    conversations = [Prompt(messages=({"role": "user", "content": p.instruction},
                                      {"role": "assistant", "content": getattr(p, role)},
                                      {"role": "user", "content": p.followup})) for p in asked]
    outputs = dict(zip((p.id for p in asked), generate_parsed(engine, conversations, config.sampling_params(),
                                                              str.strip)))
    kept, dropped = [], []
    for prompt in prompts:
        if prompt.id not in outputs:
            kept.append(prompt)
            continue
        (sample,) = outputs[prompt.id]
        if sample.error:
            dropped.append(engine_error_drop(STAGE, prompt, f"the {role} model's second turn: {sample.error}"))
        else:
            kept.append(replace(prompt, **{f"{role}_followup": sample.value or ""}))
    return kept, dropped


# --------------------------------------------------------------------------------------- judging
def pairwise_prompt(instruction: str, response_a: str, response_b: str, reference: str | None) -> Prompt:
    template = load_template("pairwise_judge")
    if reference is not None:
        clause, section = template.part("reference_clause"), template.part("reference_section", reference=reference)
    else:
        clause = section = ""
    return template.render(instruction=instruction, response_a=response_a, response_b=response_b,
                           reference_clause=clause, reference_section=section)


def outcome(trained_first: float, baseline_first: float) -> str:
    """Both orders' P(trained better): win or lose only when both orders agree, else a tie."""
    def side(p: float) -> int:
        return (p > 0.5) - (p < 0.5)

    a, b = side(trained_first), side(baseline_first)
    if a == b and a != 0:
        return "win" if a > 0 else "lose"
    return "tie"


def judge_pairs(engine: Engine, prompts: Sequence[EvalPrompt], documents: dict[str, str],
                config: PairwiseJudgeConfig) -> StageResult:
    """Judge every answered prompt in both orders (`documents`: doc_id -> text, the references, joined from the
    document table). A prompt whose verdict fails in either order is dropped: `engine_error` when the judge's
    request failed, else `unparsable_judgement`."""
    references = _references(engine, prompts, documents, config)
    judge_prompts = []
    for p, reference in zip(prompts, references):
        judge_prompts += [pairwise_prompt(p.instruction, p.trained, p.baseline, reference),
                          pairwise_prompt(p.instruction, p.baseline, p.trained, reference)]
    verdicts = judge(engine, judge_prompts, RESULT_A_OR_B, config.mode, config.sampling_params(),
                     rationale_tokens=config.feedback_max_tokens, verdict_prefix=f"{RESULT_MARKER} ",
                     rationale_stop=RESULT_MARKER, max_resamples=config.max_resamples)
    kept = []
    judged, dropped = paired_verdicts(STAGE, prompts, verdicts, "the judge")
    for p, first, second in judged:
        trained_first, baseline_first = first.score, 1.0 - second.score
        kept.append(PairwiseResult(
            id=p.id, source=p.source, instruction=p.instruction, trained=p.trained, baseline=p.baseline,
            trained_tokens=p.trained_tokens, baseline_tokens=p.baseline_tokens,
            outcome=outcome(trained_first, baseline_first), trained_first=round(trained_first, 4),
            baseline_first=round(baseline_first, 4), doc_id=p.doc_id, judge_outputs=first.raw + second.raw,
            trained_cut=p.trained_cut, baseline_cut=p.baseline_cut, **_benchmark_fields(p)))
    return StageResult(STAGE, len(prompts), kept, dropped, metrics=figures(kept))


def paired_verdicts(stage: str, prompts: Sequence, verdicts: Sequence, who: str) -> tuple[list, list[Dropped]]:
    """Each prompt's two verdicts (positions 2i and 2i + 1 of `verdicts`) as (prompt, first, second), and the
    prompts whose pair failed: `engine_error` when `who`'s request failed, else `unparsable_judgement`."""
    judged, dropped = [], []
    for i, p in enumerate(prompts):
        first, second = verdicts[2 * i], verdicts[2 * i + 1]
        if first.error or second.error:
            dropped.append(engine_error_drop(stage, p, f"{who}: {first.error or second.error}"))
        elif first.score is None or second.score is None:
            dropped.append(Dropped(stage, "unparsable_judgement", p.id, repr((first.raw + second.raw)[:2]), ids_of(p)))
        else:
            judged.append((p, first, second))
    return judged, dropped


def _benchmark_fields(p: EvalPrompt) -> dict:
    return {name: getattr(p, name) for name in ("benchmark", "benchmark_index", "reference_generator", "category",
                                                 "followup", "trained_followup", "baseline_followup")}


def grade_mt_bench(engine: Engine, prompts: Sequence[EvalPrompt], config: MTBenchConfig) -> StageResult:
    """Both turns of both models' MT-Bench answers, each graded 1-10 with MT-Bench's single-answer prompts
    (greedy, as MT-Bench grades). A failed request drops its question (`engine_error`); a rating that does
    not parse is kept as None, left out of the means and counted (MT-Bench's -1)."""
    judge_prompts = load_judge_prompts(config.judge_prompts)
    requests = []
    for p in prompts:
        turns, references = (p.instruction, p.followup), p.references or None
        for model in ANSWER_ROLES:
            answers = (getattr(p, model), getattr(p, f"{model}_followup"))
            requests += [grading_prompt(judge_prompts, p.category, turns, answers, references, turn) for turn in (1, 2)]
    outputs = generate_parsed(engine, requests, SamplingParams(max_tokens=config.judge_max_tokens, temperature=0.0),
                              parse_rating)
    kept, dropped = [], []
    for i, p in enumerate(prompts):
        samples = [sample for (sample,) in outputs[4 * i:4 * i + 4]]
        error = next((s.error for s in samples if s.error), None)
        if error:
            dropped.append(engine_error_drop(STAGE, p, f"the judge: {error}"))
            continue
        trained, baseline = [s.value for s in samples[:2]], [s.value for s in samples[2:]]
        kept.append(PairwiseResult(
            id=p.id, source=p.source, instruction=p.instruction, trained=p.trained, baseline=p.baseline,
            trained_tokens=p.trained_tokens, baseline_tokens=p.baseline_tokens, outcome=_rating_outcome(trained, baseline),
            trained_first=None, baseline_first=None, judge_outputs=[s.completion.text for s in samples],
            trained_cut=p.trained_cut, baseline_cut=p.baseline_cut, trained_ratings=trained, baseline_ratings=baseline,
            **_benchmark_fields(p)))
    return StageResult(STAGE, len(prompts), kept, dropped)


def _rating_outcome(trained: list, baseline: list) -> str:
    """The trained model wins a question whose mean rating (of the turns rated for both) is higher."""
    both = [(t, b) for t, b in zip(trained, baseline) if t is not None and b is not None]
    if not both:
        return "tie"
    difference = sum(t - b for t, b in both)
    return "win" if difference > 0 else "lose" if difference < 0 else "tie"


def _references(engine: Engine, prompts: Sequence[EvalPrompt], documents: dict[str, str],
                config: PairwiseJudgeConfig) -> list[str | None]:
    """The documents cut to the judge's budget; None where a prompt has no reference or references are off."""
    with_reference = [i for i, p in enumerate(prompts) if config.reference and p.doc_id is not None]
    fitted, _ = fit_documents(engine, [documents[prompts[i].doc_id] for i in with_reference],
                              config.max_document_tokens)
    references: list[str | None] = [None] * len(prompts)
    for i, text in zip(with_reference, fitted):
        references[i] = text
    return references


# ------------------------------------------------------------------------------------- win rates
def figures(results: Iterable[PairwiseResult]) -> dict[str, float]:
    """win / tie / lose counts, win rate (wins + half the ties), length-controlled win rate, mean lengths and the
    share of answers cut at max_tokens. One pass over `results` (a stream: a few numbers per prompt are kept)."""
    scores, differences, trained_tokens, baseline_tokens, trained_chars, baseline_chars = [], [], [], [], [], []
    cut = {"trained": 0, "baseline": 0}
    for r in results:
        if r.benchmark is not None:  # a benchmark's figures are its own (benchmark_figures)
            continue
        cut["trained"] += r.trained_cut
        cut["baseline"] += r.baseline_cut
        scores.append(r.score)
        differences.append(r.trained_tokens - r.baseline_tokens)
        trained_tokens.append(r.trained_tokens)
        baseline_tokens.append(r.baseline_tokens)
        trained_chars.append(len(r.trained))
        baseline_chars.append(len(r.baseline))
    n = len(scores)
    counts = {name: sum(score == OUTCOME_SCORE[name] for score in scores) for name in ("win", "tie", "lose")}
    return {
        **{name: float(count) for name, count in counts.items()},
        "prompts": float(n),
        "win_rate": sum(scores) / n if n else 0.0,
        "lc_win_rate": length_controlled_win_rate(scores, differences),
        "trained_mean_tokens": _mean(trained_tokens),
        "baseline_mean_tokens": _mean(baseline_tokens),
        "trained_mean_chars": _mean(trained_chars),
        "baseline_mean_chars": _mean(baseline_chars),
        "trained_cut_fraction": cut["trained"] / n if n else 0.0,
        "baseline_cut_fraction": cut["baseline"] / n if n else 0.0,
    }


SLOPE_PENALTY = 1.0  # ridge on the slope only: keeps the fit finite when outcomes separate by length


def length_controlled_win_rate(scores: Sequence[float], length_differences: Sequence[float]) -> float:
    """The win rate the judge would give at equal length (AlpacaEval 2's idea, in its simplest form).

    Fits P(trained wins) = sigmoid(a + b * x) by maximum likelihood, with soft labels (win 1, tie 0.5,
    lose 0) and x = the token-length difference (trained - baseline) divided by its standard deviation
    over the set, plus a ridge penalty SLOPE_PENALTY * b^2 / 2 on the slope; returns sigmoid(a), the
    prediction at zero length difference. With no spread in lengths (or fewer than two prompts) there is
    nothing to control for and the plain win rate is returned.
    """
    n = len(scores)
    if n == 0:
        return 0.0
    plain = sum(scores) / n
    spread = _stdev(length_differences)
    if n < 2 or spread == 0.0:
        return plain
    x = [d / spread for d in length_differences]
    a, b = _logit(min(max(plain, 1e-3), 1 - 1e-3)), 0.0
    for _ in range(100):  # Newton's method on the penalised log-likelihood (concave: converges)
        p = [_sigmoid(a + b * xi) for xi in x]
        grad_a = sum(y - pi for y, pi in zip(scores, p))
        grad_b = sum((y - pi) * xi for y, pi, xi in zip(scores, p, x)) - SLOPE_PENALTY * b
        w = [pi * (1 - pi) for pi in p]
        h_aa, h_ab = sum(w) + 1e-9, sum(wi * xi for wi, xi in zip(w, x))
        h_bb = sum(wi * xi * xi for wi, xi in zip(w, x)) + SLOPE_PENALTY
        det = h_aa * h_bb - h_ab * h_ab
        step_a, step_b = (h_bb * grad_a - h_ab * grad_b) / det, (h_aa * grad_b - h_ab * grad_a) / det
        a, b = a + max(-5.0, min(5.0, step_a)), b + max(-5.0, min(5.0, step_b))
        if abs(step_a) + abs(step_b) < 1e-10:
            break
    return _sigmoid(a)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _stdev(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


# ------------------------------------------------------------------------------------------- gate
@dataclass
class GateDecision:
    passed: bool
    reason: str


# gate threshold -> (the figure it bounds from below, the figure that counts the prompts behind it)
GATE_FIGURES = {"min_win_rate": ("win_rate", "prompts"), "min_lc_win_rate": ("lc_win_rate", "prompts"),
                "min_alpaca_eval_lc_win_rate": ("alpaca_eval_lc_win_rate", "alpaca_eval_prompts"),
                "min_mt_bench": ("mt_bench_score", "mt_bench_questions")}


_NOTHING_JUDGED = {"prompts": "no evaluation prompts were judged",
                   "alpaca_eval_prompts": "no AlpacaEval prompts were judged",
                   "mt_bench_questions": "no MT-Bench rating was read"}


def decide_gate(figures: dict, gate: GateConfig) -> GateDecision:
    """Pass when every configured threshold is met; no thresholds pass any model; a threshold whose figure
    has no judged prompts behind it fails."""
    checks = [(*GATE_FIGURES[threshold], floor) for threshold, floor in gate.thresholds.items() if floor is not None]
    if not checks:
        return GateDecision(True, "no thresholds set")
    judged = int(figures.get("prompts") or 0)
    if gate.min_prompts and judged < gate.min_prompts and any(count == "prompts" for _, count, _ in checks):
        return GateDecision(False, f"{judged} prompts judged, fewer than gate.min_prompts {gate.min_prompts}")
    empty = dict.fromkeys(count for name, count, _ in checks if not figures.get(count) or figures.get(name) is None)
    if empty:
        return GateDecision(False, "; ".join(_NOTHING_JUDGED[count] for count in empty))
    failed = [f"{name} {figures[name]:.3f} < {floor}" for name, _, floor in checks if figures[name] < floor]
    if failed:
        return GateDecision(False, "; ".join(failed))
    return GateDecision(True, "; ".join(f"{name} {figures[name]:.3f} >= {floor}" for name, _, floor in checks))


NOISY_PROMPTS = 30  # below this many judged prompts the gate's reason says the figure is noisy


def gate_notes(figures: dict, results: Sequence[PairwiseResult]) -> list[str]:
    """What a reader of the gate's decision must know about the figures behind it: too few prompts to trust,
    or a trained model that answered every prompt exactly as the baseline did (nothing was learned)."""
    notes = []
    judged = int(figures.get("prompts") or 0)
    if 0 < judged < NOISY_PROMPTS:
        notes.append(f"only {judged} prompts judged: a noisy figure (gate.min_prompts refuses such a gate)")
    compared = [r for r in results if r.benchmark is None]
    if compared and all(r.trained == r.baseline for r in compared):
        notes.append("the trained model's answers equal the baseline's on every prompt")
    return notes


# ------------------------------------------------------------------------------- the runner's passes
# Every figure of the judged prompts is recomputed from all of them: a win rate of shards of different sizes is
# no average of theirs, and a length-controlled rate is a fit over every prompt.
FIGURES = ("win", "tie", "lose", "prompts", "win_rate", "lc_win_rate", "trained_mean_tokens",
           "baseline_mean_tokens", "trained_mean_chars", "baseline_mean_chars", "trained_cut_fraction",
           "baseline_cut_fraction")
EVALUATE_METRICS = MetricRules({name: RECOMPUTED for name in FIGURES}, figures)


def _answer_pass(role: str):
    return lambda prompts, config, engine: answer(engine, prompts, config, role)


def _judge_pass(prompts: list[EvalPrompt], config: EvaluationConfig, engine: Engine,
                documents: dict[str, str]) -> StageResult:
    """Pairwise judging of every prompt but MT-Bench's, which is graded turn by turn (its own protocol)."""
    graded = [p for p in prompts if p.benchmark == MT_BENCH]
    judged = judge_pairs(engine, [p for p in prompts if p.benchmark != MT_BENCH], documents, config.judge)
    if not graded:
        return judged
    rated = grade_mt_bench(engine, graded, config.benchmarks.mt_bench)
    kept = judged.kept + rated.kept
    return StageResult(STAGE, len(prompts), kept, judged.dropped + rated.dropped, metrics=figures(kept))


EVALUATION_SPECS = {
    spec.name: spec
    for spec in (
        StageSpec(SPLIT_STAGE, Instruction, Instruction, None, split_chunk, side_output="evaluation_questions",
                  joins=(DOCUMENT_TEXT,), metrics=MetricRules({"held_out_fraction": MEAN}), config=EvaluationConfig,
                  section="evaluation", prepare=contamination_index),
        *(StageSpec(f"{STAGE}_{role}", EvalPrompt, EvalPrompt, role, _answer_pass(role), config=EvaluationConfig, section="evaluation")
          for role in ANSWER_ROLES),
        StageSpec(STAGE, EvalPrompt, PairwiseResult, "judge", _judge_pass, joins=(DOCUMENT_TEXT,),
                  metrics=EVALUATE_METRICS, config=EvaluationConfig, section="evaluation"),
    )
}
