"""Attention-Reg on the CPU, before and after issue 13's speed-ups, in the same run (each in a fresh process).

    python bench/cpu_speedups.py [--what train,infer,curve] [--threads 2] [--repeats 2]

"before" is the code as it was: denormal floats left on, contiguous (channels-first) tensors, the attention
in bf16 under autocast (training), batch norms kept apart from their convolutions (inference). "after" is
regkit now: denormals flushed (FTZ/DAZ) before torch's threads start, channels-last 3-D tensors, the attention
in float32 under bf16 autocast, batch norms folded into the convolutions for inference, and the fixed (MR)
branch run once per case for all its starts in inference.

* ``train``: seconds per training step of Attention-Reg at batch 8 (bf16 autocast, Adam), median of 3 steps
  after a warm-up, on real batches (the built-in benchmark's first 8 training cases, fresh starts) from a fresh
  initialisation and from the bundled stage-1 weights (trained weights push the attention's softmax into
  denormals). Wall time and process CPU time.
* ``infer``: the bundled Attention-Reg cascade on the built-in test split, 3 starts per case at 8 mm (as
  ``regkit compare --methods attreg --init 8mm``): the per-sample runtime compare reports, and the final SREs
  (before and after must agree); also after with ``precision="bf16"`` (bf16 autocast, attention included),
  whose SREs may move.
* ``curve``: equal accuracy after the same samples: stage-1 training from the same weights (the bundled
  stage-1 weights, or a random initialisation) and seed, before and after, for ``--curve-steps`` steps of 8 on
  the built-in training split; validation SRE on the built-in validation split (3 starts per case).

Before and after alternate, ``--repeats`` times each, so load from other users falls on both alike.
"""

import argparse
import json
import tempfile
from pathlib import Path

from _util import machine, run_child

WEIGHTS = Path(__file__).resolve().parents[1] / "deep" / "weights"

PRELUDE = r"""
import json, os, sys, tempfile, time
import numpy as np
import torch
BEFORE = {before}
import regkit.deep.layers as layers
if BEFORE:
    layers.flush_denormals = lambda: None
    layers.fold_batch_norms = lambda m: m
else:
    layers.flush_denormals()
torch.set_num_threads({threads})

def configure(net):
    if BEFORE and hasattr(net, "set_channels_last"):
        net.set_channels_last(False)
        for block in (getattr(net, "mr_attention", None), getattr(net, "us_attention", None)):
            if block is not None:
                block.float32_attention = False
    return net
"""

TRAIN = PRELUDE + r"""
from regkit.deep.checkpoint import load_into, read_tensors
from regkit.deep.crop import CaseInput
from regkit.deep.methods import WEIGHTS_DIR
from regkit.deep.training import Trainer, TrainOptions
from regkit.benchmark import builtin_benchmark
ds = builtin_benchmark(("train", "val"), show_progress=False)
tr = Trainer(TrainOptions(method="attreg", out=os.path.join(tempfile.gettempdir(), "regkit-bench-speedups"),
                          batch_size=8, bf16=True, show_progress=False))
if "{weights}" == "bundled":
    p = WEIGHTS_DIR / "attreg-stage1.safetensors"
    load_into(tr.model, read_tensors(p), p, "attention_reg")
configure(tr.model)
cases = [CaseInput(ds.load(c), "image", compact=True) for c in ds.case_ids("train")[:8]]
rng = np.random.default_rng(0)
walls, cpus = [], []
for k in range(4):
    w, c = time.perf_counter(), time.process_time()
    tr.train_step(*tr._batch(cases, rng))
    if k:
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
print(json.dumps({{"wall_s": float(np.median(walls)), "cpu_s": float(np.median(cpus))}}))
"""

INFER = PRELUDE + r"""
from regkit.benchmark import builtin_benchmark
from regkit.registry import get_registrar
from regkit.sre import sre
from regkit.starts import make_starts
ds = builtin_benchmark(("test",), show_progress=False)
reg = get_registrar("attreg", precision="float32" if BEFORE else "{precision}")  # before: float32, as it was
for net in reg.networks:
    configure(net)
if BEFORE:  # the fixed branch per input, as it was: predict without the shared fixed channel
    reg.predict = lambda net, inputs, fixed=None, plain=reg.predict: plain(net, inputs)
cases = [ds.load(c) for c in ds.case_ids("test")]
starts = make_starts(cases, "8mm", 3, seed=0)
by_id = {{c.case_id: c for c in cases}}
pairs = [(by_id[s.case], s.transform) for s in starts]
reg.register_many(pairs[:3])  # warm-up
c0 = time.process_time()
res = reg.register_many(pairs)
cpu = (time.process_time() - c0) / len(pairs)
failed = [r.message for r in res if not r.ok]
assert not failed, failed[0]
sres = [float(sre(r.transform, c.ground_truth, c.surface_points)) for r, (c, _) in zip(res, pairs)]
print(json.dumps({{"runtime_s": float(np.mean([r.runtime for r in res])), "cpu_s": cpu, "sre": sres}}))
"""

