"""Summaries and paired comparisons of registration errors, with the case as the unit of inference.

The starts of one case share its anatomy and images, so they are not independent samples. Every inference here
is therefore made **at the case level** by default, and the paper's sample-level tests are kept beside it,
labelled as such, so that its analysis can still be reproduced.

* **Summaries**, per starting error and method (and per stage of a cascade): n cases, n samples, mean ± std
  over samples, a 95 % confidence interval of the mean by a cluster bootstrap over cases (cases resampled with
  replacement, all starts of a drawn case kept; expanded percentile interval, seeded), the median, the 30 % worst
  value (0.7 quantile, as Learn2Reg reports robustness), failures and the median runtime.
* **Comparisons** ``A`` against ``B`` (an *arm* is a method's final result, ``attreg``, or one stage of a
  cascade, ``attreg@1``). ``diff = error(A) − error(B)`` on the samples both have, so a negative difference
  favours ``A``. Per comparison and starting error:

  - case level (the default): the per-case mean differences ``d_c`` (mean over the case's starts), the paired
    t-test over them (:func:`paired_t`, with its t interval), the Wilcoxon signed-rank
    test over them (scipy), Cohen's d_z = mean(d_c) / sd(d_c) and the matched-pairs rank-biserial correlation;
    a cluster-bootstrap 95 % interval of the mean difference; and a linear mixed model of the paired
    differences with a random intercept per case (statsmodels ``MixedLM``, REML; its Wald interval uses a t
    quantile on cases − 1 degrees of freedom, as small-sample practice asks). Modelling the paired differences
    is the same as modelling final SRE with a fixed method effect, random intercepts per case and per
    (case, start), and a random case × method effect: the effect of a method is allowed to vary by case.
  - sample level (the paper's analysis, 6,800 samples from 68 cases): the same tests over every (case, start)
    sample as if they were independent. Their p-values are too small whenever starts share a case.
* **Multiple comparisons**: Holm's step-down correction (statsmodels ``multipletests(method="holm")``) over the
  comparisons asked for (:func:`comparisons`), all starting errors together, separately for each test.
  The family is exactly the list of comparisons of the run, so name them (``compare=``) to fix it.
* **Significance ranks** (as challengeR): per starting error, each method's final result against every other
  with a one-sided Wilcoxon signed-rank test over per-case means, Holm-corrected over those pairwise tests;
  a method's score is how many others it beats at α = 0.05, and its rank is one plus the number of methods
  with a higher score. The mean per-case rank (rank, then aggregate) is given beside it.
* A registration that did not converge (status "not converged") keeps its transform and is counted apart from
  the failures (``not_converged``), so that the tables tell a stalled result from a converged one; for chains the
  median runtime of each stage is given too (``stage_runtimes_median_s``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from regkit.evaluation.comparisons import Arm, arm_values, comparisons, stage_columns

CORRECTION = "holm"
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CORRECTION_NOTE = ("p-values are Holm-corrected (statsmodels multipletests, method='holm') over the comparisons "
                   "listed (all starting errors together), separately for each test")
CASE_NOTE = ("Case level (the default): paired tests over the per-case mean differences (n = cases), 95 % CI "
             "of the mean difference from the t-test (not adjusted for multiplicity); sample level (the paper's "
             "analysis): the same tests over every (case, start) sample as if independent, whose p-values are too "
             "small when starts share a case")

# ---------------------------------------------------------------------------------------------- bootstrap
def bootstrap_index(n_cases: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """``(resamples, n_cases)`` case indices drawn with replacement: the same for the same size and seed."""
    return np.random.default_rng([seed, n_cases]).integers(0, n_cases, size=(resamples, n_cases))


def expanded_level(level: float, n_cases: int) -> float:
    """The level of the *expanded* percentile interval (Hesterberg 2015): percentiles are taken at the normal
    quantile ``sqrt(n / (n - 1)) · t_{n-1}``, so that with few cases the interval is not too narrow (the plain
    percentile interval of a mean over 12 cases covers about 91 %, not 95 %)."""
    from scipy.stats import norm
    from scipy.stats import t as t_dist

    if n_cases < 2:
        return level
    z = np.sqrt(n_cases / (n_cases - 1)) * t_dist.ppf((1 + level) / 2, n_cases - 1)
    return float(2 * norm.cdf(z) - 1)


def cluster_bootstrap_ci(sums: np.ndarray, counts: np.ndarray, level: float = 0.95,
                         resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED, expanded: bool = True
                         ) -> tuple[float, float]:
    """Percentile interval of a mean over samples, resampling whole cases (clusters) with replacement.

    ``sums[c]`` and ``counts[c]`` are the sum and number of case ``c``'s samples; a resample's mean is
    ``sum(sums[idx]) / sum(counts[idx])``. ``expanded`` (default) widens the percentiles for few cases, see
    :func:`expanded_level`.
    """
    sums, counts = np.asarray(sums, float), np.asarray(counts, float)
    if len(sums) < 2:
        return float("nan"), float("nan")
    idx = bootstrap_index(len(sums), resamples, seed)
    means = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    lev = expanded_level(level, len(sums)) if expanded else level
    lo, hi = np.quantile(means, [(1 - lev) / 2, (1 + lev) / 2])
    return float(lo), float(hi)


def _per_case(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.groupby("case", sort=False)[column].agg(["sum", "count", "mean"])


# ---------------------------------------------------------------------------------------------- summaries
def summary(samples: pd.DataFrame, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per (init, method): cases, n, mean, std, 95 % CI of the mean (cluster bootstrap), median,
    worst30, failures, not converged, suspect results (and how many were checked: :func:`suspect_counts`), initial
    mean, runtime; per stage ``k`` of a cascade ``stage<k>_mean``, ``_std``,
    ``_ci_low``, ``_ci_high``; and the mean of any other per-sample measure (``final_dice``, ``landmark_tre_mm``)."""
    rows = []
    stages = stage_columns(samples)
    extra = [c for c in ("final_dice", "landmark_tre_mm") if c in samples and samples[c].notna().any()]
    for (init, method), g in samples.groupby(["init", "method"], sort=False):
        e = g["final_sre"].to_numpy(float)
        per_case = _per_case(g, "final_sre")
        lo, hi = cluster_bootstrap_ci(per_case["sum"], per_case["count"], seed=seed)
        row = {"init": init, "method": method, "cases": len(per_case), "n": len(e), "mean": e.mean(),
               "std": e.std(ddof=1) if len(e) > 1 else 0.0, "ci_low": lo, "ci_high": hi,
               "median": float(np.median(e)), "worst30": float(np.quantile(e, 0.7)),
               "failures": int((g["status"] == "failed").sum()),
               "not_converged": int((g["status"] == "not converged").sum()), **suspect_counts(g),
               "initial_mean": g["initial_sre"].mean(),
               "runtime_median_s": float(g["runtime_s"].median()), "stage_runtimes_median_s": _stage_runtimes(g)}
        for k, col in stages.items():
            v = pd.to_numeric(g[col], errors="coerce")
            ok = g[v.notna()].assign(**{col: v[v.notna()]})
            if len(ok):
                pc = _per_case(ok, col)
                slo, shi = cluster_bootstrap_ci(pc["sum"], pc["count"], seed=seed)
                row.update({f"stage{k}_mean": v.mean(), f"stage{k}_std": v.std(ddof=1) if len(ok) > 1 else 0.0,
                            f"stage{k}_ci_low": slo, f"stage{k}_ci_high": shi})
            else:
                row.update({f"stage{k}_mean": np.nan, f"stage{k}_std": np.nan, f"stage{k}_ci_low": np.nan,
                            f"stage{k}_ci_high": np.nan})
        for col in extra:
            v = pd.to_numeric(g[col], errors="coerce")
            row[f"{col}_mean"] = v.mean()
            row[f"{col}_std"] = v.std(ddof=1) if v.notna().sum() > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def suspect_counts(samples: pd.DataFrame) -> dict[str, int]:
    """``{"suspect": k, "checked": m}``: of the samples whose consistency was measured (``regkit compare --qa``), how
    many were flagged suspect. Counts only: the statistics keep every sample."""
    flags = samples["suspect"] if "suspect" in samples else pd.Series([], dtype=object)
    checked = flags.map(lambda v: isinstance(v, bool | np.bool_))
    return {"suspect": int((flags[checked] == True).sum()), "checked": int(checked.sum())}  # noqa: E712


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


