"""Consistency measures computed without the ground truth, against the truth: which one flags the registrations
that end far from it (issue 31), at what cost.

    # the data, as scripts/make_training_data.sh renders it (runs/data/mr-promise12-val: links to its 5 held-out MRs)
    regkit synth --out runs/data/val-promise12 --from-mr runs/data/mr-promise12-val --cases 5 --seed 14 \
        --split-sizes 0,5,0
    regkit synth --out runs/data/test-prostate-mr --from-mr ../shared/data/prostate_mr --cases 6 --seed 2021 \
        --split-sizes 0,0,6
    nice -n 10 python bench/qa_flag.py run --set dev-pairs --methods mind --rs 4
    nice -n 10 python bench/qa_flag.py run --set dev-pairs --methods mi --restarts 2 --no-ic  # mi's current recipe
    nice -n 10 python bench/qa_flag.py run --set sim-dev --methods mi,attreg,attreg+mi,mind --starts 2
    nice -n 10 regkit compare --methods mi,mind,attreg,attreg+mi --init 8mm,16mm --data runs/data/test-prostate-mr \
        -k 2 -j 1 --qa --out runs/qa-test
    nice -n 10 python bench/qa_flag.py cost --set sim-test --methods mi,mind,attreg,attreg+mi
    python bench/qa_flag.py summary --measure "rr4 k=2" --compare runs/qa-test/results.csv > bench/results/qa_flag.txt

The raw rows behind bench/results/qa_flag.txt are kept beside it (the dev runs' rows without their matrices, and the
test run's results.csv): ``summary --rows bench/results/qa_flag_rows.csv --measure "rr4 k=2" --compare
bench/results/qa_flag_test_results.csv`` prints the same tables.

Sets (``--set``):

* ``dev-pairs``: the real multimodal MR pairs of ``../shared/data/real_multimodal_dev`` (no labels; the start
  protocol of its README, seed 0, k = 0..K-1, at 8 and 16 mm; the error is the point error against the reference);
* ``sim-dev``: real anatomy with simulated TRUS, the 5 held-out PROMISE12 MRs (``runs/data/val-promise12``:
  ``regkit synth --from-mr ... --seed 14``, as ``scripts/make_training_data.sh`` renders it); thresholds are
  chosen on ``dev-pairs`` and ``sim-dev`` only;
* ``sim-test``: the 3 MRs of ``../shared/data/prostate_mr``, 2 simulations each (``runs/data/test-prostate-mr``,
  seed 2021); starts as ``regkit compare`` draws them (seed 0, K per case and level); the error is the SRE.

For each registration (the *main* one, from its start) the candidates, each from the method that made the
result (for a chain, its last member, from that member's start):

* ``rs``: K_R restarts from the start perturbed by ``--rs`` mm (for a network: test-time augmentation);
* ``rr``: K_R restarts from the result perturbed by ``--rr`` mm;
* ``ic``: inverse consistency, iterative methods only: the swapped pair (moving → fixed) registered from the
  inverse of the result; ``dist`` is the mean ``|bwd(fwd(p)) - p|``;
* ``stage``: a cascade's last stage against the one before (free).

Every run's distance to the main result is the mean over the fixed image's region of interest
(:func:`regkit.consistency.roi_points`: the MR gland grown by 10 mm, or the overlap). One CSV row per run, written
when its registration finishes its candidates (``--out``; a rerun skips the registrations already there).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devpairs import PAIRS, load_pair, start

from regkit.consistency import distance, perturbations, roi_points
from regkit.transform import RigidTransform

ROOT = Path(__file__).resolve().parents[1]
SETS = {"sim-dev": ROOT / "runs/data/val-promise12", "sim-test": ROOT / "runs/data/test-prostate-mr"}
COLUMNS = ["set", "case", "method", "level", "k", "role", "j", "error", "dist", "status", "seconds", "matrix"]
TRUTH_MM = 2.0


def units(name: str, levels: list[float], starts: int):
    """(case id, level, k, case, start, error function) of a set."""
    from regkit.case import load_case

    if name == "dev-pairs":
        for pname in PAIRS:
            pair = load_pair(pname)
            case = load_case(pname, pair.fixed, pair.moving)
            for level in levels:
                for k in range(starts):
                    yield pname, level, k, case, start(pair, level, 0, k), pair.error
        return
    from regkit.dataset import load_dataset
    from regkit.sre import sre
    from regkit.starts import make_starts

    ds = load_dataset(SETS[name])
    for cid in ds.case_ids():
        case = ds.load(cid)
        for level in levels:
            for s in make_starts([case], f"{level:g}mm", starts, seed=0):
                yield cid, level, s.start_id, case, s.transform, \
                    (lambda t, c=case: float(sre(t, c.ground_truth, c.surface_points)))


def swapped_case(case):
    """The same pair the other way round: the moving image as the fixed one, the fixed image (and its label) as
    the moving one; the moving image is taken for an MR (regkit has no fixed modality to carry over). A moving
    label is left out: a user rarely has one."""
    from regkit.case import Case

    return Case(f"{case.case_id}-swapped", case.moving, case.fixed, None, moving_label=case.fixed_label,
                metadata={"moving_modality": "MR"})


_REGISTRARS: dict[str, object] = {}


def registrar(method: str):
    from regkit.registry import get_registrar

    if method not in _REGISTRARS:
        if "+" in method:
            opts = {f"{m}.threads": 1 for m in method.split("+") if m in ("mi", "mind")}
            opts |= {f"{m}.device": "cpu" for m in method.split("+") if m not in ("mi", "mind")}
        else:
            opts = {"threads": 1} if method in ("mi", "mind") else {"device": "cpu"}
        _REGISTRARS[method] = get_registrar(method, **opts)
    return _REGISTRARS[method]


def row(set_, cid, method, level, k, role, j, t: RigidTransform, error, dist, status, seconds) -> dict:
    return {"set": set_, "case": cid, "method": method, "level": level, "k": k, "role": role, "j": j,
            "error": f"{error:.4f}", "dist": f"{dist:.4f}", "status": status, "seconds": f"{seconds:.3f}",
            "matrix": " ".join(f"{v:.9g}" for v in np.asarray(t.matrix).ravel())}


def one(set_: str, cid: str, method: str, level: float, k: int, case, start_t: RigidTransform, error, a) -> list[dict]:
    reg = registrar(method)
    main = reg.register_many([(case, start_t)])[0]
    out = [row(set_, cid, method, level, k, "main", 0, main.transform, error(main.transform), 0.0, main.status,
               main.runtime)]
    probe, probe_start = reg, start_t
    members = getattr(reg, "members", None)
    if members:  # a chain: its last member, from that member's start
        probe, probe_start = members[-1], main.info["stage_transforms"][-2]
    deep = type(probe).__name__ == "DeepRegistrar"
    result = main.transform
    roi = roi_points(case, result)
    seed = zlib.crc32(f"{cid}/{method}/{level}/{k}".encode())
    runs = []  # (role, start): every restart in one register_many call (a network batches them)
    for role, base, radii in (("rs", probe_start, a.rs_deep if deep else a.rs), ("rr", result, a.rr)):
        for radius in radii:
            runs += [(f"{role}{radius:g}", base @ p) for p in perturbations(roi, radius, a.restarts, seed)]
    if runs:
        t0 = time.perf_counter()
        results = probe.register_many([(case, s) for _, s in runs])
        each = (time.perf_counter() - t0) / len(runs)
        counts: dict[str, int] = {}
        for (role, _), r in zip(runs, results, strict=True):
            j = counts[role] = counts.get(role, -1) + 1
            out.append(row(set_, cid, method, level, k, role, j, r.transform, error(r.transform),
                           distance(r.transform, result, roi), r.status, each if deep else r.runtime))
    stages = main.info.get("stage_transforms") if not members else main.info["stage_info"][-1].get("stage_transforms")
    if stages and len(stages) > 1:
        out.append(row(set_, cid, method, level, k, "stage", 0, stages[-2], error(stages[-2]),
                       distance(stages[-2], stages[-1], roi), "ok", 0.0))
    if not deep and a.ic:  # the swapped pair from the inverse of the result
        swapped = swapped_case(case)
        bwd = probe.register(swapped, result.inverse())
        back = bwd.transform.inverse()
        out.append(row(set_, cid, method, level, k, "ic", 0, back, error(back),
                       distance(bwd.transform @ result, RigidTransform.identity(), roi), bwd.status, bwd.runtime))
    return out


def run(a) -> None:
    import torch

    torch.set_num_threads(1)
    out = Path(a.out or ROOT / f"bench/out/qa_flag/rows-{a.set}.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        with out.open() as f:
            done = {(r["set"], r["case"], r["method"], float(r["level"]), int(r["k"])) for r in csv.DictReader(f)
                    if r["role"] == "main"}
    new = not out.exists()
    levels = [float(v) for v in a.levels.split(",")]
    with out.open("a", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        if new:
            w.writeheader()
        for cid, level, k, case, start_t, error in units(a.set, levels, a.starts):
            for method in a.methods.split(","):
                if (a.set, cid, method, level, k) in done:
                    continue
                rows = one(a.set, cid, method, level, k, case, start_t, error, a)
                w.writerows(rows)
                f.flush()
                m = rows[0]
                print(f"{a.set} {cid} {method} {level:g}mm k{k}: error {m['error']} mm, " +
                      ", ".join(f"{r['role']}{r['j']} {r['dist']}" for r in rows[1:]), flush=True)


def cost(a) -> None:
    """The flag's extra time as regkit computes it (:func:`regkit.consistency.check`), against the registration's,
    in the same process, interleaved: one row per (case, method, start)."""
    import torch

    from regkit.consistency import check

    torch.set_num_threads(1)
    rows = []
    for cid, _, k, case, start_t, _ in units(a.set, [8.0], a.starts):
        for method in a.methods.split(","):
            reg = registrar(method)
            t0 = time.perf_counter()
            result = reg.register_many([(case, start_t)])[0]
            t1 = time.perf_counter()
            (c,) = check(reg, [(case, start_t)], [result])
            t2 = time.perf_counter()
            rows.append((method, t1 - t0, t2 - t1))
            print(f"{a.set} {cid} {method} k{k}: registration {t1 - t0:.1f} s, consistency {t2 - t1:.1f} s "
                  f"({(t2 - t1) / (t1 - t0):.2f}×), {c.describe() if c else '-'}", flush=True)
    print("\n| method | registrations | median registration (s) | median consistency (s) | ratio of the sums |")
    print("|---|---|---|---|---|")
    for method in a.methods.split(","):
        r = np.array([(x, y) for m, x, y in rows if m == method])
        print(f"| {method} | {len(r)} | {np.median(r[:, 0]):.1f} | {np.median(r[:, 1]):.1f} | "
              f"{r[:, 1].sum() / r[:, 0].sum():.2f}× |")


def radii(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--set", required=True, choices=["dev-pairs", *SETS])
    r.add_argument("--methods", default="mi,mind")
    r.add_argument("--levels", default="8,16")
    r.add_argument("--starts", type=int, default=4, help="starts per case (pair) and level")
    r.add_argument("--restarts", type=int, default=3, help="restarts per candidate")
    r.add_argument("--rs", type=radii, default=(), help="perturbations of the start, mm (comma list)")
    r.add_argument("--rs-deep", type=radii, default=(2.0, 4.0), help="the same for a network (test-time augmentation)")
    r.add_argument("--rr", type=radii, default=(4.0,), help="perturbations of the result, mm (comma list)")
    r.add_argument("--no-ic", dest="ic", action="store_false")
    r.add_argument("--out", help="the rows' CSV [bench/out/qa_flag/rows-SET.csv]")
    c = sub.add_parser("cost")
    c.add_argument("--set", required=True, choices=["dev-pairs", *SETS])
    c.add_argument("--methods", default="mi,mind")
    c.add_argument("--starts", type=int, default=1)
    s = sub.add_parser("summary")
    s.add_argument("--rows", nargs="+", default=[str(ROOT / f"bench/out/qa_flag/rows-{n}.csv")
                                                 for n in ("dev-pairs", *SETS)])
    s.add_argument("--measure", help="the candidate regkit.consistency computes (e.g. 'rr4 k=2'): the flag's table")
    s.add_argument("--compare", nargs="*", default=[], help="results.csv of `regkit compare --qa` runs (test sets)")
    a = ap.parse_args()
    os.environ.setdefault("REGKIT_NO_PROGRESS", "1")
    {"run": run, "cost": cost, "summary": summary}[a.command](a)


# ------------------------------------------------------------------------------------------------ the summary
DEV_SETS = ("dev-pairs", "sim-dev")


def registrations(paths: list[Path]):
    """One row per registration: its error and status, and each candidate's measure (mm) and extra seconds."""
    import pandas as pd

    frame = pd.concat([pd.read_csv(p, dtype={"case": str}) for p in paths if p.exists()], ignore_index=True)
    frame["role"] = frame["role"].replace({"rs": "rs4", "rr": "rr4"})  # the first runs' names
    key = ["set", "case", "method", "level", "k"]
    main = frame[frame.role == "main"].set_index(key)[["error", "status", "seconds"]]
    extra = frame[frame.role != "main"]
    out = main.copy()
    for role, g in extra.groupby("role"):
        g = g.sort_values("j")
        by = g.groupby(key)
        out[f"{role}"] = by["dist"].mean()
        out[f"{role}_s"] = by["seconds"].sum()
        if g["j"].max() > 0:
            out[f"{role} max"] = by["dist"].max()
            out[f"{role} max_s"] = out[f"{role}_s"]
            for n in (1, 2):
                sub = g[g.j < n].groupby(key)
                out[f"{role} k={n}"] = sub["dist"].mean()
                out[f"{role} k={n}_s"] = sub["seconds"].sum()
    return out.reset_index()


