"""Where an Attention-Reg forward pass spends its time on the CPU, layer by layer, against the machine's
matrix-multiply rate measured in the same run.

    python bench/where_time_goes.py [--threads 2] [--batch 3] [--repeats 5] [--precision float32]
    python bench/where_time_goes.py --training [--threads 2] [--repeats 3]

One inference stage of the bundled Attention-Reg (channels-last, batch norms folded, as ``regkit compare`` runs
it) on random inputs of the network's shape, batch ``--batch`` (``regkit compare``'s batch: the starts of one
case). Each layer's time is taken with forward hooks (median over ``--repeats`` passes after a warm-up); its
arithmetic is counted (a convolution: 2·Cin·Cout·k³ per output voxel; the attention: 2·2·P²·c for QKᵀ and
the weighted sum, and P² exponentials). The reference rate is a float32 matrix product of the attention's
size class (``(3·9216) × 512 × 512``) and a square one (2048³), timed in the same process. The output says,
per layer kind: seconds per sample, share of the pass, GFLOP/s, and that rate as a fraction of the matrix
product's.

``--training``: one Attention-Reg training step as ``regkit train`` takes it (batch 8 of the built-in benchmark's
training cases, the bundled stage-1 weights, bf16 autocast where the CPU has it, Adam), profiled with
``torch.profiler``: the self time of each operator kind, forward and backward apart, summed over ``--repeats``
steps after a warm-up step. Then the fused attention alone at the step's size (8 × 9216 positions × 16
channels), forward and backward, in float32 and in bf16 (median of ``--repeats``): why the step keeps it in
float32. Its rate is given against a float32 matrix product's in the same run, and so is what the step would
take if its two attention blocks ran at that rate: the most a faster attention kernel could give.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict

import numpy as np


def matmul_rate(repeats: int) -> dict[str, float]:
    import torch

    out = {}
    for name, (m, k, n) in {"square 2048": (2048, 2048, 2048), "tall 27648x512x512": (27648, 512, 512)}.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        out[name] = 2 * m * k * n / float(np.median(times)) / 1e9
    return out


OPERATOR_KINDS = (  # (substring of a profiler operator name, kind), first match wins
    ("flash_attention_for_cpu_backward", "attention, backward"), ("flash_attention", "attention, forward"),
    ("batch_norm_backward", "batch norm, backward"), ("batch_norm", "batch norm, forward"),
    ("convolution_backward", "convolution, backward"), ("convolution", "convolution, forward"),
    ("max_pool3d_with_indices_backward", "max pool, backward"), ("max_pool", "max pool, forward"),
    ("threshold_backward", "ReLU, backward"), ("clamp_min", "ReLU, forward"), ("relu", "ReLU, forward"),
    ("grid_sampler", "resampling the TRUS (data)"), ("Adam", "optimiser"), ("fill_", "zero fills"),
)


def training_step(threads: int, repeats: int) -> None:
    import torch
    import torch.nn.functional as F
    from _util import machine
    from torch.profiler import ProfilerActivity, profile

    from regkit.benchmark import builtin_benchmark
    from regkit.deep.checkpoint import load_into, read_tensors
    from regkit.deep.crop import CaseInput
    from regkit.deep.methods import WEIGHTS_DIR
    from regkit.deep.training import Trainer, TrainOptions

    ds = builtin_benchmark(("train",), show_progress=False)
    tr = Trainer(TrainOptions(method="attreg", out=f"{tempfile.gettempdir()}/regkit-where-time-goes", batch_size=8,
                              show_progress=False))
    path = WEIGHTS_DIR / "attreg-stage1.safetensors"
    load_into(tr.model, read_tensors(path), path, "attention_reg")
    cases = [CaseInput(ds.load(c), "image", compact=True) for c in ds.case_ids("train")[:8]]
    rng = np.random.default_rng(0)

    def step() -> None:
        tr.train_step(*tr._batch(cases, rng))

    step()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            step()
    wall = (time.perf_counter() - t0) / repeats
    per_kind: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        kind = next((k for sub, k in OPERATOR_KINDS if sub in e.key), "everything else")
        per_kind[kind] += e.self_cpu_time_total / 1e6 / repeats
    total = sum(per_kind.values())
    print(f"machine: {machine()}; {threads} torch thread(s); Attention-Reg training step, batch 8, "
          f"bf16 autocast {tr.opts.bf16}; {wall:.2f} s per step (wall, under the profiler), "
          f"{8 / wall:.2f} samples/s\n")
    print("| operators | s per step | share |")
    print("|---|---|---|")
    for k in sorted(per_kind, key=per_kind.get, reverse=True):
        print(f"| {k} | {per_kind[k]:.3f} | {per_kind[k] / total:.0%} |")
    rates = matmul_rate(repeats)
    ref = rates["tall 27648x512x512"]
    # forward: the products QK^T and PV; backward: QK^T again (the kernel recomputes P), dP = dO V^T, dV = P^T dO,
    # dQ = dS K and dK = dS^T Q
    products = {"forward": 2, "backward": 5}
    flop = 8 * 2 * 9216 * 9216 * 16  # one product, the whole batch
    print("\nmatrix product, float32: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in rates.items()))
    print("the fused attention alone, (8, 9216, 16), scale 1: median seconds per call, and its rate against the "
          "tall matrix product's (forward: 2 products of 8 x 9216 x 9216 x 16; backward: 5)")
    print("| dtype | forward | backward | forward GFLOP/s (of the matmul rate) | backward GFLOP/s (of it) |")
    print("|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = ((torch.randn(8, 1, 9216, 16, generator=gen) * (1.5 if i < 2 else 1.0)).to(dtype).requires_grad_()
                   for i in range(3))
        grad = torch.randn(8, 1, 9216, 16, generator=gen).to(dtype)
        fwd, bwd = [], []
        for r in range(repeats + 1):
            t0 = time.perf_counter()
            out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
            t1 = time.perf_counter()
            out.backward(grad)
            if r:
                fwd.append(t1 - t0)
                bwd.append(time.perf_counter() - t1)
        t = {"forward": float(np.median(fwd)), "backward": float(np.median(bwd))}
        r = {k: products[k] * flop / t[k] / 1e9 for k in t}
        print(f"| {str(dtype).removeprefix('torch.')} | {t['forward']:.3f} | {t['backward']:.3f} | "
              f"{r['forward']:.1f} ({r['forward'] / ref:.2f}) | {r['backward']:.1f} ({r['backward'] / ref:.2f}) |")
    # the step's two attention blocks, in float32, as if they ran at the matrix product's rate
    at_rate = 2 * sum(products.values()) * flop / ref / 1e9
    profiled = per_kind["attention, forward"] + per_kind["attention, backward"]
    bound = wall - profiled + at_rate
    print(f"\nif the step's two attention blocks ran at the matrix product's rate ({at_rate:.2f} s instead of "
          f"{profiled:.2f} s under the profiler), a step would take {bound:.2f} s: {wall / bound:.2f}x the samples/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precision", default="float32", choices=("float32", "bf16"))
    ap.add_argument("--training", action="store_true", help="profile a training step instead (see above)")
    a = ap.parse_args()
    import torch
    from _util import machine

    from regkit.deep import layers

    layers.flush_denormals()
    torch.set_num_threads(a.threads)
    if a.training:
        training_step(a.threads, a.repeats)
        return
    from regkit import get_registrar
    from regkit.deep.attention import CrossModalAttention

    reg = get_registrar("attreg", precision=a.precision)
    net = reg.networks[0]
    shape = reg.configs[0].input_options["shape"]
    x = torch.rand(a.batch, 2, *shape)
    kinds: dict[torch.nn.Module, str] = {}
    flops: dict[torch.nn.Module, float] = {}
    exps: dict[torch.nn.Module, float] = {}
    for m in net.modules():
        if isinstance(m, torch.nn.Conv3d):
            kinds[m] = f"conv {m.in_channels}->{m.out_channels} k{m.kernel_size[0]}"
        elif isinstance(m, torch.nn.MaxPool3d):
            kinds[m] = "max pool"
        elif isinstance(m, CrossModalAttention):
            kinds[m] = "attention (softmax(QK^T)V only)"
        elif isinstance(m, torch.nn.Linear):
            kinds[m] = "fully connected"
    seconds: dict[str, list[float]] = defaultdict(list)
    start: dict[torch.nn.Module, float] = {}

    def pre(m, inp):
        start[m] = time.perf_counter()

    def post(m, inp, out):
        dt = time.perf_counter() - start[m]
        if isinstance(m, torch.nn.Conv3d):
            flops[m] = 2 * m.in_channels * m.out_channels * np.prod(m.kernel_size) * out[0].numel() / m.out_channels
        seconds[kinds[m]].append(dt)

    hooks = []
    for m in kinds:
        if isinstance(m, CrossModalAttention):
            continue
        hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    # the attention proper (not its 1x1 convolutions, counted as convolutions): time `attend` itself
    import regkit.deep.attention as att

    plain_attend = att.attend

    def timed_attend(q, k, v, implementation="fused"):
        t0 = time.perf_counter()
        y = plain_attend(q, k, v, implementation)
        seconds["attention (softmax(QK^T)V only)"].append(time.perf_counter() - t0)
        p, c = q.shape[1], q.shape[2]
        flops["attention"] = 2 * 2 * p * p * c
        exps["attention"] = p * p
        return y

    att.attend = timed_attend
    totals = []
    with torch.no_grad():
        for r in range(a.repeats + 1):
            seconds.clear()
            t0 = time.perf_counter()
            reg.predict(net, x)
            total = time.perf_counter() - t0
            if r == 0:
                continue  # warm-up
            totals.append((total, {k: sum(v) for k, v in seconds.items()}, {k: len(v) for k, v in seconds.items()}))
    for h in hooks:
        h.remove()
    att.attend = plain_attend
    rates = matmul_rate(a.repeats)
    ref = rates["tall 27648x512x512"]
    total = float(np.median([t[0] for t in totals]))
    per_kind = {k: float(np.median([t[1][k] for t in totals])) for k in totals[0][1]}
    calls = totals[0][2]
    flop_kind: dict[str, float] = defaultdict(float)
    for m, f in flops.items():
        if m == "attention":  # per batch item and call
            flop_kind["attention (softmax(QK^T)V only)"] = f * calls["attention (softmax(QK^T)V only)"]
        else:  # per batch item
            flop_kind[kinds[m]] += f
    print(f"machine: {machine()}; {a.threads} torch thread(s); batch {a.batch}; precision {a.precision}")
    print("matrix product, float32: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in rates.items()))
    print(f"one stage's forward pass: {total / a.batch * 1000:.1f} ms per sample\n")
    print("| layers | calls per pass | ms per sample | share | GFLOP per sample | GFLOP/s | of the matmul rate |")
    print("|---|---|---|---|---|---|---|")
    for k in sorted(per_kind, key=per_kind.get, reverse=True):
        s = per_kind[k] / a.batch
        g = flop_kind.get(k, 0.0) / 1e9  # per sample
        rate = f"{g / s:.1f}" if g else "-"
        frac = f"{g / s / ref:.2f}" if g else "-"
        print(f"| {k} | {calls[k]} | {s * 1000:.1f} | {per_kind[k] / total:.0%} | {g:.3f} | {rate} | {frac} |")
    rest = total - sum(per_kind.values())
    print(f"| everything else (batch norms, ReLUs, reshapes, layout changes) | | {rest / a.batch * 1000:.1f} | "
          f"{rest / total:.0%} | | | |")
    if exps:
        print(f"\nthe attention also takes {exps['attention'] / 1e6:.0f} M exponentials per call (P^2, P = "
              f"{int(np.sqrt(exps['attention']))}) and sample, {calls.get('attention (softmax(QK^T)V only)', 0)}"
              " call(s) per stage")


if __name__ == "__main__":
    main()