# ---------------------------------------------------------------------------------------------- tests
def _signed_rank(diff: np.ndarray, alternative: str = "two-sided") -> tuple[float, float, float]:
    """Wilcoxon signed-rank statistic, p-value and matched-pairs rank-biserial correlation of ``diff``."""
    from scipy.stats import wilcoxon

    nonzero = diff[diff != 0]
    if len(nonzero) == 0:
        return 0.0, 1.0, 0.0
    res = wilcoxon(diff, alternative=alternative)
    ranks = pd.Series(np.abs(nonzero)).rank().to_numpy()
    rb = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
    return float(res.statistic), float(res.pvalue), rb


def paired_t(diff: np.ndarray, level: float = 0.95, axis: int = -1) -> tuple[np.ndarray, ...]:
    """One-sample (paired) t-test of the mean of ``diff`` against 0 along ``axis``, vectorised.

    Returns ``(mean, t, two-sided p, CI low, CI high)``; the interval is ``mean ± t_{n-1} · sd / √n``.
    """
    from scipy.stats import t as t_dist

    diff = np.asarray(diff, float)
    n = diff.shape[axis]
    mean = diff.mean(axis=axis)
    se = diff.std(axis=axis, ddof=1) / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / se
    p = 2 * t_dist.sf(np.abs(t), n - 1)
    half = t_dist.ppf((1 + level) / 2, n - 1) * se
    return mean, t, p, mean - half, mean + half


