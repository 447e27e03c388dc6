"""Reports a person reads: HTML artifacts in the Kubeflow UI, and the same pages in a local run's reports/.

Each page is one self-contained file (charts drawn by matplotlib as inline SVG with their text kept as text,
no external assets), so it opens from disk, from a bucket, or inside the UI's artifact viewer alike.
"""
from __future__ import annotations

import bisect
import heapq
import html
import io
import json
from pathlib import Path

# Tables never wider than the page: long text wraps anywhere (model output has unbroken runs), the widest
# table lays out in fixed columns; charts scale down with the window.
STYLE = ("<style>body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em}"
         "table{border-collapse:collapse;max-width:100%}td,th{border:1px solid #ccc;padding:4px 8px;"
         "vertical-align:top;overflow-wrap:anywhere;word-break:break-word}table.wide{table-layout:fixed;width:100%}"
         "td.n{text-align:right}table.facts td:first-child{white-space:nowrap;font-weight:600}figure{display:inline-block;margin:0 1em 1em 0;max-width:100%}"
         "figure svg{max-width:100%;height:auto}nav{margin-bottom:1em}nav a{margin-right:1em}"
         ".note{background:#fff3cd;border:1px solid #e0c36c;padding:6px 10px}</style>")
TITLES = {"pairs_report": "Preference pairs", "loss_curve": "Training loss", "run_summary": "Run summary",
          "evaluation_report": "Evaluation: trained vs baseline"}
BAR_COLOUR = "#4c78a8"
SCORE_AXIS = "judge score (1-5)"


def esc(value) -> str:
    return html.escape(str(value))


def number(value) -> str:
    """For people: 4.0 -> '4', 1234 -> '1,234', 0.6148011 -> '0.615', None -> '-'."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def plural(count, word: str) -> str:
    return f"{number(count)} {word}{'' if count == 1 else 's'}"


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>{STYLE}"
            f"</head><body><h1>{esc(title)}</h1>{body}</body></html>")


# ------------------------------------------------------------------------------------------------ charts
def _figure(width: float = 4.6, height: float = 2.8):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots()


def _svg(figure) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text: readable, searchable, testable
        figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return f"<figure>{text[text.index('<svg'):]}</figure>"  # inline: no XML prolog


def histogram_svg(counts: list[float], edges: list[float], title: str, xlabel: str, ylabel: str) -> str:
    """Bars (counts already binned over `edges`) with their counts on top; labelled axes, integer counts."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _figure()
    heights, _, bars = axes.hist(edges[:-1], bins=edges, weights=counts, color=BAR_COLOUR, edgecolor="white")
    axes.bar_label(bars, labels=[str(int(c)) if c else "" for c in heights], fontsize=8)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.margins(y=0.15)
    return _svg(figure)


class Histogram:
    """Counts per bin, filled one value at a time (numpy.histogram's bins: the last one closed)."""

    def __init__(self, edges: list[float]):
        self.edges, self.counts = edges, [0] * (len(edges) - 1)

    def add(self, value: float) -> None:
        if self.edges[0] <= value <= self.edges[-1]:
            index = min(bisect.bisect_right(self.edges, value) - 1, len(self.counts) - 1)
            self.counts[index] += 1


def stage_bars_svg(stages: list[tuple[str, int, int]]) -> str:
    """Records into and out of each stage, side by side."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _figure(7.5, 3.2)
    positions = range(len(stages))
    for offset, label, colour, column in ((-0.2, "in", "#9ecae9", 1), (0.2, "out", BAR_COLOUR, 2)):
        bars = axes.bar([p + offset for p in positions], [s[column] for s in stages], width=0.4, label=label,
                        color=colour)
        axes.bar_label(bars, fontsize=7)
    axes.set_xticks(list(positions), [s[0] for s in stages], rotation=25, ha="right")
    axes.set(title="Records per stage", xlabel="stage", ylabel="records")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.margins(y=0.15)
    axes.legend()
    return _svg(figure)


def training_curves_svg(history: list[dict], method: str) -> str:
    """Loss, implicit-reward accuracy, reward margin and learning rate per logged step, one panel each."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(9.0, 5.6), layout="constrained")
    panels = figure.subplots(2, 2)
    for axes, (key, label, colour) in zip(panels.flat, (
            ("loss", f"{method.upper()} loss", "#e45756"), ("reward_accuracy", "reward accuracy", BAR_COLOUR),
            ("reward_margin", "reward margin", "#54a24b"), ("learning_rate", "learning rate", "#b279a2"))):
        points = [(entry.get("step") or i, entry[key]) for i, entry in enumerate(history, start=1)
                  if entry.get(key) is not None]
        if points:
            axes.plot(*zip(*points), marker="o", color=colour)
        axes.set(title=label, xlabel="training step", ylabel=label)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    return _svg(figure)


