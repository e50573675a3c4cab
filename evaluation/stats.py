"""Summaries and paired tests on final SRE.

* Per method and starting error: n, mean ± std, median, the 30 % worst-case value (the 0.7 quantile, as
  Learn2Reg reports robustness), the failure count, the count of registrations that did not converge
  (status "not converged": their transform is kept and counted, the column tells a stalled result from a
  converged one) and the median runtime (and, for chains, each stage's). Failed samples keep their start as
  the result (see :class:`regkit.registrar.RegistrationResult`), so they count as "no improvement".
* Paired tests over the same (case, start) samples: the paired t-test of the paper (statsmodels
  ``DescrStatsW(diff).ttest_mean``) and the Wilcoxon signed-rank test beside it (scipy; statsmodels has no
  signed-rank test). Effect sizes: the mean difference, Cohen's d_z = mean(diff) / sd(diff), and the
  matched-pairs rank-biserial correlation for Wilcoxon. ``diff = SRE(a) − SRE(b)``, so a negative mean
  difference means ``a`` is better.
* Multiple comparisons: Holm's step-down correction (``multipletests(method="holm")``), applied separately to
  the t-test and to the Wilcoxon p-values, over all comparisons of the run (all starting errors together).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

CORRECTION = "holm"
CORRECTION_NOTE = ("p-values are Holm-corrected (statsmodels multipletests, method='holm') over all comparisons "
                   "of this run, separately for the paired t-test and the Wilcoxon signed-rank test")


def summary(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per (init, method): n, mean, std, median, worst30, failures, initial mean, runtime."""
    rows = []
    for (init, method), g in samples.groupby(["init", "method"], sort=False):
        e = g["final_sre"].to_numpy(float)
        s1 = g["stage1_sre"].to_numpy(float) if "stage1_sre" in g else np.full(len(g), np.nan)
        rows.append({
            "init": init, "method": method, "n": len(e), "mean": e.mean(), "std": e.std(ddof=1) if len(e) > 1 else 0.0,
            "median": float(np.median(e)), "worst30": float(np.quantile(e, 0.7)),
            "failures": int((g["status"] == "failed").sum()),
            "not_converged": int((g["status"] == "not converged").sum()),
            "initial_mean": g["initial_sre"].mean(),
            "stage1_mean": np.nanmean(s1) if np.isfinite(s1).any() else np.nan,
            "stage1_std": np.nanstd(s1, ddof=1) if np.isfinite(s1).sum() > 1 else np.nan,
            "runtime_median_s": float(g["runtime_s"].median()),
            "stage_runtimes_median_s": _stage_runtimes(g),
        })
    return pd.DataFrame(rows)


def _stage_runtimes(g: pd.DataFrame) -> list[float] | None:
    """Median runtime of each stage of a chain (from the ``stages`` JSON column), or None."""
    import json

    if "stages" not in g:
        return None
    cells = [json.loads(v) for v in g["stages"] if isinstance(v, str) and v]
    per = [[c["runtime_s"] for c in cell] for cell in cells if cell and all("runtime_s" in c for c in cell)]
    if not per:
        return None
    width = max(len(r) for r in per)
    arr = np.array([r + [np.nan] * (width - len(r)) for r in per], float)
    return [float(np.nanmedian(col)) for col in arr.T]


def paired(samples: pd.DataFrame, a: str, b: str, init: str) -> dict | None:
    """Paired comparison of methods ``a`` and ``b`` on the samples both have for ``init``."""
    from scipy.stats import wilcoxon
    from statsmodels.stats.weightstats import DescrStatsW

    key = ["case", "start_id"]
    sa = samples[(samples["method"] == a) & (samples["init"] == init)][[*key, "final_sre"]]
    sb = samples[(samples["method"] == b) & (samples["init"] == init)][[*key, "final_sre"]]
    m = sa.merge(sb, on=key, suffixes=("_a", "_b"))
    if len(m) < 2:
        return None
    diff = (m["final_sre_a"] - m["final_sre_b"]).to_numpy(float)
    sd = diff.std(ddof=1)
    if sd == 0:  # identical differences: no difference at all, or a t statistic that is not defined
        t, p_t = (0.0, 1.0) if diff[0] == 0 else (float("nan"), float("nan"))
    else:
        t, p_t, _ = DescrStatsW(diff).ttest_mean(0.0, alternative="two-sided")
    nonzero = diff[diff != 0]
    if len(nonzero) == 0:
        w, p_w, rb = 0.0, 1.0, 0.0
    else:
        res = wilcoxon(m["final_sre_a"], m["final_sre_b"])
        w, p_w = float(res.statistic), float(res.pvalue)
        ranks = pd.Series(np.abs(nonzero)).rank().to_numpy()
        rb = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
    return {"init": init, "a": a, "b": b, "n": len(m), "mean_diff": float(diff.mean()),
            "cohens_dz": float(diff.mean() / sd) if sd > 0 else 0.0, "t": float(t), "p_ttest": float(p_t),
            "wilcoxon_w": w, "p_wilcoxon": p_w, "rank_biserial": rb}


def paired_tests(samples: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """Paired tests for every pair of methods (or each method against ``reference``), per starting error."""
    from statsmodels.stats.multitest import multipletests

    rows = []
    for init in samples["init"].unique():
        methods = list(dict.fromkeys(samples[samples["init"] == init]["method"]))
        if reference is not None:
            pairs = [(reference, m) for m in methods if m != reference and reference in methods]
        else:
            pairs = list(itertools.combinations(methods, 2))
        for a, b in pairs:
            r = paired(samples, a, b, init)
            if r is not None:
                rows.append(r)
    out = pd.DataFrame(rows, columns=["init", "a", "b", "n", "mean_diff", "cohens_dz", "t", "p_ttest",
                                      "wilcoxon_w", "p_wilcoxon", "rank_biserial"])
    if len(out):
        for col in ("p_ttest", "p_wilcoxon"):
            ok = out[col].notna()
            out[f"{col}_holm"] = np.nan
            if ok.any():
                out.loc[ok, f"{col}_holm"] = multipletests(out.loc[ok, col], method=CORRECTION)[1]
    else:
        out["p_ttest_holm"] = []
        out["p_wilcoxon_holm"] = []
    return out