def _t_test(diff: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """Paired t statistic, two-sided p-value and t interval of the mean of ``diff`` (one comparison)."""
    if diff.std(ddof=1) == 0:  # identical differences: no difference at all, or a t statistic that is not defined
        m = float(diff[0])
        return (0.0, 1.0, m, m) if m == 0 else (float("nan"), float("nan"), m, m)
    _, t, p, lo, hi = paired_t(diff, level)
    return float(t), float(p), float(lo), float(hi)


def mixed_model(diff: np.ndarray, cases: np.ndarray, level: float = 0.95) -> dict:
    """Mean paired difference from a linear mixed model with a random intercept per case (MixedLM, REML).

    Returns the estimate, its standard error, a Wald interval with a t quantile on cases − 1 degrees of
    freedom, and the case and residual variance components; NaNs when there are fewer than 3 cases or the fit
    fails.
    """
    import statsmodels.api as sm
    from scipy.stats import t as t_dist

    nan = {"mixed_diff": np.nan, "mixed_se": np.nan, "mixed_ci_low": np.nan, "mixed_ci_high": np.nan,
           "mixed_case_var": np.nan, "mixed_resid_var": np.nan}
    groups = pd.factorize(cases)[0]
    n_cases = groups.max() + 1 if len(groups) else 0
    if n_cases < 3 or len(diff) <= n_cases or np.all(diff == diff[0]):
        return nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boundary fits (case variance 0) are legitimate here
        try:
            fit = sm.MixedLM(np.asarray(diff, float), np.ones((len(diff), 1)), groups).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError):
            return nan
    est, se = float(fit.fe_params[0]), float(fit.bse_fe[0])
    q = t_dist.ppf((1 + level) / 2, n_cases - 1)
    return {"mixed_diff": est, "mixed_se": se, "mixed_ci_low": est - q * se, "mixed_ci_high": est + q * se,
            "mixed_case_var": float(np.asarray(fit.cov_re)[0, 0]), "mixed_resid_var": float(fit.scale)}


def paired_frame(samples: pd.DataFrame, a: Arm, b: Arm, init: str) -> pd.DataFrame:
    """The samples both arms have for ``init``: ``case``, ``start_id``, ``error_a``, ``error_b``, ``diff``."""
    m = arm_values(samples, a, init).merge(arm_values(samples, b, init), on=["case", "start_id"],
                                           suffixes=("_a", "_b"))
    m["diff"] = m["error_a"] - m["error_b"]
    return m


