"""What running the MR branch once per case would save in training: an Attention-Reg step on batches of two starts
per case, the MR branch on the 4 distinct fixed crops, against the plain step on all 8.

    python bench/training_shared_fixed.py [--threads 2] [--rounds 3] [--repeats 3]

Not what ``regkit train`` does (its batches draw 8 starts of 8 cases): a measurement of a possible change. With
two starts per case, the MR branch's output for 8 inputs is its output for the 4 distinct ones, each repeated
twice, in training mode too (a batch norm's mean and biased variance over duplicated samples are those over the
distinct ones; only the running variance's n / (n − 1) differs), and the gradients through the repetition are the
sums the plain step computes. The script checks that on one step in float64 (the relative difference of all
gradients; in float32 the two differ by rounding, which the network amplifies), then times both steps as
``regkit train`` takes them (bf16 autocast, Adam, channels-last), alternating, on random inputs of the training
shape. Whether batches of two starts per case train as well is not measured here.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _util import machine, timed

from regkit.deep.layers import flush_denormals
from regkit.deep.networks import build_network


def loss_of(net, x: torch.Tensor, y: torch.Tensor, shared: bool) -> torch.Tensor:
    fmt = torch.channels_last_3d
    if shared:  # inputs 2k and 2k + 1 share their fixed channel
        mr = net.mr_branch(x[0::2, 0:1].contiguous(memory_format=fmt))
        mr = mr.repeat_interleave(2, dim=0).contiguous(memory_format=fmt)
    else:
        mr = net.mr_branch(x[:, 0:1].contiguous(memory_format=fmt))
    us = net.us_branch(x[:, 1:2].contiguous(memory_format=fmt))
    out = net.head(net.mr_attention(mr, us), net.us_attention(us, mr))
    return ((out.to(y.dtype) - y) ** 2).mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    flush_denormals()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = build_network("attention_reg").train()
    for m in net.modules():  # let the attention contribute (it starts as the identity)
        if isinstance(m, torch.nn.BatchNorm3d) and m.num_features == 32:
            torch.nn.init.constant_(m.weight, 0.5)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(8, 2, 32, 96, 96, generator=gen)
    x[1::2, 0] = x[0::2, 0]
    y = torch.randn(8, 6, generator=gen)

    print(f"machine: {machine()}, {a.threads} torch threads")
    for dtype in (torch.float64, torch.float32):
        net.to(dtype)
        grads = []
        for shared in (False, True):
            net.zero_grad(set_to_none=True)
            loss_of(net, x.to(dtype), y.to(dtype), shared).backward()
            grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
        diff = float((grads[1] - grads[0]).norm() / grads[0].norm())
        print(f"  gradients of all parameters in {str(dtype).removeprefix('torch.')}, shared against plain: "
              f"relative difference {diff:.1e}")

    opt = torch.optim.Adam(net.parameters(), 1e-5)

    def step(shared: bool) -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_of(net, x, y, shared)
        loss.backward()
        opt.step()

    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(a.rounds):
        for shared in (False, True):
            step(shared)  # warm-up after the switch
            times[shared].append(timed(lambda shared=shared: step(shared), a.repeats))
            print(f"  {'MR branch once per case' if shared else 'plain'}: {times[shared][-1]:.2f} s per step of 8",
                  flush=True)
    plain, shared = float(np.median(times[False])), float(np.median(times[True]))
    print(f"median over rounds: plain {plain:.2f} s, shared {shared:.2f} s per step: {plain / shared:.2f}x samples/s")


if __name__ == "__main__":
    main()
