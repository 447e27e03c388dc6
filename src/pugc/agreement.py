"""How often the reward judge agrees with labelled preferences: the paper's Fig. 3 as a tool.

Each labelled pair (a prompt, two responses, an optional reference, and a label `a`, `b` or `tie` from a person
or a strong judge) is graded by the pipeline's own reward judge: both responses scored 1-5 by
`reward_scoring.judge_prompts`, with and without the reference. The judge prefers the response with the higher
mean score over its first N samples (a tie when the means are equal), so one judging pass of 8 samples serves
N = 1, 3, 5 and 8. Agreement is reported twice: over all pairs (tie labels count; a judge tie then agrees
only with a tie label) and over the pairs not labelled tie (the paper's no-tie setting, where a judge tie is a
miss). A pair whose response got no parsable verdict in its first N samples is a miss too, counted apart.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from pugc.config import RewardScoringConfig
from pugc.engines.base import Engine
from pugc.stages import reward_scoring
from pugc.stages.llm import fit_documents

LABELS = ("a", "b", "tie")
SAMPLE_COUNTS = (1, 3, 5, 8)
REQUIRED = ("prompt", "response_a", "response_b", "label")


@dataclass(frozen=True)
class LabelledPair:
    prompt: str
    response_a: str
    response_b: str
    label: str
    reference: str | None = None


def read_pairs(path: str | Path) -> list[LabelledPair]:
    """The labelled pairs of a JSONL file; a bad line fails the whole read, naming the file, line and key
    (a benchmark with silently skipped pairs would report a figure for a set nobody chose)."""
    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object")
        for key in REQUIRED + ("reference",):
            if key in REQUIRED and key not in row:
                raise ValueError(f"{where}: missing '{key}'")
            if (key in REQUIRED or row.get(key) is not None) and not isinstance(row[key], str):
                raise ValueError(f"{where}: '{key}' must be a string")
        label = row["label"].strip().lower()
        if label not in LABELS:
            raise ValueError(f"{where}: label {row['label']!r} is not one of a, b, tie")
        pairs.append(LabelledPair(row["prompt"], row["response_a"], row["response_b"], label,
                                  row.get("reference") or None))
    if not pairs:
        raise ValueError(f"{path}: no labelled pairs")
    return pairs


def judge_votes(pairs: Sequence[LabelledPair], config: RewardScoringConfig, engine: Engine,
                with_reference: bool) -> list[tuple[list, list]]:
    """Each pair's per-sample verdicts for response a and b (None where a sample did not parse)."""
    references = [None] * len(pairs)
    if with_reference:
        references, _ = fit_documents(engine, [p.reference or "" for p in pairs], config.max_document_tokens)
    prompts = [reward_scoring.judge_prompt(pair.prompt, response, reference)
               for pair, reference in zip(pairs, references) for response in (pair.response_a, pair.response_b)]
    votes = [j.votes for j in reward_scoring.judge_prompts(engine, prompts, config)]
    return list(zip(votes[0::2], votes[1::2]))


def mean_of_first(votes: Sequence[float | None], n: int) -> float | None:
    parsed = [v for v in votes[:n] if v is not None]
    return sum(parsed) / len(parsed) if parsed else None


def preference(votes_a, votes_b, n: int) -> str | None:
    """'a', 'b' or 'tie' by the mean of the first n samples; None when either side has no verdict."""
    a, b = mean_of_first(votes_a, n), mean_of_first(votes_b, n)
    if a is None or b is None:
        return None
    return "tie" if math.isclose(a, b) else ("a" if a > b else "b")


def agreement_rows(labels: Sequence[str], votes: Sequence[tuple[list, list]], sample_counts: Sequence[int],
                   reference: bool) -> list[dict]:
    rows = []
    for n in sample_counts:
        decided = [preference(a, b, n) for a, b in votes]
        untied = [(label, d) for label, d in zip(labels, decided) if label != "tie"]
        rows.append({
            "reference": reference, "samples": n,
            "ties_counted": _share(sum(d == label for label, d in zip(labels, decided)), len(labels)),
            "no_ties": _share(sum(d == label for label, d in untied), len(untied)),
            "judge_ties": decided.count("tie"), "unscored": decided.count(None),
        })
    return rows


def _share(agree: int, total: int) -> dict:
    return {"agree": agree, "total": total, "agreement": agree / total if total else None}


