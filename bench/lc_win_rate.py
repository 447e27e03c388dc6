"""How the length-controlled win rate behaves by evaluation-set size (pugc.stages.evaluate), by simulation.

A judge whose preference follows only length: P(trained wins) = sigmoid(length difference / 40 tokens), the
trained model answering 20 tokens longer on average (sd 40). At equal length it is a coin toss, so a faithful
length control reads 0.5 while the raw win rate reads about 0.6. Prints mean and spread over 300 sets per size.
Run: .venv/bin/python bench/lc_win_rate.py
"""
import math
import random
import statistics

from pugc.stages.evaluate import length_controlled_win_rate


def simulate(n: int, trials: int = 300, seed: int = 0) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    raw, controlled = [], []
    for _ in range(trials):
        differences = [rng.gauss(20, 40) for _ in range(n)]
        scores = [1.0 if rng.random() < 1 / (1 + math.exp(-d / 40)) else 0.0 for d in differences]
        raw.append(sum(scores) / n)
        controlled.append(length_controlled_win_rate(scores, differences))
    return raw, controlled


if __name__ == "__main__":
    print(f"{'prompts':>7}  {'win rate':>15}  {'LC win rate':>15}")
    for n in (10, 30, 100, 800):
        raw, controlled = simulate(n)
        print(f"{n:>7}  {statistics.fmean(raw):.3f} sd {statistics.pstdev(raw):.3f}  "
              f"{statistics.fmean(controlled):.3f} sd {statistics.pstdev(controlled):.3f}")