def auc(measure, bad) -> float:
    """The probability that a bad registration's measure exceeds a good one's (ties count half)."""
    m, b = np.asarray(measure, float), np.asarray(bad, bool)
    hi, lo = m[b], m[~b]
    if not len(hi) or not len(lo):
        return float("nan")
    return float(((hi[:, None] > lo[None]).sum() + 0.5 * (hi[:, None] == lo[None]).sum()) / (len(hi) * len(lo)))


def best_threshold(measure, bad) -> float:
    """The threshold (mm) that maximises sensitivity minus the false-alarm rate (Youden's J); flagged means
    ``measure > threshold``. Ties go to the larger threshold (fewer alarms)."""
    m, b = np.asarray(measure, float), np.asarray(bad, bool)
    if b.all() or not b.any():
        return float("nan")
    cands = np.unique(np.round(m, 2))
    best, arg = -2.0, float("nan")
    for t in cands[::-1]:
        j = (m[b] > t).mean() - (m[~b] > t).mean()
        if j > best + 1e-12:
            best, arg = j, float(t)
    return arg


def rates(measure, bad, threshold: float) -> tuple[int, int, int, int]:
    """(bad flagged, bad, good flagged, good)."""
    m, b = np.asarray(measure, float), np.asarray(bad, bool)
    f = m > threshold
    return int((f & b).sum()), int(b.sum()), int((f & ~b).sum()), int((~b).sum())