def outcome_bars_svg(evaluation: dict) -> str:
    """Wins, ties and losses of the trained model, as counts."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _figure(4.2, 2.8)
    names = ["win", "tie", "lose"]
    bars = axes.bar(names, [evaluation.get(n, 0) for n in names], color=["#54a24b", "#bab0ac", "#e45756"])
    axes.bar_label(bars, fontsize=8)
    axes.set(title="Outcomes of the trained model", xlabel="outcome", ylabel="prompts")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.margins(y=0.15)
    return _svg(figure)


def answer_lengths_svg(results: list) -> str:
    """Both models' answer lengths in characters, side by side per bin."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _figure(5.2, 2.8)
    trained = [len(r.trained) for r in results]
    baseline = [len(r.baseline) for r in results]
    top = max([*trained, *baseline, 1])
    edges = [top * i / 10 for i in range(11)]
    axes.hist([trained, baseline], bins=edges, label=["trained", "baseline"], color=[BAR_COLOUR, "#9ecae9"])
    axes.set(title="Answer lengths", xlabel="characters", ylabel="answers")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    return _svg(figure)


def loss_svg(losses: list[float], title: str) -> str:
    from matplotlib.ticker import MaxNLocator

    figure, axes = _figure(6.0, 3.2)
    steps = list(range(1, len(losses) + 1))
    axes.plot(steps, losses, marker="o", color="#e45756")
    axes.set(title=title, xlabel="training step", ylabel="loss")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    return _svg(figure)


# ----------------------------------------------------------------------------------------------- reports
def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset(), wide: bool = False) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class='n'>{esc(cell)}</td>" if i in numeric else f"<td>{esc(cell)}</td>"
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{' class=wide' if wide else ''}><tr>{head}</tr>{body}</table>"


def _dropped_text(dropped: dict) -> str:
    return ", ".join(f"{reason} {number(count)}" for reason, count in dropped.items()) or "none"


class PairsDigest:
    """What the pairs report shows, gathered pair by pair: score and margin histograms, the widest margins."""

    def __init__(self, samples: int = 5):
        self.count, self.samples, self.widest = 0, samples, []
        self.chosen, self.rejected = Histogram(SCORE_BINS), Histogram(SCORE_BINS)
        self.margins = Histogram(MARGIN_BINS)
        self.chosen_chars, self.rejected_chars = Histogram(LENGTH_BINS), Histogram(LENGTH_BINS)
        self.chars_total = {"chosen": 0, "rejected": 0}

    def add(self, pair) -> None:
        self.chosen.add(pair.score_chosen)
        self.rejected.add(pair.score_rejected)
        self.margins.add(pair.margin)
        for side, histogram in (("chosen", self.chosen_chars), ("rejected", self.rejected_chars)):
            chars = len(getattr(pair, side)[-1]["content"])
            self.chars_total[side] += chars
            histogram.add(min(chars, LENGTH_BINS[-1]))  # the last bin holds every longer answer
        entry = (pair.margin, -self.count, pair)  # earlier pairs win ties, as a stable sort would pick them
        self.count += 1
        if len(self.widest) < self.samples:
            heapq.heappush(self.widest, entry)
        elif entry[:2] > self.widest[0][:2]:
            heapq.heapreplace(self.widest, entry)

    def widest_pairs(self) -> list:
        return [pair for *_, pair in sorted(self.widest, key=lambda e: e[:2], reverse=True)]