def compare_arms(samples: pd.DataFrame, a: Arm | str, b: Arm | str, init: str, seed: int = BOOTSTRAP_SEED,
                 with_mixed: bool = True) -> dict | None:
    """Case-level and sample-level paired comparison of ``a`` and ``b`` at one starting error (see the module
    docstring); None when they share fewer than 2 samples. ``with_mixed=False`` skips the mixed model."""
    a, b = (x if isinstance(x, Arm) else Arm.parse(x) for x in (a, b))
    m = paired_frame(samples, a, b, init)
    if len(m) < 2:
        return None
    diff = m["diff"].to_numpy(float)
    per_case = _per_case(m, "diff")
    dc = per_case["mean"].to_numpy(float)
    row = {"init": init, "a": a.label, "b": b.label, "cases": len(dc), "n": len(m),
           "mean_a": float(m["error_a"].mean()), "mean_b": float(m["error_b"].mean())}
    # case level
    if len(dc) >= 2:
        t, p_t, lo, hi = _t_test(dc)
        w, p_w, rb = _signed_rank(dc)
        sd = dc.std(ddof=1)
        blo, bhi = cluster_bootstrap_ci(per_case["sum"], per_case["count"], seed=seed)
    else:
        t = p_t = lo = hi = w = p_w = rb = sd = blo = bhi = np.nan
    row.update({"mean_diff": float(dc.mean()), "ci_low": lo, "ci_high": hi,
                "cohens_dz": float(dc.mean() / sd) if sd and np.isfinite(sd) else 0.0, "t": t, "p_ttest": p_t,
                "wilcoxon_w": w, "p_wilcoxon": p_w, "rank_biserial": rb, "boot_ci_low": blo, "boot_ci_high": bhi})
    if with_mixed:
        row.update(mixed_model(diff, m["case"].to_numpy()))
    # sample level: the paper's analysis
    t, p_t, lo, hi = _t_test(diff)
    w, p_w, rb = _signed_rank(diff)
    sd = diff.std(ddof=1)
    row.update({"sample_mean_diff": float(diff.mean()), "sample_ci_low": lo, "sample_ci_high": hi,
                "sample_cohens_dz": float(diff.mean() / sd) if sd > 0 else 0.0, "sample_t": t,
                "sample_p_ttest": p_t, "sample_wilcoxon_w": w, "sample_p_wilcoxon": p_w,
                "sample_rank_biserial": rb})
    return row


P_COLUMNS = ("p_ttest", "p_wilcoxon", "sample_p_ttest", "sample_p_wilcoxon")


def holm(p: pd.Series) -> pd.Series:
    """Holm-corrected p-values of the finite entries of ``p`` (the others stay NaN)."""
    from statsmodels.stats.multitest import multipletests

    out = pd.Series(np.nan, index=p.index)
    ok = p.notna()
    if ok.any():
        out[ok] = multipletests(p[ok].astype(float), method=CORRECTION)[1]
    return out


def paired_tests(samples: pd.DataFrame, compare: str | Sequence | None = None, reference: str | None = None,
                 registrars: dict[str, str] | None = None, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Every comparison asked for (:func:`comparisons`) at every starting error, with Holm-corrected p-values
    (columns ``<p>_holm``) over exactly those comparisons."""
    methods = list(dict.fromkeys(samples["method"]))
    comps = comparisons(compare, methods, samples, reference, registrars)
    rows = []
    for init in dict.fromkeys(samples["init"]):
        for c in comps:
            r = compare_arms(samples, c.a, c.b, init, seed)
            if r is not None:
                rows.append({**r, "why": c.why})
    out = pd.DataFrame(rows)
    if out.empty:
        out = pd.DataFrame(columns=["init", "a", "b", "cases", "n", "mean_diff", "ci_low", "ci_high", "why",
                                    *P_COLUMNS])
    for col in P_COLUMNS:
        out[f"{col}_holm"] = holm(out[col]) if len(out) else []
    return out


def significance_ranks(samples: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """challengeR's significance ranking of the methods' final results, per starting error (module docstring).

    Columns: init, method, cases, mean, beats (how many methods it is significantly better than), beaten_by,
    rank, mean_case_rank.
    """
    rows = []
    for init in dict.fromkeys(samples["init"]):
        s = samples[samples["init"] == init]
        methods = list(dict.fromkeys(s["method"]))
        wide = s.pivot_table(index=["case", "start_id"], columns="method", values="final_sre").dropna()
        case_means = wide.groupby(level="case").mean()[methods]
        pairs = [(i, j) for i in methods for j in methods if i != j]
        p = []
        for i, j in pairs:
            d = (case_means[i] - case_means[j]).to_numpy(float)
            p.append(_signed_rank(d, "less")[1] if len(d) >= 2 else np.nan)
        p_adj = holm(pd.Series(p, dtype=float)).to_numpy()
        wins = {(i, j) for (i, j), q in zip(pairs, p_adj, strict=True) if np.isfinite(q) and q < alpha}
        beats = {m: sum((m, o) in wins for o in methods) for m in methods}
        case_rank = case_means.rank(axis=1, method="average").mean() if len(case_means) else pd.Series(np.nan,
                                                                                                       methods)
        for m in methods:
            rows.append({"init": init, "method": m, "cases": len(case_means),
                         "mean": float(case_means[m].mean()) if len(case_means) else np.nan,
                         "beats": beats[m], "beaten_by": sum((o, m) in wins for o in methods),
                         "rank": 1 + sum(beats[o] > beats[m] for o in methods),
                         "mean_case_rank": float(case_rank[m])})
    return pd.DataFrame(rows)
