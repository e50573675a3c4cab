"""CPU inference time per sample at batch 1 and 16, and peak memory, for each network; fused against explicit
attention in the same run.

    python bench/inference.py

Each configuration runs in a fresh process (peak RSS is that process's maximum, including torch itself).
Inputs are random (2, 32, 96, 96) volumes; times are the median of 3 timed forward passes after one warm-up.
"""

import json

from _util import machine, run_child

CHILD = r"""
import json, time, torch
torch.set_num_threads({threads})
from regkit.deep.networks import build_network
net = build_network("{arch}", attention="{attention}").eval()
x = torch.rand({batch}, 2, 32, 96, 96)
with torch.no_grad():
    net(x)
    ts = []
    for _ in range(3):
        t = time.perf_counter(); net(x); ts.append(time.perf_counter() - t)
ts.sort()
print(json.dumps({{"per_sample_s": ts[1] / {batch}}}))
"""


def main():
    import torch

    threads = torch.get_num_threads()
    print(f"machine: {machine()}, {threads} torch threads")
    results = {}
    configs = [("attention_reg", "fused"), ("attention_reg", "explicit"), ("feature_reg", "fused"),
               ("msreg", "fused"), ("dvnet", "fused")]
    for arch, attention in configs:
        for batch in (1, 16):
            res, peak = run_child(CHILD.format(arch=arch, attention=attention, batch=batch, threads=threads))
            results[(arch, attention, batch)] = (res["per_sample_s"], peak)
            label = f"{arch}{' (explicit attention)' if attention == 'explicit' else ''}"
            print(f"  {label:38s} batch {batch:2d}: {1000 * res['per_sample_s']:8.1f} ms/sample, "
                  f"peak RSS {peak:7.0f} MB", flush=True)
    for batch in (1, 16):
        f, e = results[("attention_reg", "fused", batch)], results[("attention_reg", "explicit", batch)]
        print(f"  fused vs explicit attention, batch {batch}: {e[0] / f[0]:.2f}x faster, "
              f"{e[1] / f[1]:.2f}x less peak memory")
    print(json.dumps({f"{a}-{t}-{b}": v for (a, t, b), v in results.items()}))


if __name__ == "__main__":
    main()