SCORE_BINS, MARGIN_BINS = [1.0 + 0.5 * i for i in range(9)], [0.5 * i for i in range(9)]
LENGTH_BINS = [250.0 * i for i in range(17)]  # characters, 0 to 4,000 (and longer, in the last bin)


def length_sentence(digest: PairsDigest, metrics: dict) -> str:
    """Whether the pairs teach length: the two sides' mean lengths, and the pairs that reject a cut answer."""
    mean = lambda side: digest.chars_total[side] / digest.count if digest.count else None  # noqa: E731
    cut = {side: int(metrics.get(f"cut_{side}") or 0) for side in ("chosen", "rejected")}
    return (f"Mean length: chosen {number(mean('chosen'))} characters, rejected {number(mean('rejected'))}. "
            f"Answers cut at max_tokens: chosen in {plural(cut['chosen'], 'pair')}, rejected in "
            f"{plural(cut['rejected'], 'pair')}.")


def pairs_report_html(digest: PairsDigest, counts: dict, metrics: dict | None = None) -> str:
    """Preference pairs at a glance: counts, score, margin and length histograms, the widest-margin pairs side
    by side."""
    length_axis = "characters (the last bin: 4,000 or more)"
    charts = (histogram_svg(digest.chosen.counts, SCORE_BINS, "Chosen response scores", SCORE_AXIS, "pairs")
              + histogram_svg(digest.rejected.counts, SCORE_BINS, "Rejected response scores", SCORE_AXIS, "pairs")
              + histogram_svg(digest.margins.counts, MARGIN_BINS, "Score margins", "chosen - rejected score",
                              "pairs")
              + histogram_svg(digest.chosen_chars.counts, LENGTH_BINS, "Chosen response lengths", length_axis, "pairs")
              + histogram_svg(digest.rejected_chars.counts, LENGTH_BINS, "Rejected response lengths", length_axis,
                              "pairs"))
    rows = [[p.prompt[-1]["content"][:300], f"{number(p.score_chosen)}: {p.chosen[-1]['content'][:400]}",
             f"{number(p.score_rejected)}: {p.rejected[-1]['content'][:400]}"]
            for p in digest.widest_pairs()]
    body = (f"<p>{plural(digest.count, 'pair')} from {plural(counts['in'], 'question')}; dropped: "
            f"{esc(_dropped_text(counts['dropped']))}</p><p>{esc(length_sentence(digest, metrics or {}))}</p>"
            f"{charts}<h2>Widest-margin pairs</h2>"
            + _table(["question", "chosen (score: text)", "rejected (score: text)"], rows))
    return page("Preference pairs", body)


def loss_curve_html(training: dict) -> str:
    losses = training.get("losses") or []
    title = f"{training['method'].upper()} training loss"
    facts = (f"{plural(training.get('steps'), 'step')} on {plural(training.get('pairs'), 'pair')}, final loss "
             f"{number(training.get('final_loss'))}; base model {training.get('base_model')}, "
             f"beta {number(training.get('beta'))}")
    history = training.get("history") or []
    if history:
        chart = training_curves_svg(history, training["method"])
    else:
        chart = (loss_svg(losses, f"{training['method'].upper()} loss per step") if losses
                 else "<p>No losses were logged.</p>")
    final = _table(["after training", "value"], [
        ["reward accuracy (on the first pairs)", number(training.get("reward_accuracy"))],
        ["reward margin", number(training.get("reward_margin"))], ["eval loss", number(training.get("eval_loss"))],
        ["learning rate", number(training.get("learning_rate"))],
        ["effective batch size", number(training.get("effective_batch_size"))]], {1})
    return page(title, f"<p>{esc(facts)}</p>{chart}{final}")


