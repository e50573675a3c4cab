"""Case-level paired tests from `regkit compare` results: the starts of a case are averaged first.

    python bench/case_level.py OUT/results.csv [MORE/results.csv ...] \
        --pairs "attreg@1:featreg@1,attreg:featreg,attreg-label:attreg,attreg:attreg@1,attreg:mind" [--md FILE]

The starts of one case share its anatomy and images, so they are not independent samples. For each pair of
(method, stage) and each starting error, the SRE of every case is the mean over its starts, and the paired
t-test (scipy ``ttest_rel``) and the Wilcoxon signed-rank test (``wilcoxon``, exact for small n) run over the
cases; Holm's correction runs over the pairs asked for (the family is what ``--pairs`` names). The
sample-level paired t-test of the paper is printed beside it, labelled as such.

``name`` is a method's final result; ``name@1`` its stage 1 (the ``stage1_sre`` column, for cascades; a
one-stage method's stage 1 is its result). ``diff = a − b``: negative means ``a`` ends closer.
"""

import argparse
import sys

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests


def column(df: pd.DataFrame, spec: str) -> pd.DataFrame:
    """(init, case, start_id, sre) of one method and stage."""
    name, _, stage = spec.partition("@")
    d = df[df["method"] == name]
    if d.empty:
        raise SystemExit(f"no method {name!r} in the results (have {sorted(df['method'].unique())})")
    col = "final_sre"
    if stage == "1" and "stage1_sre" in d and d["stage1_sre"].notna().any():
        col = "stage1_sre"
    return d[["init", "case", "start_id"]].assign(sre=d[col].to_numpy(float))


def compare(df: pd.DataFrame, a: str, b: str) -> list[dict]:
    m = column(df, a).merge(column(df, b), on=["init", "case", "start_id"], suffixes=("_a", "_b"))
    rows = []
    for init, g in m.groupby("init", sort=False):
        per_case = g.groupby("case")[["sre_a", "sre_b"]].mean()
        d = (per_case["sre_a"] - per_case["sre_b"]).to_numpy()
        n = len(d)
        t = stats.ttest_rel(per_case["sre_a"], per_case["sre_b"]) if n > 1 and d.std() > 0 else None
        w = stats.wilcoxon(d) if n > 1 and np.any(d != 0) else None
        half = stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        sample = stats.ttest_rel(g["sre_a"], g["sre_b"]) if len(g) > 1 else None
        rows.append({
            "init": init, "a": a, "b": b, "cases": n, "samples": len(g),
            "mean_a": per_case["sre_a"].mean(), "mean_b": per_case["sre_b"].mean(), "diff": d.mean(),
            "ci95": (d.mean() - half, d.mean() + half), "a_better_cases": int((d < 0).sum()),
            "p_t": t.pvalue if t is not None else 1.0, "p_w": w.pvalue if w is not None else 1.0,
            "p_sample_t": sample.pvalue if sample is not None else np.nan,
        })
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--pairs", required=True, help="comma-separated a:b pairs")
    ap.add_argument("--md", default=None, help="also write the table to this Markdown file")
    a = ap.parse_args(argv)
    df = pd.concat([pd.read_csv(p) for p in a.results], ignore_index=True)
    df = df.drop_duplicates(subset=["method", "case", "start_id", "init"], keep="last")
    rows = []
    for pair in a.pairs.split(","):
        x, y = pair.split(":")
        rows += compare(df, x.strip(), y.strip())
    out = pd.DataFrame(rows)
    for col in ("p_t", "p_w"):
        out[f"{col}_holm"] = multipletests(out[col], method="holm")[1]
    lines = ["| init | a | b | cases (samples) | a mean | b mean | a − b, 95 % CI (cases) | a better in | "
             "paired t p (Holm) | Wilcoxon p (Holm) | sample-level t p (paper's) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out.itertuples():
        lines.append(f"| {r.init} | {r.a} | {r.b} | {r.cases} ({r.samples}) | {r.mean_a:.2f} | {r.mean_b:.2f} | "
                     f"{r.diff:+.2f} [{r.ci95[0]:+.2f}, {r.ci95[1]:+.2f}] | {r.a_better_cases}/{r.cases} | "
                     f"{_p(r.p_t_holm)} | {_p(r.p_w_holm)} | {_p(r.p_sample_t)} |")
    text = "\n".join(lines)
    print(text)
    if a.md:
        with open(a.md, "w") as fh:
            fh.write(f"`python bench/case_level.py {' '.join(a.results)} --pairs \"{a.pairs}\"`\n\n{text}\n")


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


if __name__ == "__main__":
    sys.exit(main())
