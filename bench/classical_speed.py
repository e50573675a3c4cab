"""Seconds per registration of ``mi`` and ``mind`` against SimpleITK's Mattes MI and the careful elastix recipe.

    python bench/classical_speed.py [--pairs ...] [--level 8] [--starts 4] [--threads 1]

The real dev pairs of ``../shared/data/real_multimodal_dev`` (their README's seeded starts), every configuration
in **one process, interleaved start by start**, so that the load of a shared machine falls on all of them alike;
ITK, SimpleITK and torch each get ``--threads`` threads. Times are per registration, ITK's start-up excluded.

* ``mi``: regkit's default recipe (elastix; see ``regkit/baselines/mi.py``).
* ``sitk``: SimpleITK's ``ImageRegistrationMethod`` with Mattes MI, given the same pyramid (the same Gaussian
  sigmas in mm, no shrinking), 2000 random samples at every level (a fixed set per level, as SimpleITK samples;
  ``mi``'s count before its coarse and finest levels got their own, ``bench/mi_precision.py``), the same masks
  and the same start; ``Euler3DTransform`` about the fixed image's centre, gradient descent with scales from
  physical shift (SimpleITK's notebooks' recipe), at most ``--sitk-iterations`` per level.
* ``careful``: the recipe the dev pairs' references were made with, as their README describes it (elastix,
  Mattes MI, 6000 samples, 1000 iterations per level, sigmas 2, 1 and 0 mm).
* ``mind``: regkit's default ``mind``; ``mind1000`` and ``mind-it60`` the variants weighed for its speed (1000
  samples per channel; 60 iterations at 3 mm).

Accuracy is read beside the time: the mean final error over the starts and the successes (< 2 mm). For ``mi``
the time is also split into elastix's pyramid preparation, its iterations per level and regkit's own work
(masks, images handed over, the convergence check).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

#: SimpleITK's random samples at every level (module docstring).
SITK_SAMPLES = 2000


def sitk_mi(fixed, moving, start, sigmas, samples, iterations, fixed_mask=None, moving_mask=None, bins=32):
    import SimpleITK as sitk

    from regkit.image import ImageGeometry
    from regkit.transform import RigidTransform

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    n = fixed.GetNumberOfPixels() if fixed_mask is None else int(
        np.count_nonzero(sitk.GetArrayViewFromImage(fixed_mask)))
    reg.SetMetricSamplingPercentage(min(1.0, samples / n), 121212)
    if fixed_mask is not None:
        reg.SetMetricFixedMask(fixed_mask)
    if moving_mask is not None:
        reg.SetMetricMovingMask(moving_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsGradientDescent(learningRate=1.0, numberOfIterations=iterations,
                                      convergenceMinimumValue=1e-6, convergenceWindowSize=10)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([1] * len(sigmas))
    reg.SetSmoothingSigmasPerLevel([float(s) for s in sigmas])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(start.to_sitk(ImageGeometry.of(fixed).center), inPlace=False)
    out = reg.Execute(sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32))
    return RigidTransform.from_sitk(out)


def careful(case, start):
    from regkit.baselines.elastix import run_elastix
    from regkit.baselines.recipes import rigid_parameter_map

    pm = rigid_parameter_map(smoothing_mm=(2.0, 1.0, 0.0), iterations=1000, spatial_samples=6000)
    return run_elastix([case.fixed], [case.moving], pm, start, threads=1).transform


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="prostatex0001_t2_adc,prostatex0218_t2_adc,spine_t2_t2s")
    ap.add_argument("--level", type=float, default=8.0)
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sitk-iterations", type=int, default=100)
    ap.add_argument("--configs", default="mi,sitk,careful,mind")
    a = ap.parse_args()
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(a.threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import SimpleITK as sitk
    import torch

    torch.set_num_threads(a.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(a.threads)
    from _util import machine
    from devpairs import load_pair, start

    from regkit import get_registrar
    from regkit.case import Case

    print(f"machine: {machine()}; {a.threads} thread(s) for ITK, SimpleITK and torch")
    configs = a.configs.split(",")
    regs = {"mi": get_registrar("mi", threads=a.threads), "mind": get_registrar("mind", threads=a.threads),
            # the variants weighed for mind's speed (BENCHMARKS.md): its earlier 1000 samples per channel, and
            # 60 iterations at the coarse scale instead of 100
            "mind1000": get_registrar("mind", threads=a.threads, spatial_samples=1000),
            "mind-it60": get_registrar("mind", threads=a.threads, preset="general", iterations=[60, 150])}
    mi_recipe = regs["mi"].recipes["general"]  # the dev pairs are MR: the general recipe
    rows = {c: [] for c in configs}
    split = []
    for name in a.pairs.split(","):
        pair = load_pair(name)
        case = Case(name, sitk.ReadImage(str(pair.fixed)), sitk.ReadImage(str(pair.moving)), None)
        for k in range(a.starts):
            s = start(pair, a.level, 0, k)
            for c in configs:
                t0 = time.perf_counter()
                status = "ok"
                if c in regs:
                    r = regs[c].register(case, s)
                    t, seconds, status = r.transform, r.runtime, r.status
                    if c == "mi":
                        split.append((seconds, sum(r.info["level_seconds"]), r.info["level_seconds"]))
                elif c == "sitk":
                    t = sitk_mi(case.fixed, case.moving, s, mi_recipe["smoothing_mm"],
                                SITK_SAMPLES, a.sitk_iterations)
                    seconds = time.perf_counter() - t0
                else:
                    t = careful(case, s)
                    seconds = time.perf_counter() - t0
                e = pair.error(t)
                rows[c].append({"pair": name, "k": k, "seconds": seconds, "error": e, "status": status})
                print(json.dumps({"config": c, "pair": name, "k": k, "seconds": round(seconds, 2),
                                  "error": round(e, 3), "status": status}), flush=True)
    print()
    print(f"{len(rows[configs[0]])} registrations per configuration ({a.pairs}; {a.level:g} mm starts)")
    print("| configuration | median s / registration | mean s | mean error (mm) | successes (< 2 mm) |")
    print("|---|---|---|---|---|")
    med = {}
    for c in configs:
        sec = np.array([r["seconds"] for r in rows[c]])
        err = np.array([r["error"] for r in rows[c]])
        med[c] = float(np.median(sec))
        print(f"| {c} | {med[c]:.2f} | {sec.mean():.2f} | {err.mean():.2f} | {int((err < 2).sum())}/{len(err)} |")
    for a_, b_ in (("mi", "sitk"), ("mi", "careful"), ("mind", "mi")):
        if a_ in med and b_ in med:
            print(f"ratio {a_} / {b_}: {med[a_] / med[b_]:.2f}")
    if split:
        total = np.median([s[0] for s in split])
        iterating = np.median([s[1] for s in split])
        levels = np.median(np.array([s[2] for s in split]), axis=0)
        print(f"mi, where the time goes (medians): {total:.2f} s in all; elastix iterating {iterating:.2f} s "
              f"(per level {', '.join(f'{v:.2f}' for v in levels)}); the rest (pyramid preparation, images and "
              f"masks handed over, the convergence check) {total - iterating:.2f} s")


if __name__ == "__main__":
    main()
