"""Where a deep cascade's stage 2 settles: applied again and again, from 8 mm starts and from the truth itself.

    python bench/fixed_point.py --method attreg --data runs/data/val-prostate-mr --data runs/data/val-promise12 \
        --data builtin:val --data runs/data/promise12 --cases 8

A network that has learned to register has its fixed point at the truth: started there, it stays there (up to its
noise), and applied again to its own result it does not wander off. For every case this runs

- *the cascade, then stage 2 again*: ``--per-case`` starts at ``--init``, stage 1, then stage 2 ``--passes`` times;
- *stage 2 from the truth*: the ground truth itself as the start, stage 2 ``--passes`` times;

and prints the mean SRE (mm) after each pass, and per case the mean error vector at the last pass from the truth
(the mean over the prostate surface of T_est(p) − T_gt(p), in the MR's physical frame, mm): a drift that points the
same way for every start of a case is a bias of the network on that case, not noise. These are for diagnosis and
for choosing defaults, so they run on validation and training data, never on a test split.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from _util import cases_of

from regkit.deep.methods import WEIGHTS_DIR
from regkit.deep.registrar import DeepRegistrar
from regkit.registry import get_registrar
from regkit.sre import sre
from regkit.starts import make_starts
from regkit.transform import RigidTransform


def repeated(reg: DeepRegistrar, stages: list[int]) -> DeepRegistrar:
    """The same registrar running its stages in the order ``stages`` (0-based; repeats allowed)."""
    out = copy.copy(reg)
    out.networks = [reg.networks[k] for k in stages]
    out.configs = [reg.configs[k] for k in stages]
    return out


def bias_vector(estimates: RigidTransform, case) -> np.ndarray:
    """(n, 3): for each estimate, the mean over the surface points of T_est(p) − T_gt(p)."""
    p = case.surface_points
    truth = case.ground_truth.apply(p)
    return np.stack([(RigidTransform.from_matrix(m).apply(p) - truth).mean(0) for m in estimates.matrix])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", required=True, help="a dataset folder, or builtin:val")
    ap.add_argument("--method", default="attreg", help="a two-stage deep method [attreg]")
    ap.add_argument("--weights", default=str(WEIGHTS_DIR), help="folder with <method>-stage1 and -stage2")
    ap.add_argument("--stage1", help="stage-1 checkpoint (instead of the one in --weights)")
    ap.add_argument("--stage2", help="stage-2 checkpoint (instead of the one in --weights)")
    ap.add_argument("--init", default="8mm")
    ap.add_argument("--per-case", type=int, default=3)
    ap.add_argument("--passes", type=int, default=6, help="stage 2 applied this many times")
    ap.add_argument("--cases", type=int, default=0, help="only the first N cases of each dataset (0: all)")
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    reg = get_registrar(a.method, checkpoint=a.stage1 or f"{a.weights}/{a.method}-stage1",
                        stage2=a.stage2 or f"{a.weights}/{a.method}-stage2", precision=a.precision)
    cascade = repeated(reg, [0] + [1] * a.passes)
    from_truth = repeated(reg, [1] * a.passes)
    print(f"{a.method}: stage 1 {a.stage1 or a.weights}, stage 2 {a.stage2 or a.weights}; {a.precision}", flush=True)
    for spec in a.data:
        cases, t0 = cases_of(spec), time.perf_counter()
        cases = cases[: a.cases] if a.cases else cases
        starts = make_starts(cases, a.init, a.per_case, seed=0)
        rows_c, rows_t = [], []
        for case in cases:
            start = RigidTransform.from_matrix(np.stack([s.transform.matrix for s in starts if s.case == case.case_id]))
            truth = RigidTransform.from_matrix(case.ground_truth.matrix[None])
            est_c = [start, *cascade.run_stages(case, start)]
            est_t = [truth, *from_truth.run_stages(case, truth)]
            rows_c.append([sre(t, case.ground_truth, case.surface_points).mean() for t in est_c])
            rows_t.append([sre(t, case.ground_truth, case.surface_points).mean() for t in est_t])
            drift = bias_vector(est_t[-1], case)[0]
            spread = bias_vector(est_c[-1], case)
            print(f"  {case.case_id}: cascade {' '.join(f'{x:.2f}' for x in rows_c[-1])} | from the truth "
                  f"{' '.join(f'{x:.2f}' for x in rows_t[-1])} | error vector at the last pass from the truth "
                  f"({', '.join(f'{v:+.1f}' for v in drift)}) mm, from the {a.init} starts "
                  f"({', '.join(f'{v:+.1f}' for v in spread.mean(0))}) ± {np.linalg.norm(spread.std(0)):.1f}",
                  flush=True)
        c, t = np.mean(rows_c, 0), np.mean(rows_t, 0)
        print(f"{spec}, {len(cases)} cases, {a.per_case} starts of {a.init} ({time.perf_counter() - t0:.0f} s): "
              f"start {c[0]:.2f}, stage 1 {c[1]:.2f}, stage 2 passes {' '.join(f'{x:.2f}' for x in c[2:])} | "
              f"stage 2 from the truth, passes {' '.join(f'{x:.2f}' for x in t[1:])}", flush=True)


if __name__ == "__main__":
    main()
