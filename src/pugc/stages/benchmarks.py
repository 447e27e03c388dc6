"""The paper's benchmarks as their own protocols: AlpacaEval 2 and MT-Bench (evaluation.benchmarks).

Pure logic, engines injected; pugc.stages.evaluate runs them in its three passes, beside the held-out set.

- AlpacaEval 2: the trained model answers each of the user's copy of the 805 instructions; the reference
  model's outputs come from the same file (alpaca_eval's format: `instruction`, `output`, `generator`), so the
  baseline pass answers nothing for them; the evaluator compares the two in both orders (the project's pairwise
  judge) and each prompt becomes an alpaca_eval annotation, preference = 1 + P(trained better) (1 the
  reference, 2 the trained model, alpaca_eval's encoding). The length-controlled win rate is alpaca_eval's own
  GLM (pugc.alpaca_eval_lc, in the gate's task: the package lives in the base image only).
- MT-Bench: both turns, the second asked in the conversation of the first; each turn of both models graded
  1-10 by the evaluator with MT-Bench's single-answer judge prompts (the user's `judge_prompts.jsonl`: the
  `single-v1` family, the `single-math-v1` family with reference answers for math, reasoning and coding);
  figures per turn and per category.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from pugc.engines.base import Prompt
from pugc.safety import neutralize
from pugc.text import without_lone_surrogates

ALPACA_EVAL = "alpaca_eval"
MT_BENCH = "mt_bench"
REFERENCE_CATEGORIES = ("math", "reasoning", "coding")  # MT-Bench grades these against a reference answer
JUDGE_PROMPT_NAMES = ("single-v1", "single-v1-multi-turn", "single-math-v1", "single-math-v1-multi-turn")
RATING_RANGE = (1.0, 10.0)


# ---------------------------------------------------------------------------------------- input files
def read_rows(uri: str, what: str) -> Iterator[tuple[int, dict]]:
    """(position, row) of a JSON array file or a JSONL file (local or gs://); a bad row names file and line."""
    from pugc.io import iter_input_rows, read_text

    if str(uri).endswith(".json"):
        try:
            rows = json.loads(read_text(uri))
        except ValueError as exc:
            raise ValueError(f"{what}: {uri} is not a JSON array: {exc}") from None
        if not isinstance(rows, list):
            raise ValueError(f"{what}: {uri} holds a JSON {type(rows).__name__}, expected an array of rows")
        numbered = enumerate(rows, start=1)
    else:
        numbered = ((line, row if error is None else error) for _, line, row, error in iter_input_rows(uri, "jsonl")
                    if error is None or error.reason != "blank_line")
    for line, row in numbered:
        if not isinstance(row, dict):
            raise ValueError(f"{what}: {uri} row {line}: {row if isinstance(row, str) else 'not an object'}")
        yield line, row


def _text(row: dict, key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a non-empty `{key}` string")
    return without_lone_surrogates(value)


def _turns(row: dict, key: str, where: str, count: int) -> list[str]:
    value = row.get(key)
    if not isinstance(value, list) or len(value) < count or not all(isinstance(t, str) for t in value[:count]):
        raise ValueError(f"{where}: expected `{key}`, a list of {count} strings")
    return [without_lone_surrogates(t) for t in value[:count]]


@dataclass(frozen=True)
class AlpacaEvalItem:
    index: int  # the instruction's position in the set: alpaca_eval's `index` (its instruction difficulty)
    instruction: str
    reference: str
    generator: str


def alpaca_eval_items(uri: str) -> Iterator[AlpacaEvalItem]:
    """alpaca_eval's reference outputs (e.g. `alpaca_eval_gpt4_baseline.json`): instruction, output, generator."""
    for line, row in read_rows(uri, "evaluation.benchmarks.alpaca_eval.reference_outputs"):
        where = f"{uri} row {line}"
        yield AlpacaEvalItem(line - 1, _text(row, "instruction", where), _text(row, "output", where),
                             str(row.get("generator") or "reference"))


@dataclass(frozen=True)
class MTBenchItem:
    question_id: str
    category: str
    turns: tuple[str, str]
    references: tuple[str, str] | None  # reference answers to both turns, where supplied


def mt_bench_items(questions_uri: str, references_uri: str = "") -> Iterator[MTBenchItem]:
    """MT-Bench's `question.jsonl` (question_id, category, two turns, an optional `reference`) and, optionally,
    its reference answers file (`reference_answer/gpt-4.jsonl`: question_id, choices[0].turns)."""
    references = {}
    if references_uri:
        for line, row in read_rows(references_uri, "evaluation.benchmarks.mt_bench.reference_answers"):
            where = f"{references_uri} row {line}"
            choices = row.get("choices")
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                raise ValueError(f"{where}: expected `choices`, a list with the answer's `turns`")
            references[str(row.get("question_id"))] = tuple(_turns(choices[0], "turns", where, 2))
    for line, row in read_rows(questions_uri, "evaluation.benchmarks.mt_bench.questions"):
        where = f"{questions_uri} row {line}"
        question_id = str(row.get("question_id", line))
        reference = references.get(question_id)
        if reference is None and row.get("reference"):
            reference = tuple(_turns(row, "reference", where, 2))
        yield MTBenchItem(question_id, str(row.get("category") or "general"),
                          tuple(_turns(row, "turns", where, 2)), reference)


# ------------------------------------------------------------------------------------- judge prompts
@dataclass(frozen=True)
class JudgePrompt:
    name: str
    system: str
    template: str


def load_judge_prompts(uri: str) -> dict[str, JudgePrompt]:
    """The four single-answer prompts of MT-Bench's `judge_prompts.jsonl`, each checked to render."""
    found = {}
    for line, row in read_rows(uri, "evaluation.benchmarks.mt_bench.judge_prompts"):
        if row.get("name") in JUDGE_PROMPT_NAMES:
            where = f"{uri} row {line} ({row['name']})"
            found[row["name"]] = JudgePrompt(row["name"], str(row.get("system_prompt") or ""),
                                             _text(row, "prompt_template", where))
    missing = [name for name in JUDGE_PROMPT_NAMES if name not in found]
    if missing:
        raise ValueError(f"evaluation.benchmarks.mt_bench.judge_prompts: {uri} lacks {', '.join(missing)} "
                         "(MT-Bench's single-answer grading prompts)")
    for prompt in found.values():
        try:
            prompt.template.format(**{key: "" for key in _PLACEHOLDERS})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"evaluation.benchmarks.mt_bench.judge_prompts: {uri}: {prompt.name}'s template "
                             f"does not render: {exc!r}") from None
    return found


_PLACEHOLDERS = ("question", "answer", "ref_answer_1", "question_1", "question_2", "answer_1", "answer_2",
                 "ref_answer_1", "ref_answer_2")


def grading_prompt(prompts: dict[str, JudgePrompt], category: str, turns: Sequence[str], answers: Sequence[str],
                   references: Sequence[str] | None, turn: int) -> Prompt:
    """MT-Bench's single-answer grading of `turn` (1 or 2), as fastchat's `run_judge_single` renders it: the
    family by category (math-like categories with a reference), the system prompt as its own message."""
    with_reference = category in REFERENCE_CATEGORIES and references is not None
    name = ("single-math-v1" if with_reference else "single-v1") + ("-multi-turn" if turn == 2 else "")
    values = {"question": turns[0], "answer": answers[0]} if turn == 1 else {
        "question_1": turns[0], "question_2": turns[1], "answer_1": answers[0], "answer_2": answers[1]}
    if with_reference:
        values.update({"ref_answer_1": references[0], "ref_answer_2": references[1]} if turn == 2
                      else {"ref_answer_1": references[0]})
    prompt = prompts[name]
    user = prompt.template.format(**{key: neutralize(value) for key, value in values.items()})
    messages = ({"role": "system", "content": prompt.system},) if prompt.system else ()
    return Prompt(messages=messages + ({"role": "user", "content": user},))


# Linear: bounded quantifiers only (fastchat's `\[\[(\d+\.?\d*)\]\]` backtracks over a long run of digits).
_DOUBLE = re.compile(r"\[\[([0-9]{1,2}(?:\.[0-9]{0,3})?)\]\]")
_SINGLE = re.compile(r"\[([0-9]{1,2}(?:\.[0-9]{0,3})?)\]")


def parse_rating(text: str) -> float | None:
    """The first `[[rating]]` (else the first `[rating]`), as fastchat reads MT-Bench judgements; None when
    there is none or it is outside 1-10."""
    match = _DOUBLE.search(text or "") or _SINGLE.search(text or "")
    if not match:
        return None
    value = float(match.group(1))
    return value if RATING_RANGE[0] <= value <= RATING_RANGE[1] else None


# --------------------------------------------------------------------------------------------- figures
def mt_bench_figures(results: Iterable) -> dict[str, float]:
    """Mean rating per model overall (both turns, MT-Bench's score), per turn and per category; ratings that
    did not parse are left out of the means, as MT-Bench leaves out its -1s, and counted."""
    ratings: dict[str, list[float]] = {}
    unparsed = questions = 0
    for r in results:
        questions += 1
        for model in ("trained", "baseline"):
            for turn, rating in enumerate(getattr(r, f"{model}_ratings"), start=1):
                if rating is None:
                    unparsed += 1
                    continue
                for key in (model, f"{model}_turn_{turn}", f"{model}_category_{r.category}"):
                    ratings.setdefault(key, []).append(rating)
    figures = {"questions": float(questions), "unparsed_ratings": float(unparsed)}
    figures.update({key: round(sum(values) / len(values), 4) for key, values in sorted(ratings.items())})
    return figures


def alpaca_eval_annotations(results: Iterable, annotator: str) -> list[dict]:
    """One alpaca_eval annotation per judged prompt: output_1 the reference, output_2 the trained model, and
    preference 1 + P(trained better), the mean of both orders (alpaca_eval's weighted annotators give such
    continuous preferences too)."""
    return [{"index": r.benchmark_index, "instruction": r.instruction, "output_1": r.baseline,
             "output_2": r.trained, "generator_1": r.reference_generator or "reference", "generator_2": "trained",
             "annotator": annotator, "preference": 1.0 + (r.trained_first + r.baseline_first) / 2}
            for r in results]
