"""``metrics.json``: a comparison's results in the Learn2Reg style, per case and aggregated.

Layout::

    {"regkit_metrics": 1,
     "notes": {...},
     "methods": {LABEL: {"title": ..., "inits": {INIT: {
         "cases": {CASE: {"SRE": 2.1, "SRE_initial": 8.0, "SRE_stage1": 3.2, "runtime": 0.6, "starts": 3,
                          "failures": 0, "Dice": 0.84, "landmark_TRE_mm": 2.3, "consistency_mm": 0.4, "suspect": 0}},
         "aggregates": {"SRE": {"mean": ..., "std": ..., "30": ..., "median": ..., "ci95": [lo, hi]}, ...},
         "suspect": {"count": 1, "checked": 9, "samples": [{"case": ..., "start_id": 2, "status": "ok",
                                                            "consistency_mm": 6.3, "SRE": 14.1}]}}}}}}

A case's value is the mean over its starts (Learn2Reg's case is one image pair); the aggregates are over cases,
so ``std`` is the spread of case means. ``"30"`` is the 30 % worst case value: the 0.7 quantile for errors
and runtime, the 0.3 quantile for Dice, where higher is better. ``ci95`` is the cluster-bootstrap interval of
the mean over samples (as in the tables). Measures a dataset does not have (TRUS labels, landmarks) are left out,
and so are ``consistency_mm`` and ``suspect`` when the run did not measure them (``regkit compare --qa``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from regkit.evaluation.comparisons import stage_columns
from regkit.evaluation.stats import BOOTSTRAP_SEED, cluster_bootstrap_ci, suspect_counts

FORMAT_VERSION = 1


def _measures(samples: pd.DataFrame) -> dict[str, str]:
    """Output name → results column, for the measures present."""
    out = {"SRE": "final_sre", "SRE_initial": "initial_sre"}
    out.update({f"SRE_stage{k}": c for k, c in stage_columns(samples).items()})
    out.update({"Dice": "final_dice", "landmark_TRE_mm": "landmark_tre_mm", "runtime": "runtime_s",
                "consistency_mm": "consistency_mm"})
    return {k: c for k, c in out.items() if c in samples and pd.to_numeric(samples[c], errors="coerce").notna().any()}


def _num(x) -> float | None:
    x = float(x)
    return None if not math.isfinite(x) else round(x, 6)


def _aggregate(per_case: pd.Series, sums: pd.Series, counts: pd.Series, higher_is_better: bool, seed: int) -> dict:
    v = per_case.to_numpy(float)
    lo, hi = cluster_bootstrap_ci(sums.to_numpy(float), counts.to_numpy(float), seed=seed)
    return {"mean": _num(v.mean()), "std": _num(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "30": _num(np.quantile(v, 0.3 if higher_is_better else 0.7)), "median": _num(np.median(v)),
            "ci95": [_num(lo), _num(hi)], "cases": len(v), "samples": int(counts.sum())}


def learn2reg_metrics(samples: pd.DataFrame, titles: dict[str, str] | None = None, seed: int = BOOTSTRAP_SEED
                      ) -> dict:
    """The metrics document (see the module docstring) of a per-sample results table."""
    measures = _measures(samples)
    methods: dict[str, dict] = {}
    for (method, init), g in samples.groupby(["method", "init"], sort=False):
        entry = methods.setdefault(method, {"title": (titles or {}).get(method, method), "inits": {}})
        cases: dict[str, dict] = {}
        aggregates: dict[str, dict] = {}
        for name, col in measures.items():
            v = g[["case"]].assign(value=pd.to_numeric(g[col], errors="coerce")).dropna()
            if v.empty:
                continue
            pc = v.groupby("case", sort=False)["value"].agg(["mean", "sum", "count"])
            for case, r in pc.iterrows():
                cases.setdefault(str(case), {})[name] = _num(r["mean"])
            aggregates[name] = _aggregate(pc["mean"], pc["sum"], pc["count"], name == "Dice", seed)
        for case, c in g.groupby("case", sort=False):
            cases[str(case)].update({"starts": len(c), "failures": int((c["status"] != "ok").sum())})
            if (counts := suspect_counts(c))["checked"]:
                cases[str(case)]["suspect"] = counts["suspect"]
        entry["inits"][str(init)] = {"cases": cases, "aggregates": aggregates}
        if (counts := suspect_counts(g))["checked"]:
            flagged = g[g["suspect"].map(lambda v: v is True or v is np.True_)]
            entry["inits"][str(init)]["suspect"] = {
                "count": counts["suspect"], "checked": counts["checked"],
                "samples": [{"case": str(r["case"]), "start_id": int(r["start_id"]), "status": r["status"],
                             "consistency_mm": _num(r["consistency_mm"]), "SRE": _num(r["final_sre"])}
                            for _, r in flagged.iterrows()]}
    return {"regkit_metrics": FORMAT_VERSION,
            "notes": {"case": "mean over the case's starts", "aggregates": "over case means; ci95: cluster "
                      "bootstrap over cases of the mean over samples", "30": "30 % worst case value: 0.7 quantile "
                      "(errors, runtime) or 0.3 quantile (Dice)", "units": "SRE and landmark TRE in mm, runtime in s",
                      "suspect": "results whose consistency, measured without the ground truth, is worse than the "
                      "threshold (regkit.consistency; in run.json: qa); counted, never dropped"},
            "methods": methods}


def write_metrics(samples: pd.DataFrame, path: str | Path, titles: dict[str, str] | None = None, write=None,
                  seed: int = BOOTSTRAP_SEED) -> Path:
    """Write ``metrics.json`` (through ``write(path, text)``, an atomic writer, when given)."""
    from regkit.atomic import write_text

    text = json.dumps(learn2reg_metrics(samples, titles, seed), indent=1) + "\n"
    return (write or write_text)(Path(path), text)
