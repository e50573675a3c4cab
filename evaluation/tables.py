"""Tables in the layout of the paper's Table 1 and Table 2, as CSV, LaTeX (booktabs) and Markdown."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

Titles = dict[str, str]  # method label → row title (from the method's declaration; see compare)


def title(method: str, titles: Titles | None = None) -> str:
    """A method's row title; ``METHOD@K`` (stage ``K`` of a cascade) reads "Title, stage K"."""
    titles = titles or {}
    if method not in titles and "@" in method:
        base, _, stage = method.rpartition("@")
        return f"{titles.get(base, base)}, stage {stage}"
    return titles.get(method, method)


def ci(low: float, high: float) -> str:
    return "-" if not (np.isfinite(low) and np.isfinite(high)) else f"[{low:.2f}, {high:.2f}]"


def pm(mean: float, std: float) -> str:
    return "-" if not np.isfinite(mean) else f"{mean:.2f}±{std:.2f}"


def pm_ci(mean: float, std: float, low: float, high: float) -> str:
    """``mean±std [low, high]``: the 95 % interval of the mean (cluster bootstrap over cases) after it."""
    if not np.isfinite(mean):
        return "-"
    interval = ci(low, high)
    return pm(mean, std) + ("" if interval == "-" else f" {interval}")


def runtime_text(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _stage_runtime_text(stages) -> str:
    """`` (a + b)``: a chain's median runtime per stage, after its total."""
    if not isinstance(stages, list) or len(stages) < 2:
        return ""
    return " (" + " + ".join(runtime_text(v) for v in stages) + ")"


def suspect_text(r) -> str:
    """``k/n`` suspect results of n samples; ``k/m checked`` when only m of them were measured; ``-`` for none."""
    checked, n = int(r.get("checked", 0) or 0), int(r["n"])
    if not checked:
        return "-"
    return f"{int(r['suspect'])}/{n}" if checked == n else f"{int(r['suspect'])}/{checked} checked"


def table1(summary: pd.DataFrame, titles: Titles | None = None) -> pd.DataFrame:
    """Methods × starting error (the paper's Table 1): result SRE mean±std over samples, the 95 % CI of the mean
    (cluster bootstrap over cases), robustness figures (failures, not converged, and, when consistency was measured,
    suspect results), and TRUS-label Dice or landmark TRE where the dataset has them."""
    rows = []
    checked = summary.get("checked", pd.Series(dtype=float)).fillna(0).gt(0).any()  # consistency was measured
    for _, r in summary.iterrows():
        row = {"Method": title(r["method"], titles), "Initialization": r["init"],
               "Result SRE (mm)": pm(r["mean"], r["std"]), "95% CI (mm)": ci(r.get("ci_low", np.nan),
                                                                            r.get("ci_high", np.nan)),
               "Median (mm)": f"{r['median']:.2f}", "30% worst (mm)": f"{r['worst30']:.2f}",
               "Failures": f"{int(r['failures'])}/{int(r['n'])}",
               "Not converged": f"{int(r.get('not_converged', 0))}/{int(r['n'])}"}
        if checked:
            row["Suspect"] = suspect_text(r)
        for col, name in (("landmark_tre_mm", "Landmark TRE (mm)"), ("final_dice", "TRUS-label Dice")):
            if f"{col}_mean" in summary and summary[f"{col}_mean"].notna().any():
                row[name] = pm(r[f"{col}_mean"], r[f"{col}_std"])
        rows.append(row)
    return pd.DataFrame(rows)


def table2(summary: pd.DataFrame, parameter_counts: dict[str, int | None], titles: Titles | None = None
           ) -> pd.DataFrame:
    """The paper's Table 2: each stage's SRE as mean±std [95 % CI of the mean, cluster bootstrap over cases]
    (the last stage is the final result), parameter count and runtime per method. Stages are read from the
    summary's ``stage<k>_mean`` columns, however many there are."""
    import re

    ks = sorted(int(m.group(1)) for c in summary.columns if (m := re.match(r"^stage(\d+)_mean$", str(c))))
    width = max([k + 1 for k in ks if summary[f"stage{k}_mean"].notna().any()], default=1)
    width = max(width, 2)  # the paper's layout: Stage 1, Stage 2
    rows = []
    for _, r in summary.iterrows():
        done = [k for k in ks if np.isfinite(r.get(f"stage{k}_mean", np.nan))]
        last = max(done, default=0) + 1  # the final result is the stage after the last intermediate one
        row = {"Method": title(r["method"], titles), "Initial.": r["init"]}
        for k in range(1, width + 1):
            if k < last:
                row[f"Stage {k}"] = (pm_ci(*(r.get(f"stage{k}_{c}", np.nan) for c in ("mean", "std", "ci_low",
                                                                                       "ci_high")))
                                     if k in done else "-")
            else:
                row[f"Stage {k}"] = pm_ci(r["mean"], r["std"], r["ci_low"], r["ci_high"]) if k == last else "-"
        count = parameter_counts.get(r["method"])
        row.update({"#Parameters": f"{count:,}" if count else "-", "Runtime": runtime_text(r["runtime_median_s"])
                    + _stage_runtime_text(r.get("stage_runtimes_median_s"))})
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    cells = [[str(v) for v in row] for row in table.itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(cols)]
    line = "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, sep, *body]) + "\n"


def _latex_escape(text: str) -> str:
    return (text.replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%").replace("_", r"\_")
            .replace("#", r"\#").replace("±", r"$\pm$"))


def to_latex(table: pd.DataFrame, caption: str, label: str, group: str | None = None) -> str:
    """A booktabs table; rows are separated by a rule whenever ``group`` changes."""
    cols = list(table.columns)
    out = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(caption)}}}", rf"\label{{{label}}}",
           r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule",
           " & ".join(_latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    previous = None
    for _, row in table.iterrows():
        if group is not None and previous is not None and row[group] != previous:
            out.append(r"\midrule")
        previous = row[group] if group is not None else None
        out.append(" & ".join(_latex_escape(str(v)) for v in row) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def tests_table(tests: pd.DataFrame, titles: Titles | None = None) -> pd.DataFrame:
    """Case-level results first (cases, mean difference with its 95 % CI, d_z, Holm p-values of the paired
    t-test and the Wilcoxon signed-rank test over per-case means), the paper's sample-level p-values beside."""
    rows = []
    for _, r in tests.iterrows():
        rows.append({"Initialization": r["init"], "A": title(r["a"], titles), "B": title(r["b"], titles),
                     "cases": int(r["cases"]), "mean diff (mm) [95% CI]":
                     f"{r['mean_diff']:+.2f} {ci(r['ci_low'], r['ci_high'])}", "d_z": f"{r['cohens_dz']:+.2f}",
                     "p t-test": _p(r["p_ttest_holm"]), "p Wilcoxon": _p(r["p_wilcoxon_holm"]),
                     "sample-level n": int(r["n"]), "sample-level p t-test": _p(r["sample_p_ttest_holm"]),
                     "sample-level p Wilcoxon": _p(r["sample_p_wilcoxon_holm"])})
    return pd.DataFrame(rows)


def ranks_table(ranks: pd.DataFrame, titles: Titles | None = None) -> pd.DataFrame:
    """Significance ranks (challengeR): how many methods each one beats at the case level."""
    rows = []
    for _, r in ranks.sort_values(["init", "rank", "mean"], key=lambda c: c if c.name != "init" else
                                  c.map({v: i for i, v in enumerate(dict.fromkeys(ranks["init"]))})).iterrows():
        rows.append({"Initialization": r["init"], "Rank": int(r["rank"]), "Method": title(r["method"], titles),
                     "Beats": int(r["beats"]), "Beaten by": int(r["beaten_by"]), "cases": int(r["cases"]),
                     "Mean of case means (mm)": f"{r['mean']:.2f}", "Mean case rank": f"{r['mean_case_rank']:.2f}"})
    return pd.DataFrame(rows)


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


RANKS_NOTE = ("Significance ranks as in challengeR: per starting error, one-sided Wilcoxon signed-rank tests of "
              "each method against each other over per-case means, Holm-corrected over those tests; Beats = "
              "how many methods a method is significantly better than (alpha 0.05); Mean case rank = its rank "
              "among the methods within a case, averaged over cases")


def tests_note(n: int) -> str:
    from regkit.evaluation.stats import CASE_NOTE, CORRECTION_NOTE

    return (f"{CASE_NOTE}. {CORRECTION_NOTE} ({n} comparisons). Negative mean differences favour A; "
            "METHOD, stage K is that stage of a cascade.")


def write_tables(out, summary: pd.DataFrame, tests: pd.DataFrame, titles: Titles, parameter_counts: dict,
                 write: Callable[[object, str], object], ranks: pd.DataFrame | None = None,
                 ground_truth_note: str = "") -> dict[str, str]:
    """Write Table 1, Table 2, the tests (and the significance ranks) as CSV, LaTeX and Markdown; returns them
    as Markdown. ``tests_raw.csv`` holds every statistic of every comparison. ``ground_truth_note`` (how good
    a label-derived ground truth is: :func:`regkit.importers.writing.reference_note`) goes under Table 1 and into
    its caption."""
    t1, t2, tt = table1(summary, titles), table2(summary, parameter_counts, titles), tests_table(tests, titles)
    items = [
        ("table1", t1, "Final SRE by method and starting error (cf. Song et al. 2021, Table 1); 95 % CI of the "
         "mean by a cluster bootstrap over cases." + (f" {ground_truth_note}" if ground_truth_note else ""),
         "Initialization", f"\n{ground_truth_note}\n" if ground_truth_note else ""),
        ("table2", t2, "Stage 1 / stage 2 SRE, parameter count and runtime per sample (cf. Table 2).",
         "Initial.", ""),
        ("tests", tt, f"Paired tests on final SRE. {tests_note(len(tests))}", "Initialization",
         f"\n{tests_note(len(tests))}\n"),
    ]
    if ranks is not None:
        items.append(("ranks", ranks_table(ranks, titles), f"{RANKS_NOTE}.", "Initialization", f"\n{RANKS_NOTE}.\n"))
    md = {}
    for name, table, caption, group, note in items:
        write(out / f"{name}.csv", table.to_csv(index=False))
        write(out / f"{name}.tex", to_latex(table, caption, f"tab:{name}", group))
        text = to_markdown(table) + note
        write(out / f"{name}.md", text)
        md[name] = text
    write(out / "summary.csv", summary.to_csv(index=False))
    write(out / "tests_raw.csv", tests.to_csv(index=False))
    return md