def fraction(k: int, n: int) -> str:
    return f"{k}/{n}" + (f" ({100 * k / n:.0f} %)" if n else "")


def summary(a) -> None:
    import pandas as pd

    frame = registrations([Path(p) for p in a.rows])
    frame["bad"] = frame["error"] > TRUTH_MM
    frame["family"] = frame["method"].map(lambda m: "deep" if m in ("attreg",) else "iterative")
    measures = [c for c in frame.columns if c not in ("set", "case", "method", "level", "k", "error", "status",
                                                      "seconds", "bad", "family") and not c.endswith("_s")]
    dev = frame[frame.set.isin(DEV_SETS)]
    print(f"Registrations: {len(frame)} ({', '.join(f'{s} {n}' for s, n in frame.groupby('set').size().items())}); "
          f"bad = ending more than {TRUTH_MM:g} mm from the truth.\n")
    from regkit.consistency import RADIUS_MM, RESTARTS, THRESHOLD_MM

    print("## Candidates on the dev data (dev-pairs + sim-dev)\n\nAUC: the probability that a bad registration "
          "measures more than a good one. Best threshold: the one that maximises sensitivity minus the false-alarm "
          "rate on these registrations (so the rates at it are in-sample). Then the rates at regkit's threshold "
          f"({THRESHOLD_MM:g} mm). Extra time: the candidate's seconds over the registration's (a network's restarts "
          "run batched in one call, with the other candidates').\n")
    for family, methods in (("iterative", "mi, mind, and attreg+mi's last member (mi)"), ("deep", "attreg")):
        f = dev[dev.family == family]
        per = list(dict.fromkeys(f["method"]))
        print(f"### {family}: {methods}\n")
        print("| candidate | n (bad) | AUC | best threshold (mm) | bad flagged | good flagged | "
              f"bad flagged at {THRESHOLD_MM:g} mm | good flagged at {THRESHOLD_MM:g} mm | extra time | " +
              " | ".join(f"AUC {m}" for m in per) + " |")
        print("|---" * (9 + len(per)) + "|")
        for c in measures:
            h = f[f[c].notna()]
            if len(h) < 4 or h["method"].nunique() < len(per):
                continue
            t = best_threshold(h[c], h.bad)
            fb, nb, fg, ng = rates(h[c], h.bad, t)
            tb, _, tg, _ = rates(h[c], h.bad, THRESHOLD_MM)
            cost = h[f"{c}_s"].sum() / h["seconds"].sum() if f"{c}_s" in h and h["seconds"].sum() > 0 else 0.0
            aucs = [auc(h[h.method == m][c], h[h.method == m].bad) for m in per]
            best = (f"{t:.2f} | {fraction(fb, nb)} | {fraction(fg, ng)}" if np.isfinite(t) else "- | - | -")
            print(f"| {c} | {len(h)} ({nb}) | {auc(h[c], h.bad):.2f} | {best} | {fraction(tb, nb)} | "
                  f"{fraction(tg, ng)} | {cost:.2f}× | " + " | ".join(f"{v:.2f}" for v in aucs) + " |")
        print()
    if not a.measure:
        return
    frame["measure"] = frame[a.measure]
    dev = frame[frame.set.isin(DEV_SETS)]
    best = best_threshold(dev["measure"], dev["bad"])
    print(f"## The flag: {a.measure} > {THRESHOLD_MM:g} mm\n\nregkit.consistency: {RESTARTS} restarts from the result "
          f"perturbed by {RADIUS_MM:g} mm, suspect above THRESHOLD_MM = {THRESHOLD_MM:g} mm (the dev data's best "
          f"threshold for {a.measure}, all methods pooled: {best:.2f} mm). dev-pairs and sim-dev: the measure of this "
          "script's runs; sim-test: `regkit compare --qa` itself (its results.csv: consistency_mm, suspect).\n")
    frame = frame[["set", "method", "level", "error", "bad", "measure"]]
    for path in a.compare:
        from regkit.evaluation.store import ResultStore

        r = ResultStore(path).read()
        r = r[r["consistency_mm"].notna()]
        frame = pd.concat([frame, pd.DataFrame({
            "set": "sim-test", "method": r["method"], "level": r["init"].str.removesuffix("mm").astype(float),
            "error": r["final_sre"], "bad": r["final_sre"] > TRUTH_MM, "measure": r["consistency_mm"]})])
    print("| set | method | start | n | bad (> 2 mm) | bad flagged (sensitivity) | good flagged (false alarms) |"
          " median measure, good / bad (mm) |")
    print("|---|---|---|---|---|---|---|---|")
    for (set_, method, level), g in frame.groupby(["set", "method", "level"], sort=False):
        fb, nb, fg, ng = rates(g["measure"], g["bad"], THRESHOLD_MM)
        med = (f"{np.median(g.measure[~g.bad]):.2f}" if ng else "-") + " / " + \
            (f"{np.median(g.measure[g.bad]):.2f}" if nb else "-")
        print(f"| {set_} | {method} | {level:g} mm | {len(g)} | {nb} | {fraction(fb, nb)} | {fraction(fg, ng)} | "
              f"{med} |")
    print("\nBoth starting errors together:\n\n| set | method | n | bad (> 2 mm) | bad flagged (sensitivity) | "
          "good flagged (false alarms) |\n|---|---|---|---|---|---|")
    for (set_, method), g in [*frame.groupby(["set", "method"], sort=False),
                              *(((s, "all methods"), g) for s, g in frame.groupby("set", sort=False))]:
        fb, nb, fg, ng = rates(g["measure"], g["bad"], THRESHOLD_MM)
        print(f"| {set_} | {method} | {len(g)} | {nb} | {fraction(fb, nb)} | {fraction(fg, ng)} |")

if __name__ == "__main__":
    main()
