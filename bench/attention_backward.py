"""The attention's backward at a training step's size: torch's fused kernel against an explicit backward in chunks.

    python bench/attention_backward.py [--threads 2] [--repeats 3]

The backward of ``softmax(q kᵀ) v`` (scale 1) for (8, 9216, 16) tensors, Attention-Reg's training batch, is 41 % of a
training step (``bench/where_time_goes.py --training``). The fused CPU kernel
(``_scaled_dot_product_flash_attention_for_cpu_backward``) is timed against the textbook backward from the saved
output and log-sum-exp, computed in chunks of query rows so that each chunk's P × 9216 matrix stays in cache:
``S = q kᵀ − lse``, ``P = exp S``, ``dS = P ⊙ (dO vᵀ − rowsum(dO ⊙ O))``, ``dq = dS k``, ``dk = dSᵀ q``,
``dv = Pᵀ dO``; its matrix products in float32 or in bf16 (AMX on this CPU). Prints each one's median seconds
per call and its gradients' relative error against the fused kernel's.
"""

from __future__ import annotations

import argparse

import torch
from _util import machine, timed

N, P, C = 8, 9216, 16


def explicit_backward(q, k, v, out, lse, grad, chunk: int, dtype: torch.dtype):
    """dq, dk, dv of softmax(q kᵀ) v for (N, P, C) tensors, from the forward's output and log-sum-exp."""
    delta = (grad * out).sum(-1)
    dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
    k_low, v_low = k.to(dtype), v.to(dtype)
    for s in range(0, q.shape[1], chunk):
        qc, gc = q[:, s:s + chunk], grad[:, s:s + chunk]
        prob = torch.baddbmm(-lse[:, s:s + chunk, None], qc, k.transpose(1, 2)).exp_()
        ds = torch.bmm(gc.to(dtype), v_low.transpose(1, 2)).float().sub_(delta[:, s:s + chunk, None]).mul_(prob)
        prob_low, ds_low = prob.to(dtype), ds.to(dtype)
        dv += torch.bmm(prob_low.transpose(1, 2), gc.to(dtype)).float()
        dq[:, s:s + chunk] = torch.bmm(ds_low, k_low).float()
        dk += torch.bmm(ds_low.transpose(1, 2), qc.to(dtype)).float()
    return dq, dk, dv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    q, k, v = ((torch.randn(N, 1, P, C, generator=gen) * (1.5 if i < 2 else 1.0)) for i in range(3))
    grad = torch.randn(N, 1, P, C, generator=gen)
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    out, lse = flash(q, k, v, 0.0, False, attn_mask=None, scale=1.0)

    def fused():
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            grad, q, k, v, out, lse, 0.0, False, attn_mask=None, scale=1.0)

    reference = fused()
    print(f"machine: {machine()}, {a.threads} torch threads; (N, P, C) = ({N}, {P}, {C}), median of {a.repeats}\n")
    print("| backward | s per call | relative error of dq, dk, dv |")
    print("|---|---|---|")
    print(f"| fused kernel, float32 | {timed(fused, a.repeats):.3f} | (the reference) |")
    flat = [t[:, 0] for t in (q, k, v, out, grad)]
    for dtype in (torch.float32, torch.bfloat16):
        for chunk in (64, 256):
            def run(chunk=chunk, dtype=dtype):
                return explicit_backward(*flat[:4], lse[:, 0], flat[4], chunk, dtype)
            errors = [float((r[:, 0] - e).norm() / r.norm()) for r, e in zip(reference, run(), strict=True)]
            print(f"| explicit, chunks of {chunk} rows, products in {str(dtype).removeprefix('torch.')} | "
                  f"{timed(run, a.repeats):.3f} | {', '.join(f'{e:.1e}' for e in errors)} |")


if __name__ == "__main__":
    main()