CURVE = PRELUDE + r"""
from regkit.deep.training import Trainer, TrainOptions
torch.manual_seed(0)
tr = Trainer(TrainOptions(method="attreg", out="{out}", batch_size=8, bf16=True, show_progress=False,
                          epochs=1, samples_per_epoch={samples}, seed=0, val_starts=3, init_weights={init}))
configure(tr.model)
tr.net = tr.model
s = tr.run()
print(json.dumps({{"val_sre_start": s["val_sre_start"], "val_sre_last": s["val_sre_last"],
                  "train_s": s["train_seconds"], "samples": s["samples"]}}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--what", default="train,infer,curve")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--curve-steps", type=int, default=30)
    ap.add_argument("--curve-init", choices=("bundled", "random"), default="bundled",
                    help="start the curve from the bundled stage-1 weights (default) or from random weights")
    a = ap.parse_args()
    what = a.what.split(",")
    print(f"machine: {machine()}, {a.threads} torch threads", flush=True)
    out = {}
    if "train" in what:
        for weights in ("init", "bundled"):
            runs = {"before": [], "after": []}
            for _ in range(a.repeats):
                for version in ("before", "after"):
                    r, _ = run_child(TRAIN.format(before=version == "before", threads=a.threads, weights=weights))
                    runs[version].append(r)
                    print(f"  train step, {weights} weights, {version}: {r['wall_s']:.2f} s wall, "
                          f"{r['cpu_s']:.2f} s CPU per step of 8", flush=True)
            med = {v: {k: sorted(x[k] for x in rs)[len(rs) // 2] for k in ("wall_s", "cpu_s")}
                   for v, rs in runs.items()}
            print(f"  train, {weights} weights: after/before samples per second = "
                  f"{med['before']['wall_s'] / med['after']['wall_s']:.2f}x (wall), "
                  f"{med['before']['cpu_s'] / med['after']['cpu_s']:.2f}x (CPU time); after: "
                  f"{8 / med['after']['wall_s']:.2f} samples/s, before {8 / med['before']['wall_s']:.2f}",
                  flush=True)
            out[f"train-{weights}"] = runs
    if "infer" in what:
        runs = {"before": [], "after": [], "after-bf16": []}
        for _ in range(a.repeats):
            for version in runs:
                r, _ = run_child(INFER.format(before=version == "before", threads=a.threads,
                                              precision="bf16" if version == "after-bf16" else "float32"))
                runs[version].append(r)
                print(f"  cascade inference, {version}: {r['runtime_s']:.3f} s per sample (compare's runtime), "
                      f"{r['cpu_s']:.3f} s CPU; mean SRE {sum(r['sre']) / len(r['sre']):.4f} mm", flush=True)
        import numpy as np

        before_sre = np.array(runs["before"][0]["sre"])
        for version in ("after", "after-bf16"):
            for key in ("runtime_s", "cpu_s"):
                b = np.median([r[key] for r in runs["before"]])
                f = np.median([r[key] for r in runs[version]])
                print(f"  cascade inference, {version} against before, {key}: {f / b:.2f} ({b / f:.2f}x faster)")
            sre = np.array(runs[version][0]["sre"])
            print(f"  {version}: largest SRE difference {np.abs(sre - before_sre).max():.2e} mm, mean SRE "
                  f"{sre.mean():.4f} against {before_sre.mean():.4f} mm", flush=True)
        out["infer"] = runs
    if "curve" in what:
        import shutil

        for version in ("before", "after"):
            curve_out = Path(tempfile.gettempdir()) / f"regkit-bench-curve-{version}"
            shutil.rmtree(curve_out, ignore_errors=True)
            init = None if a.curve_init == "random" else repr(str(WEIGHTS / "attreg-stage1"))
            r, _ = run_child(CURVE.format(before=version == "before", threads=a.threads, init=init,
                                          out=str(curve_out), samples=8 * a.curve_steps))
            print(f"  {r['samples']} samples, {version}: validation SRE {r['val_sre_start']:.3f} -> "
                  f"{r['val_sre_last']:.3f} mm in {r['train_s']:.0f} s", flush=True)
            out[f"curve-{version}"] = r
    print(json.dumps(out))


if __name__ == "__main__":
    main()
