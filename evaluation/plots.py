"""Plots of a comparison: box plots of final SRE, and initial-versus-final scatter plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.tables import title


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=150, bbox_inches="tight")
    tmp.replace(path)
    return path


def boxplot(samples: pd.DataFrame, path: str | Path) -> Path:
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
        ax.set_xticks(range(1, len(methods) + 1), [title(m) for m in methods], rotation=25, ha="right")
        ax.axhline(s["initial_sre"].mean(), ls="--", color="grey", lw=1, label="mean start")
        ax.set_title(f"start {init}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("final SRE (mm)")
    axes[0][0].legend(loc="upper left", frameon=False)
    fig.tight_layout()
    out = _save(fig, Path(path))
    plt.close(fig)
    return out


def scatter(samples: pd.DataFrame, path: str | Path) -> Path:
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
        failed = s[s["status"] != "ok"]
        if len(failed):
            ax.scatter(failed["initial_sre"], failed["final_sre"], s=40, facecolors="none", edgecolors="red",
                       label="failed")
        ax.plot([0, top], [0, top], color="grey", lw=1, ls="--")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_aspect("equal")
        ax.set_title(title(m))
        ax.set_xlabel("initial SRE (mm)")
        ax.set_ylabel("final SRE (mm)")
        ax.legend(fontsize=7, frameon=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    out = _save(fig, Path(path))
    plt.close(fig)
    return out
