"""The two length-controlled win rates under a length-biased judge: the project's fit (pugc.stages.evaluate:
a logistic slope on the standardised token-length difference, ridge 1.0) and AlpacaEval 2's own GLM (the
alpaca-eval package, length_controlled_v1), on simulated annotations where the trained model is exactly as good
as the reference (truth 0.5) and the judge adds a saturating bonus for the longer answer.

    .venv/bin/python bench/lc_simulation.py [--prompts 805] [--trials 20] [--bias 1.0]

Prints the median over trials of each figure, side by side. The GLM needs df_gamed.csv: a synthetic one is
written with the same judge (its gamed baselines are the reference model made shorter and longer), since the
hub's cannot be downloaded here.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import random
import statistics
import tempfile
from pathlib import Path

from pugc import alpaca_eval_lc
from pugc.stages.evaluate import length_controlled_win_rate


def judge(rng: random.Random, quality: float, delta_std: float, bias: float) -> float:
    """P(output 2 preferred): its quality advantage plus a bonus that saturates with its length advantage."""
    return 1 / (1 + math.exp(-(quality + bias * math.tanh(delta_std) + rng.gauss(0, 0.3))))


def gamed_file(folder: Path, prompts: int, bias: float, rng: random.Random) -> str:
    path = folder / "df_gamed.csv"
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["model", "index", "preference", "std_delta_len", "instruction_difficulty", "not_gamed_baseline"])
        difficulty = [rng.gauss(0, 0.5) for _ in range(prompts)]  # a per-prompt term the GLM fits; no effect here
        for model, sign in (("reference_concise", -1), ("reference_verbose", 1)):
            for i in range(prompts):
                delta = sign * abs(rng.gauss(1.0, 0.5))
                # alpaca_eval's std_delta_len is output_1's length minus output_2's: minus the gamed one's advantage
                out.writerow([model, i, judge(rng, 0.0, delta, bias), -delta, difficulty[i], False])
    return str(path)


def trial(prompts: int, bias: float, seed: int, folder: Path) -> dict:
    rng = random.Random(seed)
    glm_data = gamed_file(folder, prompts, bias, rng)
    annotations, scores, token_deltas = [], [], []
    for i in range(prompts):
        reference_chars = rng.randint(400, 2500)
        trained_chars = max(50, int(reference_chars * math.exp(rng.gauss(0.35, 0.4))))  # longer, like round 3
        delta = trained_chars - reference_chars
        p = judge(rng, 0.0, delta / 900, bias)  # 900: about the spread of the differences
        annotations.append({"index": i, "instruction": f"prompt {i}", "output_1": "x" * reference_chars,
                            "output_2": "x" * trained_chars, "generator_1": "reference", "generator_2": "trained",
                            "annotator": "simulated", "preference": 1 + p})
        scores.append(p)
        token_deltas.append(delta / 4)  # about four characters a token
    alpaca = alpaca_eval_lc.alpaca_eval_figures(annotations, glm_data)
    return {"raw": sum(scores) / prompts, "project_lc": length_controlled_win_rate(scores, token_deltas),
            "alpaca_eval_lc": alpaca["lc_win_rate"], "alpaca_eval_win_rate": alpaca["win_rate"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=805)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--bias", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = [trial(args.prompts, args.bias, seed, Path(scratch)) for seed in range(args.trials)]
    medians = {key: round(statistics.median(r[key] for r in results), 4) for key in results[0]}
    print(json.dumps({"prompts": args.prompts, "trials": args.trials, "length_bias": args.bias, "truth": 0.5,
                      "median": medians}, indent=1))


if __name__ == "__main__":
    main()
