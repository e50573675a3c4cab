"""Two test-time variants of the Attention-Reg cascade, against the plain cascade, on validation cases.

    python bench/test_time_variants.py --data runs/data/val-prostate-mr --data builtin:val --init 8mm

- *stage 2 again*: the stage-2 network applied to its own result, up to ``--repeats`` times;
- *jitter averaging*: each stage runs on its estimate and on ``--jitter K`` - 1 copies moved by ``--jitter-mm``
  SRE (random rigid motions, as the starts are drawn), and the K results are averaged (mean matrix, its rotation
  made orthonormal by SVD).

Prints the mean over cases of each case's mean SRE (mm) after each. These are for choosing a default, so they run
on validation data (``builtin:val`` is the built-in benchmark's validation split), never on a test split.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _util import cases_of

from regkit.deep.methods import WEIGHTS_DIR
from regkit.deep.registrar import CaseInput, DeepRegistrar, apply_correction
from regkit.registry import get_registrar
from regkit.sre import sre
from regkit.starts import draw_perturbation, make_starts
from regkit.transform import RigidTransform


def mean_rigid(matrices: np.ndarray) -> np.ndarray:
    """The mean of (K, 4, 4) rigid matrices, with the rotation part made orthonormal."""
    m = matrices.mean(0)
    u, _, vt = np.linalg.svd(m[:3, :3])
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = u @ vt, m[:3, 3]
    return out


def jitter_averaged(reg: DeepRegistrar, case, start: RigidTransform, rng: np.random.Generator, k: int,
                    mm: float) -> list[RigidTransform]:
    """The estimate after each stage of the cascade, each stage run on its input and ``k`` - 1 copies moved by
    ``mm`` SRE, and the ``k`` results averaged."""
    averaged, out = start, []
    for net, cfg in zip(reg.networks[:2], reg.configs[:2], strict=True):
        inputs = CaseInput(case, reg.variant, reg.device, **cfg.input_options)
        copies = RigidTransform.from_matrix(np.stack([
            (RigidTransform.from_matrix(m) @ (draw_perturbation(rng, case.surface_points, mm) if j else
                                              RigidTransform.from_matrix(np.eye(4)))).matrix
            for m in averaged.matrix for j in range(k)]))
        moved = apply_correction(inputs.box, copies, reg.predict(net, inputs.inputs(copies), inputs.fixed))
        averaged = RigidTransform.from_matrix(np.stack([mean_rigid(p) for p in moved.matrix.reshape(-1, k, 4, 4)]))
        out.append(averaged)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", required=True, help="a dataset folder, or builtin:val")
    ap.add_argument("--weights", default=str(WEIGHTS_DIR), help="folder with attreg-stage1 and attreg-stage2")
    ap.add_argument("--init", default="8mm")
    ap.add_argument("--per-case", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=4, help="stage 2 applied up to this many times")
    ap.add_argument("--jitter", type=int, default=8, help="K: the estimate and K - 1 jittered copies")
    ap.add_argument("--jitter-mm", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    reg = get_registrar("attreg", checkpoint=f"{a.weights}/attreg-stage1", stage2=f"{a.weights}/attreg-stage2",
                        precision="float32")
    # stage 2 again: the cascade's own run_stages, over the stage-2 network listed (repeats - 1) more times
    reg.networks += [reg.networks[1]] * (a.repeats - 1)
    reg.configs += [reg.configs[1]] * (a.repeats - 1)
    for spec in a.data:
        cases, rows, t0 = cases_of(spec), [], time.perf_counter()
        starts = make_starts(cases, a.init, a.per_case, seed=0)
        for case in cases:
            start = RigidTransform.from_matrix(np.stack([s.transform.matrix for s in starts if s.case == case.case_id]))
            plain = [start, *reg.run_stages(case, start)]
            averaged = jitter_averaged(reg, case, start, np.random.default_rng(7), a.jitter, a.jitter_mm)
            rows.append([sre(t, case.ground_truth, case.surface_points).mean() for t in plain + averaged])
        r = np.array(rows).mean(0)
        plain, averaged = r[:-2], r[-2:]
        print(f"{spec}, {a.init}, {len(cases)} cases x {a.per_case} starts ({time.perf_counter() - t0:.0f} s): "
              f"start {plain[0]:.2f}; stage 1 {plain[1]:.2f}, stage 2 {plain[2]:.2f}, stage 2 again "
              + ", ".join(f"{x:.2f}" for x in plain[3:])
              + f"; jitter-averaged (K={a.jitter}, {a.jitter_mm:g} mm) stage 1 {averaged[0]:.2f}, "
                f"stage 2 {averaged[1]:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
