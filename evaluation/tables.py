"""Tables in the layout of the paper's Table 1 and Table 2, as CSV, LaTeX (booktabs) and Markdown."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

Titles = dict[str, str]  # method label → row title (from the method's declaration; see compare)


def title(method: str, titles: Titles | None = None) -> str:
    return (titles or {}).get(method, method)


def pm(mean: float, std: float) -> str:
    return "-" if not np.isfinite(mean) else f"{mean:.2f}±{std:.2f}"


def runtime_text(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _stage_runtime_text(stages) -> str:
    """`` (a + b)``: a chain's median runtime per stage, after its total."""
    if not isinstance(stages, list) or len(stages) < 2:
        return ""
    return " (" + " + ".join(runtime_text(v) for v in stages) + ")"


def table1(summary: pd.DataFrame, titles: Titles | None = None) -> pd.DataFrame:
    """Methods × starting error (the paper's Table 1): result SRE mean±std and robustness figures."""
    rows = []
    for _, r in summary.iterrows():
        rows.append({"Method": title(r["method"], titles), "Initialization": r["init"],
                     "Result SRE (mm)": pm(r["mean"], r["std"]), "Median (mm)": f"{r['median']:.2f}",
                     "30% worst (mm)": f"{r['worst30']:.2f}", "Failures": f"{int(r['failures'])}/{int(r['n'])}",
                     "Not converged": f"{int(r.get('not_converged', 0))}/{int(r['n'])}"})
    return pd.DataFrame(rows)


def table2(summary: pd.DataFrame, parameter_counts: dict[str, int | None], titles: Titles | None = None
           ) -> pd.DataFrame:
    """The paper's Table 2: stage 1, stage 2, parameter count and runtime per method."""
    rows = []
    for _, r in summary.iterrows():
        cascade = np.isfinite(r.get("stage1_mean", np.nan))
        count = parameter_counts.get(r["method"])
        rows.append({
            "Method": title(r["method"], titles), "Initial.": r["init"],
            "Stage 1": pm(r["stage1_mean"], r["stage1_std"]) if cascade else pm(r["mean"], r["std"]),
            "Stage 2": pm(r["mean"], r["std"]) if cascade else "-",
            "#Parameters": f"{count:,}" if count else "-",
            "Runtime": runtime_text(r["runtime_median_s"]) + _stage_runtime_text(r.get("stage_runtimes_median_s")),
        })
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
    rows = []
    for _, r in tests.iterrows():
        rows.append({"Initialization": r["init"], "A": title(r["a"], titles), "B": title(r["b"], titles),
                     "n": int(r["n"]),
                     "mean diff (mm)": f"{r['mean_diff']:+.2f}", "d_z": f"{r['cohens_dz']:+.2f}",
                     "p t-test (Holm)": _p(r["p_ttest_holm"]), "p Wilcoxon (Holm)": _p(r["p_wilcoxon_holm"]),
                     "rank-biserial": f"{r['rank_biserial']:+.2f}"})
    return pd.DataFrame(rows)


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def write_tables(out, summary: pd.DataFrame, tests: pd.DataFrame, titles: Titles, parameter_counts: dict,
                 write: Callable[[object, str], object]) -> dict[str, str]:
    """Write Table 1, Table 2 and the tests as CSV, LaTeX and Markdown; returns Table 1 and 2 as Markdown."""
    t1, t2, tt = table1(summary, titles), table2(summary, parameter_counts, titles), tests_table(tests, titles)
    from regkit.evaluation.stats import CORRECTION_NOTE

    md = {}
    for name, table, caption, group in (
        ("table1", t1, "Final SRE by method and starting error (cf. Song et al. 2021, Table 1).", "Initialization"),
        ("table2", t2, "Stage 1 / stage 2 SRE, parameter count and runtime per sample (cf. Table 2).",
         "Initial."),
        ("tests", tt, f"Paired tests on final SRE; {CORRECTION_NOTE}.", "Initialization"),
    ):
        write(out / f"{name}.csv", table.to_csv(index=False))
        write(out / f"{name}.tex", to_latex(table, caption, f"tab:{name}", group))
        text = to_markdown(table)
        if name == "tests":
            text += f"\n{CORRECTION_NOTE}. Negative mean differences favour A.\n"
        write(out / f"{name}.md", text)
        md[name] = text
    write(out / "summary.csv", summary.to_csv(index=False))
    write(out / "tests_raw.csv", tests.to_csv(index=False))
    return md
