"""Seconds per registration of `mi` and `mind` with 1 and 2 threads, against SimpleITK's Mattes MI.

    python bench/classical_speed.py [--cases 4] [--starts 2]

Each configuration runs in its own process (ITK's thread pool cannot be resized once used, and the import
cost is excluded: it is paid when the registrar is built). The peer, SimpleITK's ImageRegistrationMethod with
Mattes MI (Euler3D, regular-step gradient descent, 32 bins, the same ~2048 random samples and prostate mask,
one resolution, 500 iterations at most), registers the same cases from the same starts in the same run. SRE is
reported beside the time so the speed ratio is read against accuracy.
"""

import argparse
import json

from _util import machine, run_child

CHILD = r"""
import json, os, time, numpy as np
os.environ["REGKIT_NO_PROGRESS"] = "1"
from regkit.benchmark import builtin_benchmark
from regkit.starts import make_starts
from regkit.sre import sre
ds = builtin_benchmark(("test",), show_progress=False)
cases = [ds.load(c) for c in ds.case_ids("test")[:{cases}]]
starts = make_starts(cases, "8mm", {starts}, seed=0)
by = {{c.case_id: c for c in cases}}
method, threads = "{method}", {threads}
times, errs = [], []
if method == "sitk":
    import SimpleITK as sitk
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    from regkit.baselines.elastix import dilated_mask
    for s in starts:
        c = by[s.case]
        f, m = sitk.Cast(c.fixed, sitk.sitkFloat32), sitk.Cast(c.moving, sitk.sitkFloat32)
        mask = dilated_mask(c.fixed_label, 15.0)
        t0 = time.perf_counter()
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(32)
        reg.SetMetricFixedMask(mask)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        n = float(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
        reg.SetMetricSamplingPercentage(min(1.0, 2048.0 / n), 121212)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-3, 500, relaxationFactor=0.7)
        reg.SetOptimizerScalesFromPhysicalShift()
        init = s.transform.to_sitk(c.surface_centroid)
        reg.SetInitialTransform(init, inPlace=False)
        out = reg.Execute(f, m)
        times.append(time.perf_counter() - t0)
        from regkit import RigidTransform
        errs.append(sre(RigidTransform.from_sitk(out), c.ground_truth, c.surface_points))
else:
    from regkit import get_registrar
    reg = get_registrar(method, threads=threads)
    for s in starts:
        c = by[s.case]
        r = reg.register(c, s.transform)
        times.append(r.runtime)
        errs.append(sre(r.transform, c.ground_truth, c.surface_points))
print(json.dumps({{"median_s": float(np.median(times)), "mean_s": float(np.mean(times)),
                  "sre_mean": float(np.mean(errs)), "n": len(times)}}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=4)
    ap.add_argument("--starts", type=int, default=2)
    a = ap.parse_args()
    print(f"machine: {machine()}")
    print(f"{a.cases} built-in test cases x {a.starts} starts at 8 mm SRE; seconds per registration (median)")
    rows = {}
    for method in ("mi", "mind", "sitk"):
        for threads in (1, 2):
            env = {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
            res, peak = run_child(CHILD.format(cases=a.cases, starts=a.starts, method=method, threads=threads), env)
            rows[(method, threads)] = res
            print(f"  {method:5s} {threads} thread(s): {res['median_s']:.2f} s median ({res['mean_s']:.2f} mean), "
                  f"final SRE {res['sre_mean']:.2f} mm, peak RSS {peak:.0f} MB", flush=True)
    for threads in (1, 2):
        r = rows[("mi", threads)]["median_s"] / rows[("sitk", threads)]["median_s"]
        print(f"  ratio mi / SimpleITK Mattes MI, {threads} thread(s): {r:.2f}")
    for method in ("mi", "mind", "sitk"):
        r = rows[(method, 1)]["median_s"] / rows[(method, 2)]["median_s"]
        print(f"  speed-up 1 -> 2 threads, {method}: {r:.2f}x")
    print(json.dumps({f"{m}-{t}": v for (m, t), v in rows.items()}))


if __name__ == "__main__":
    main()
