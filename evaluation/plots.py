"""Plots of a comparison: box plots of final SRE, initial-versus-final scatter plots, and per-case paired
differences with their intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from regkit.atomic import atomic_path
from regkit.evaluation.tables import Titles, title

# the statuses other than "ok", circled in the scatter plot under the names Table 1 counts them by
STATUS_MARKERS = {"failed": ("o", "red"), "not converged": ("s", "darkorange")}


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
    return path


def boxplot(samples: pd.DataFrame, path: str | Path, titles: Titles | None = None) -> Path:
    """Final SRE per method, one panel per starting error; the dashed line is the mean starting SRE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inits = list(dict.fromkeys(samples["init"]))
    fig, axes = plt.subplots(1, len(inits), figsize=(1.4 + 1.6 * samples["method"].nunique() * len(inits), 4.2),
                             squeeze=False, sharey=True)
    for ax, init in zip(axes[0], inits, strict=True):
        s = samples[samples["init"] == init]
        methods = list(dict.fromkeys(s["method"]))
        data = [s[s["method"] == m]["final_sre"].to_numpy(float) for m in methods]
        ax.boxplot(data, showmeans=True, meanprops={"marker": "D", "markerfacecolor": "white", "markersize": 5})
        ax.set_xticks(range(1, len(methods) + 1), [title(m, titles) for m in methods], rotation=25, ha="right")
        ax.axhline(s["initial_sre"].mean(), ls="--", color="grey", lw=1, label="mean start")
        ax.set_title(f"start {init}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("final SRE (mm)")
    axes[0][0].legend(loc="upper left", frameon=False)
    fig.tight_layout()
    out = _save(fig, Path(path))
    plt.close(fig)
    return out


def scatter(samples: pd.DataFrame, path: str | Path, titles: Titles | None = None) -> Path:
    """Initial versus final SRE, one panel per method; points below the diagonal improved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(samples["method"]))
    n = len(methods)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.3 * rows), squeeze=False)
    top = float(np.nanmax(samples[["initial_sre", "final_sre"]].to_numpy(float))) * 1.05
    for ax, m in zip(axes.ravel(), methods, strict=False):
        s = samples[samples["method"] == m]
        for init in dict.fromkeys(s["init"]):
            g = s[s["init"] == init]
            ax.scatter(g["initial_sre"], g["final_sre"], s=12, alpha=0.7, label=str(init))
        for status, (marker, colour) in STATUS_MARKERS.items():  # named as Table 1 names them
            flagged = s[s["status"] == status]
            if len(flagged):
                ax.scatter(flagged["initial_sre"], flagged["final_sre"], s=40, marker=marker, facecolors="none",
                           edgecolors=colour, label=status)
        ax.plot([0, top], [0, top], color="grey", lw=1, ls="--")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_aspect("equal")
        ax.set_title(title(m, titles))
        ax.set_xlabel("initial SRE (mm)")
        ax.set_ylabel("final SRE (mm)")
        ax.legend(fontsize=7, frameon=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    out = _save(fig, Path(path))
    plt.close(fig)
    return out


def differences(samples: pd.DataFrame, tests: pd.DataFrame, path: str | Path, titles: Titles | None = None,
                level: float = 0.95) -> Path:
    """Per-case paired differences of each comparison (one panel each): a case's mean difference over its starts
    with the t interval over those starts, cases sorted; below them the overall case-level estimate with its
    t interval (black) and cluster-bootstrap interval (grey). Left of zero favours A."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import t as t_dist

    from regkit.evaluation.comparisons import Arm
    from regkit.evaluation.stats import paired_frame

    n = max(len(tests), 1)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    n_cases = int(tests["cases"].max()) if len(tests) else 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, (1.2 + 0.22 * (n_cases + 2)) * rows), squeeze=False)
    for ax, (_, r) in zip(axes.ravel(), tests.iterrows(), strict=False):
        m = paired_frame(samples, Arm.parse(r["a"]), Arm.parse(r["b"]), r["init"])
        g = m.groupby("case", sort=False)["diff"].agg(["mean", "std", "count"]).sort_values("mean")
        half = np.where(g["count"] > 1, t_dist.ppf((1 + level) / 2, np.maximum(g["count"] - 1, 1))
                        * g["std"].fillna(0) / np.sqrt(g["count"]), 0.0)
        y = np.arange(len(g))
        ax.errorbar(g["mean"], y, xerr=half, fmt="o", ms=3.5, color="tab:blue", ecolor="tab:blue", elinewidth=1,
                    capsize=2)
        ax.errorbar([r["mean_diff"]], [-1.5], xerr=[[r["mean_diff"] - r["ci_low"]], [r["ci_high"] - r["mean_diff"]]],
                    fmt="D", ms=5, color="black", capsize=3, label="mean, t CI")
        if np.isfinite(r.get("boot_ci_low", np.nan)):
            ax.plot([r["boot_ci_low"], r["boot_ci_high"]], [-2.3, -2.3], color="grey", lw=3,
                    label="cluster bootstrap CI")
        ax.axvline(0, color="grey", ls="--", lw=1)
        ax.set_yticks([*y, -1.5], [*map(str, g.index), "all cases"], fontsize=7)
        ax.set_ylim(-3, len(g))
        ax.set_title(f"{title(r['a'], titles)} − {title(r['b'], titles)}\n(start {r['init']}, {int(r['cases'])} "
                     "cases)", fontsize=8)
        ax.set_xlabel("SRE difference (mm); < 0 favours the first")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=6, frameon=False, loc="best")
    for ax in axes.ravel()[len(tests):]:
        ax.axis("off")
    fig.tight_layout()
    out = _save(fig, Path(path))
    plt.close(fig)
    return out