def run_summary_html(summary: dict) -> str:
    from pugc.summary import LENGTH_HEADER, length_rows, stage_table

    rows = stage_table(summary["stages"])
    facts = [f"input {summary.get('input_unit', 'lines')} {number(summary['input_lines'])} "
             f"(quarantined {number(summary['quarantined'])})",
             f"preference pairs {number(summary['preference_pairs'])}"]
    if summary.get("run_id"):
        facts.insert(0, f"run {summary['run_id']}, recipe {summary.get('recipe')}, "
                        f"{number(summary.get('wall_seconds'))} s")
    training = summary.get("training") or {}
    if training:
        facts.append(training_sentence(training))
    if summary.get("evaluation"):
        facts.append(evaluation_sentence(summary["evaluation"]))
    body = ("<ul>" + "".join(f"<li>{esc(f)}</li>" for f in facts) + "</ul>"
            + stage_bars_svg([(name, n_in, n_out) for name, n_in, n_out, _ in rows]) + "<h2>Stages</h2>"
            + _table(["stage", "in", "out", "dropped"], [[n, number(i), number(o), d] for n, i, o, d in rows], {1, 2}))
    if summary.get("cost"):
        from pugc.summary import COST_HEADER, cost_rows, cost_sentence

        body += (f"<h2>Cost</h2><p>{esc(cost_sentence(summary['cost']))}</p>"
                 + _table(COST_HEADER, cost_rows(summary["cost"]), set(range(1, len(COST_HEADER)))))
    if summary.get("lengths"):
        body += ("<h2>Answer lengths</h2>"
                 + _table(LENGTH_HEADER, length_rows(summary["lengths"]), set(range(1, len(LENGTH_HEADER)))))
    return page("Run summary", body)


def evaluation_sentence(evaluation: dict) -> str:
    gate = evaluation["gate"]
    return (f"evaluation on {plural(evaluation['prompts'], 'prompt')}: win {evaluation['win']}, tie "
            f"{evaluation['tie']}, lose {evaluation['lose']}; win rate {number(evaluation['win_rate'])}, "
            f"length-controlled {number(evaluation['lc_win_rate'])}; {benchmark_clause(evaluation)}"
            f"gate {'passed' if gate['passed'] else 'FAILED'} ({gate['reason']})")


def benchmark_clause(evaluation: dict) -> str:
    """AlpacaEval 2's and MT-Bench's headline figures, where the run has them ("" otherwise)."""
    bench = evaluation.get("benchmarks") or {}
    parts = []
    if "alpaca_eval" in bench:
        alpaca = bench["alpaca_eval"]
        parts.append(f"AlpacaEval 2 LC {number(alpaca.get('lc_win_rate'))}, win rate {number(alpaca.get('win_rate'))} "
                     f"on {plural(alpaca.get('prompts'), 'prompt')}")
    if "mt_bench" in bench:
        mt = bench["mt_bench"]
        parts.append(f"MT-Bench {number(mt.get('trained'))} (baseline {number(mt.get('baseline'))}) on "
                     f"{plural(mt.get('questions'), 'question')}")
    return "".join(f"{part}; " for part in parts)


def _benchmark_tables(evaluation: dict) -> str:
    bench = evaluation.get("benchmarks") or {}
    html = ""
    if "alpaca_eval" in bench:
        alpaca = bench["alpaca_eval"]
        html += ("<h2>AlpacaEval 2</h2><p>Against the outputs of "
                 f"{esc(str(alpaca.get('reference_generator')))}; the length-controlled win rate is alpaca_eval's own "
                 "GLM (length_controlled_v1).</p>"
                 + _table(["figure", "value"], [[k, number(v)] for k, v in alpaca.items()
                                                 if k != "reference_generator"], {1}))
    if "mt_bench" in bench:
        mt = bench["mt_bench"]
        keys = sorted({k.split("_", 1)[1] for k in mt if k.startswith(("trained_", "baseline_"))})
        rows = [["overall", number(mt.get("trained")), number(mt.get("baseline"))]] + [
            [key.replace("_", " "), number(mt.get(f"trained_{key}")), number(mt.get(f"baseline_{key}"))] for key in keys]
        html += ("<h2>MT-Bench</h2><p>Mean single-answer rating, 1-10; "
                 f"{number(mt.get('unparsed_ratings'))} ratings could not be read and are left out.</p>"
                 + _table(["", "trained", "baseline"], rows, {1, 2}))
    return html


