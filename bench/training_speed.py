"""Training speed: samples per second of each network with regkit's loop against a plain baseline loop.

    python bench/training_speed.py [--steps 3]
    python bench/training_speed.py --compile [--steps 5]   # regkit's loop with and without torch.compile

regkit's loop: pre-rendered cases, starts drawn by the protocol, the TRUS resampled in batched torch
(``grid_sample``), fused attention, bf16 autocast where the CPU supports it. The plain baseline loop, in the
same run: explicit attention, float32, and the TRUS resampled per sample with SimpleITK (as the original code
resampled per sample in Python). For each, the fraction of a step spent preparing data. Batch sizes are the
paper's (8 for Attention-Reg/Feature-Reg, 16 for DVNet) except MSReg, whose batch of 16 does not fit in this
machine's memory for training; it runs at batch 2. Median of ``--steps`` steps after one warm-up step.
"""

import argparse
import json
import tempfile
import time

import numpy as np
from _util import machine


def plain_inputs(ci, starts):
    """Per-sample SimpleITK resampling of the TRUS onto the crop grid (the baseline's data path)."""
    import SimpleITK as sitk
    import torch

    from regkit.image import intensity_window

    ref = sitk.Image([96, 96, 32], sitk.sitkFloat32)
    ref.SetSpacing(ci.box.spacing.tolist())
    ref.SetDirection(ci.box.axes.ravel().tolist())
    ref.SetOrigin(ci.points[0, 0, 0].tolist())
    lo, hi = intensity_window(ci.case.moving)
    moving = sitk.Cast(ci.case.moving, sitk.sitkFloat32)
    out = []
    for t in starts:
        a = sitk.GetArrayFromImage(sitk.Resample(moving, ref, t.to_sitk(), sitk.sitkLinear, 0.0))
        out.append(np.clip((a - lo) / (hi - lo), 0, 1))
    us = torch.from_numpy(np.stack(out))
    return torch.stack([ci.fixed.expand_as(us), us], dim=1)


def bench(method, batch, steps, plain, data, compile_=False):
    import torch

    from regkit.deep.correction import correction_target
    from regkit.deep.registrar import native_bf16
    from regkit.deep.training import Trainer, TrainOptions, load_training_data
    from regkit.starts import draw_start

    opts = TrainOptions(method=method, out=f"{tempfile.gettempdir()}/regkit-bench-train", data=data, batch_size=batch,
                        bf16=(not plain) and native_bf16(torch.device("cpu")), show_progress=False, compile=compile_)
    tr = Trainer(opts)
    if plain and hasattr(tr.model, "set_attention"):
        tr.model.set_attention("explicit")
    _, train_inputs, _ = load_training_data(opts.resolved(), tr.variant, "cpu")
    rng = np.random.default_rng(0)
    step_t, data_t, first = [], [], 0.0
    for k in range(steps + 1):
        t0 = time.perf_counter()
        cases = [train_inputs[i % len(train_inputs)] for i in rng.integers(0, len(train_inputs), batch)]
        if plain:
            xs, ys = [], []
            for ci in cases:
                start = draw_start(rng, ci.case.ground_truth, ci.case.surface_points, rng.uniform(0, 20))
                xs.append(plain_inputs(ci, [start]))
                ys.append(correction_target(ci.box, start, ci.case.ground_truth))
            x, y = torch.cat(xs), torch.tensor(np.stack(ys), dtype=torch.float32)
        else:
            x, y = tr._batch(cases, rng)
        t1 = time.perf_counter()
        tr.train_step(x, y)  # through the compiled module when compile_
        t2 = time.perf_counter()
        if k > 0:
            step_t.append(t2 - t0)
            data_t.append(t1 - t0)
        else:
            first = t2 - t0
    step = float(np.median(step_t))
    return {"samples_per_s": batch / step, "step_s": step, "data_fraction": float(np.median(data_t)) / step,
            "first_step_s": first}


def compare_compile(steps, data):
    out = {}
    for method, batch in (("attreg", 8), ("featreg", 8)):
        for comp in (False, True):
            r = bench(method, batch, steps, False, data, compile_=comp)
            out[f"{method}-{'compiled' if comp else 'eager'}"] = r
            print(f"  {method:8s} batch {batch} {'compiled' if comp else 'eager   '}: {r['step_s']:.2f} s/step, "
                  f"first step (incl. compilation) {r['first_step_s']:.1f} s", flush=True)
        eager, compiled = out[f"{method}-eager"], out[f"{method}-compiled"]
        gain = eager["step_s"] / compiled["step_s"]
        extra = compiled["first_step_s"] - eager["first_step_s"]
        if gain > 1:
            steps = extra / (eager["step_s"] - compiled["step_s"])
            verdict = f"compilation costs {extra:.0f} s, repaid after {steps:.0f} steps"
        else:
            verdict = "it does not pay"
        print(f"  {method}: compiled steps {gain:.2f}x eager; {verdict}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--data", default=None, help="dataset (default: the built-in benchmark)")
    ap.add_argument("--compile", action="store_true", help="measure torch.compile against eager instead")
    a = ap.parse_args()
    print(f"machine: {machine()}")
    if a.compile:
        print(json.dumps(compare_compile(a.steps, a.data)))
        return
    out = {}
    for method, batch in (("attreg", 8), ("featreg", 8), ("dvnet", 16), ("msreg", 2)):
        for plain in (False, True):
            r = bench(method, batch, a.steps, plain, a.data)
            out[f"{method}-{'plain' if plain else 'regkit'}"] = r
            print(f"  {method:8s} batch {batch:2d} {'plain ' if plain else 'regkit'}: {r['samples_per_s']:6.2f} "
                  f"samples/s ({r['step_s']:.2f} s/step, {100 * r['data_fraction']:.0f}% of it on data)", flush=True)
        ratio = out[f"{method}-regkit"]["samples_per_s"] / out[f"{method}-plain"]["samples_per_s"]
        print(f"  {method}: regkit loop {ratio:.2f}x the plain loop", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
