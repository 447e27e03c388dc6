"""Reports a person reads in the Kubeflow UI: HTML with inline SVG, no external assets."""
from __future__ import annotations

import html
from collections import Counter


def _bars_svg(counts: dict[str, int], title: str, width: int = 420, height: int = 140) -> str:
    labels = list(counts)
    top = max(counts.values(), default=0) or 1
    bar = (width - 40) / max(1, len(labels))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" role="img">',
             f'<text x="4" y="14" font-size="13">{html.escape(title)}</text>']
    for i, label in enumerate(labels):
        h = height * counts[label] / top
        x = 20 + i * bar
        parts.append(f'<rect x="{x:.1f}" y="{20 + height - h:.1f}" width="{bar * 0.8:.1f}" height="{h:.1f}" fill="#4c78a8">'
                     f'<title>{html.escape(label)}: {counts[label]}</title></rect>')
        parts.append(f'<text x="{x:.1f}" y="{height + 34}" font-size="10">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: list[float], low: float = 1.0, high: float = 5.0, bins: int = 8) -> dict[str, int]:
    step = (high - low) / bins
    counts = Counter(min(bins - 1, max(0, int((v - low) / step))) for v in values)
    return {f"{low + i * step:.1f}": counts.get(i, 0) for i in range(bins)}


def pairs_report_html(pairs: list, counts: dict, samples: int = 5) -> str:
    """Preference pairs at a glance: counts, score and margin histograms, a few pairs side by side."""
    chosen = histogram([p.score_chosen for p in pairs])
    rejected = histogram([p.score_rejected for p in pairs])
    margins = histogram([p.margin for p in pairs], low=0.0, high=4.0)
    rows = "".join(
        f"<tr><td>{html.escape(p.prompt[-1]['content'][:300])}</td>"
        f"<td>{p.score_chosen:.2f}<br>{html.escape(p.chosen[-1]['content'][:400])}</td>"
        f"<td>{p.score_rejected:.2f}<br>{html.escape(p.rejected[-1]['content'][:400])}</td></tr>"
        for p in sorted(pairs, key=lambda p: -p.margin)[:samples]
    )
    dropped = ", ".join(f"{k}: {v}" for k, v in counts["dropped"].items()) or "none"
    return (
        "<html><head><meta charset='utf-8'><title>PUGC preference pairs</title></head><body>"
        f"<h2>Preference pairs: {len(pairs)} from {counts['in']} questions</h2><p>dropped: {html.escape(dropped)}</p>"
        + _bars_svg(chosen, "chosen score") + _bars_svg(rejected, "rejected score") + _bars_svg(margins, "margin")
        + "<h3>Widest-margin pairs</h3><table border='1' cellpadding='4'><tr><th>question</th><th>chosen</th>"
        f"<th>rejected</th></tr>{rows}</table></body></html>"
    )


def loss_curve_html(losses: list[float], title: str, width: int = 520, height: int = 220) -> str:
    if not losses:
        return f"<html><body><p>{html.escape(title)}: no losses were logged</p></body></html>"
    low, high = min(losses), max(losses)
    span = (high - low) or 1.0
    step = (width - 60) / max(1, len(losses) - 1)
    points = " ".join(f"{50 + i * step:.1f},{20 + (height - 40) * (high - v) / span:.1f}" for i, v in enumerate(losses))
    return (
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
        f'<text x="4" y="14" font-size="13">{html.escape(title)}: {len(losses)} logged steps, '
        f'loss {losses[0]:.4f} -> {losses[-1]:.4f}</text>'
        f'<polyline fill="none" stroke="#e45756" stroke-width="2" points="{points}"/>'
        f'<text x="4" y="{height - 4}" font-size="10">min {low:.4f}, max {high:.4f}</text></svg></body></html>'
    )


def write_pairs_report(pairs_path: str, counts: dict, report_path: str) -> None:
    from pathlib import Path

    from pugc.io import read_records
    from pugc.records import PreferencePair

    Path(report_path).write_text(pairs_report_html(read_records(pairs_path, PreferencePair), counts), encoding="utf-8")


def write_loss_curve(model_dir: str, report_path: str) -> None:
    import json
    from pathlib import Path

    training = json.loads(Path(model_dir, "training_report.json").read_text())
    title = f"{training['method'].upper()} loss, {training['base_model']} (beta {training['beta']})"
    Path(report_path).write_text(loss_curve_html(training["losses"], title), encoding="utf-8")