OUTCOME_ORDER = {"lose": 0, "tie": 1, "win": 2}
WIN_RULE = ("How a prompt is scored: the evaluator compares the two answers twice, once with each shown first. "
            "The trained model wins when both orders prefer it, loses when both prefer the baseline; anything else "
            "is a tie. Win rate = (wins + half the ties) / prompts; the length-controlled rate is the win rate the "
            "evaluator would give at equal answer lengths.")


def evaluation_report_html(evaluation: dict, results: list) -> str:
    """The figures, then every prompt side by side, worst losses first (the baseline most clearly preferred)."""
    lengths = evaluation["mean_length"]
    figures = _table(["", "trained", "baseline"], [
        ["mean length (tokens)", number(lengths["trained"]["tokens"]), number(lengths["baseline"]["tokens"])],
        ["mean length (characters)", number(lengths["trained"]["chars"]), number(lengths["baseline"]["chars"])],
        ["cut at max_tokens", *(f"{100 * (lengths[m].get('cut_fraction') or 0):.1f}%" for m in ("trained", "baseline"))]],
        {1, 2})
    ordered = sorted(results, key=lambda r: (OUTCOME_ORDER[r.outcome], _preference(r)))
    rows = [[r.outcome, r.source, r.instruction, r.trained, r.baseline, _verdict_cell(r)] for r in ordered]
    grader = evaluation.get("evaluator") or {}
    graded = (f"<p>Graded by {esc(grader.get('model', ''))}"
              + (" (self-judged: the reward judge that made the training pairs)" if evaluation.get("self_judged")
                 else f"; the training pairs were scored by {esc((evaluation.get('judge') or {}).get('model', ''))}")
              + ".</p>") if grader else ""
    compared = [r for r in results if r.benchmark is None]
    charts = outcome_bars_svg(evaluation) + (answer_lengths_svg(compared) if compared else "")
    body = (f"<p>{esc(evaluation_sentence(evaluation))}</p>{graded}<p>{esc(WIN_RULE)}</p>{charts}{figures}"
            f"{_benchmark_tables(evaluation)}"
            "<h2>Side by side</h2><p>P(trained better) with the trained answer shown first / second; for MT-Bench, "
            "each model's ratings of turns 1 and 2.</p>"
            + _table(["outcome", "source", "prompt", "trained", "baseline", "P(trained better)"], rows, wide=True))
    return page(TITLES["evaluation_report"], body)


def _preference(result) -> float:
    if result.trained_first is not None:
        return result.trained_first + result.baseline_first
    rated = [t - b for t, b in zip(result.trained_ratings, result.baseline_ratings) if t is not None and b is not None]
    return sum(rated) / 10 if rated else 0.0


def _verdict_cell(result) -> str:
    if result.trained_first is not None:
        return f"{number(result.trained_first)} / {number(result.baseline_first)}"
    return " ".join(f"{model} {'/'.join(number(r) for r in getattr(result, f'{model}_ratings'))}"
                    for model in ("trained", "baseline"))


def training_sentence(training: dict) -> str:
    return (f"{training.get('method', 'dpo').upper()}: {plural(training.get('steps'), 'step')} on "
            f"{plural(training.get('pairs'), 'pair')}, final loss {number(training.get('final_loss'))}, "
            f"base {training.get('base_model')}")


