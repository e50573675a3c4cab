"""Type I error and coverage of regkit's comparison statistics when the truth is known (no true difference).

Per-sample paired differences d[c, s] = u[c] + e[c, s]: u ~ N(0, sd_case) is the case's own difference between
the methods (a case x method effect), e ~ N(0, 1) the start's. For several numbers of cases and starts and
several case effects, it reports how often each test rejects at alpha = 0.05 (it should be 5 %) and how often the
95 % intervals of the mean cover 0 (they should 95 %).

    python bench/stats_simulation.py [--reps 4000]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats as sps

from regkit.evaluation import stats


def run(reps: int, cases: int, starts: int, sd_case: float, rng: np.random.Generator) -> dict:
    d = rng.normal(0, sd_case, (reps, cases, 1)) + rng.normal(0, 1.0, (reps, cases, starts))
    means = d.mean(axis=2)
    flat = d.reshape(reps, cases * starts)
    p_case = stats.paired_t(means)[2]
    p_sample = stats.paired_t(flat)[2]
    n_w = min(reps, 1000)
    p_case_w = sps.wilcoxon(means[:n_w], axis=1).pvalue
    p_sample_w = sps.wilcoxon(flat[:n_w], axis=1).pvalue
    n_b = min(reps, 1000)
    boot = means[:n_b, stats.bootstrap_index(cases, 2000)].mean(axis=2)
    lo, hi = np.quantile(boot, [0.025, 0.975], axis=1)
    lev = stats.expanded_level(0.95, cases)
    elo, ehi = np.quantile(boot, [(1 - lev) / 2, (1 + lev) / 2], axis=1)
    return {"case t": (p_case < 0.05).mean(), "case Wilcoxon": (p_case_w < 0.05).mean(),
            "sample t": (p_sample < 0.05).mean(), "sample Wilcoxon": (p_sample_w < 0.05).mean(),
            "t CI covers": (p_case >= 0.05).mean(), "percentile bootstrap covers": ((lo < 0) & (hi > 0)).mean(),
            "expanded bootstrap covers": ((elo < 0) & (ehi > 0)).mean()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=2021)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"no true difference; {args.reps} simulated comparisons per row (Wilcoxon and bootstrap: "
          f"{min(args.reps, 1000)}); rejection rates at alpha 0.05, coverage of 95 % intervals\n")
    header = None
    for cases, starts, sd in ((12, 3, 1.0), (12, 10, 1.0), (12, 10, 0.0), (16, 10, 0.5), (68, 100, 0.5),
                              (6, 5, 1.0)):
        r = run(args.reps, cases, starts, sd, rng)
        if header is None:
            header = ["cases", "starts", "sd case", *r]
            print("| " + " | ".join(header) + " |")
            print("|" + "---|" * len(header))
        print("| " + " | ".join([str(cases), str(starts), f"{sd:g}", *(f"{v:.3f}" for v in r.values())]) + " |")


if __name__ == "__main__":
    main()