def evaluate(pairs: Sequence[LabelledPair], config: RewardScoringConfig, engine: Engine) -> dict:
    """Agreement with and without the reference (with: over the pairs that carry one) at each sample count.
    In `expected` mode a verdict is one expectation, so only N = 1 is reported."""
    sampled = config.mode == "sampled"
    sample_counts = SAMPLE_COUNTS if sampled else (1,)
    config = replace(config, n=max(SAMPLE_COUNTS)) if sampled else config
    rows = []
    for with_reference in (True, False):
        chosen = [p for p in pairs if p.reference] if with_reference else list(pairs)
        if chosen:
            votes = judge_votes(chosen, config, engine, with_reference)
            rows += agreement_rows([p.label for p in chosen], votes, sample_counts, with_reference)
    return {
        "pairs": len(pairs), "with_reference": sum(bool(p.reference) for p in pairs),
        "labels": {label: sum(p.label == label for p in pairs) for label in LABELS},
        "mode": config.mode, "model": engine.model_id, "model_revision": getattr(engine, "revision", None),
        "rows": rows,
    }


def nothing_scored(report: dict) -> bool:
    """No pair got a verdict in any setting: every figure would read 0% and mean nothing."""
    return all(row["unscored"] == row["ties_counted"]["total"] for row in report["rows"])


def unscored_warning(report: dict) -> str | None:
    """What the table's `unscored` column means for the figures, when it is not zero."""
    worst = max(report["rows"], key=lambda row: row["unscored"] / max(row["ties_counted"]["total"], 1))
    if not worst["unscored"]:
        return None
    if nothing_scored(report):
        return (f"no verdict parsed: the judge ({report['model']}) never ended with \"[RESULT] <1-5>\", so every "
                "pair is unscored and the figures are meaningless (a random tiny model cannot; `expected` mode reads "
                "the verdict's probabilities instead: --set reward_scoring.mode=expected)")
    return (f"{worst['unscored']} of {worst['ties_counted']['total']} pairs got no parsable verdict at N = "
            f"{worst['samples']} ({'with' if worst['reference'] else 'without'} reference): they count as misses")


def format_table(report: dict) -> str:
    head = ("reference", "N", "agreement (ties counted)", "agreement (no ties)", "judge ties", "unscored")
    lines = [head] + [(
        "with" if row["reference"] else "without", str(row["samples"]), _cell(row["ties_counted"]),
        _cell(row["no_ties"]), str(row["judge_ties"]), str(row["unscored"]),
    ) for row in report["rows"]]
    widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    return "\n".join(text[:1] + ["  ".join("-" * w for w in widths)] + text[1:])


def _cell(share: dict) -> str:
    if share["agreement"] is None:
        return f"-  (0/{share['total']})"
    return f"{100 * share['agreement']:.1f}%  ({share['agree']}/{share['total']})"


def plot(report: dict, path: str | Path) -> None:
    """Agreement against N, one line per reference setting and tie handling (the paper's Fig. 3 layout)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    figure = Figure(figsize=(6, 4), dpi=120)
    axes = figure.add_subplot()
    one_pass = report["mode"] != "sampled"  # an expectation: one figure, the same for every N
    for reference in (True, False):
        rows = [r for r in report["rows"] if r["reference"] == reference]
        for key, style, what in (("no_ties", "-", "no ties"), ("ties_counted", "--", "ties counted")):
            points = [(r["samples"], 100 * r[key]["agreement"]) for r in rows if r[key]["agreement"] is not None]
            if one_pass and points:  # drawn flat across the N axis, marked as such, rather than as a lone dot
                points = [(n, points[0][1]) for n in SAMPLE_COUNTS]
            if points:
                axes.plot(*zip(*points), style, marker=None if one_pass else "o",
                          label=f"{'with' if reference else 'without'} reference, {what}")
    axes.set_xlabel("judge samples averaged (N)" + (" - expected mode: one pass, N does not apply" if one_pass else ""))
    axes.set_ylabel("agreement with labels (%)")
    axes.set_xticks(list(SAMPLE_COUNTS))
    axes.set_ylim(0, 100)
    axes.set_title(f"{report['model']}: {report['pairs']} labelled pairs")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png")


def can_plot() -> bool:
    """matplotlib is in the dev environment and the base image, not in the vllm image a GPU judge runs in."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write(report: dict, out_dir: str | Path, with_plot: bool = True) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "agreement.json", "table": out / "agreement.txt"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["table"].write_text(format_table(report) + "\n", encoding="utf-8")
    if with_plot:
        paths["plot"] = out / "agreement.png"
        plot(report, paths["plot"])
    return paths