def index_html(summary: dict, reports: list[str]) -> str:
    """The run's dashboard: outcome and gate, what went in, which models, the figures, the stages, the pages."""
    from pugc.summary import stage_table

    evaluation = summary.get("evaluation") or {}
    gate = evaluation.get("gate") or {}
    status = summary.get("status", "succeeded")
    verdict = ("no evaluation" if not gate else
               f"gate {'passed' if gate.get('passed') else 'FAILED'}: {gate.get('reason', '')}")
    thresholds = ", ".join(f"{k} {v}" for k, v in (gate.get("thresholds") or {}).items() if v is not None)
    facts = [["status", f"{status}; {verdict}"], ["gate thresholds", thresholds or "none"],
             ["input", summary.get("input_uri", "-")], ["recipe", f"{summary.get('recipe')} "
                                                                  f"(digest {summary.get('recipe_digest', '-')})"],
             ["started", summary.get("started", "-")], ["duration", f"{number(summary.get('wall_seconds'))} s"],
             [f"input {summary.get('input_unit', 'lines')}",
              f"{number(summary.get('input_lines'))} ({number(summary.get('quarantined'))} quarantined)"],
             ["preference pairs", number(summary.get("preference_pairs"))]]
    total = (summary.get("cost") or {}).get("total")
    if total:
        spent = f"{number(total.get('gpu_hours'))} GPU-hours, {number(total.get('tokens_in', 0) + total.get('tokens_out', 0))} tokens"
        if total.get("cost") is not None:
            spent += f", {number(total['cost'])} {summary['cost'].get('currency', '')}"
        facts.append(["cost", spent])
    if evaluation:
        facts.append(["evaluation", evaluation_sentence(evaluation)])
    training = summary.get("training") or {}
    if training:
        facts.append(["training", training_sentence(training)])
    models = [[stage, f"{figures['model']}" + (f" @ {figures['model_revision']}" if figures.get("model_revision") else "")]
              for stage, figures in summary.get("stages", {}).items() if figures.get("model")]
    rows = stage_table(summary.get("stages", {}))
    fact_rows = "".join(f"<tr><td>{esc(key)}</td><td>{esc(value)}</td></tr>" for key, value in facts)
    body = (f"<table class=facts>{fact_rows}</table>" + "<h2>Models</h2>" + (_table(["stage", "model @ revision"], models) if models
                                                          else "<p>None recorded.</p>")
            + "<h2>Stages</h2>" + _table(["stage", "in", "out", "dropped"],
                                         [[n, number(i), number(o), d] for n, i, o, d in rows], {1, 2})
            + "<h2>Reports</h2><ul>" + "".join(f"<li><a href='{name}.html'>{esc(TITLES.get(name, name))}</a></li>"
                                               for name in reports) + "</ul>")
    return page(f"PUGC run {summary.get('run_id', '')}".strip(), body)


TINY_MODEL_NOTE = ("This run used tiny random models (pugc-tiny/...): every generated text and verdict on this page "
                   "is meaningless by design. It shows that the pipeline runs and accounts for every record, not "
                   "what the method achieves.")


def with_navigation(html_page: str, reports: list[str], tiny: bool) -> str:
    """A report page of a local run's reports/: links to the index and the other pages after the title, and the
    tiny-model note where the run used tiny models."""
    links = "<nav><a href='index.html'>run index</a>" + "".join(
        f"<a href='{name}.html'>{esc(TITLES.get(name, name))}</a>" for name in reports) + "</nav>"
    note = f"<p class='note'>{esc(TINY_MODEL_NOTE)}</p>" if tiny else ""
    head, marker, rest = html_page.partition("</h1>")
    return f"{head}{marker}{links}{note}{rest}" if marker else html_page


def write_pairs_report(pairs_path: str, counts: dict, report_path: str, metrics: dict | None = None) -> None:
    """The pairs file streamed once: memory holds the histograms and a few pairs, not the file. `metrics`: the
    stage's figures (how many pairs reject a cut answer)."""
    from pugc.io import iter_records
    from pugc.records import PreferencePair

    digest = PairsDigest()
    for pair in iter_records(pairs_path, PreferencePair):
        digest.add(pair)
    Path(report_path).write_text(pairs_report_html(digest, counts, metrics), encoding="utf-8")


def write_loss_curve(model_dir: str, report_path: str) -> None:
    training = json.loads(Path(model_dir, "training_report.json").read_text())
    Path(report_path).write_text(loss_curve_html(training), encoding="utf-8")
