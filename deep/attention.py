"""The cross-modal attention block (Song et al. 2021, Eq. 1).

For a *primary* feature map P (this branch) and a *cross-modal* map C (the other branch), both
``(N, 32, D, H, W)`` on the same grid::

    y_i = Σ_j exp(θ(c_i)ᵀ φ(p_j)) g(p_j) / Σ_j exp(θ(c_i)ᵀ φ(p_j)),     z = W_z(y) + P

so queries come from the other modality, keys and values from this one; ``y_i`` (a position of the other
branch's grid) is added back at the same grid position of this branch. θ, φ and g are 1×1×1 convolutions to
16 channels, ``W_z`` a 1×1×1 convolution back to 32 channels followed by batch norm. The dot products are not
scaled (scale = 1), as in Eq. 1.

The attention is computed with ``scaled_dot_product_attention``, whose fused kernel never builds the
``P × P`` (9216 × 9216) matrix; ``attention="explicit"`` computes ``softmax(QKᵀ)V`` literally, for tests and
benchmarks. Under bf16 autocast the attention still runs in float32 (``float32_attention``): on the CPU the
fused kernel's bf16 backward is slower than its float32 one (``bench/training_speed.py``), and the softmax of
9216 unscaled logits is where precision matters most.

Initialisation: ``W_z``'s batch-norm scale starts at 0, so the block is the identity at initialisation
(the non-local block's intent). The authors' released code overwrote this with 1; we keep the intent because
it lets a network first learn as Feature-Reg and then use the attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_IMPLEMENTATIONS = ("fused", "explicit")


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, implementation: str = "fused") -> torch.Tensor:
    """softmax(q kᵀ) v with scale 1, for (N, P, c) tensors."""
    if implementation == "fused":
        # 4-D contiguous (N, heads, P, c) tensors keep SDPA on its fused kernel (3-D or strided ones fall back)
        out = F.scaled_dot_product_attention(q.unsqueeze(1).contiguous(), k.unsqueeze(1).contiguous(),
                                             v.unsqueeze(1).contiguous(), scale=1.0)
        return out.squeeze(1)
    if implementation == "explicit":
        return torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v
    raise ValueError(f"unknown attention implementation {implementation!r}; use {ATTENTION_IMPLEMENTATIONS}")


class CrossModalAttention(nn.Module):
    """The block of Eq. 1: ``forward(primary, cross)``."""

    def __init__(self, channels: int = 32, inter_channels: int = 16, attention: str = "fused"):
        super().__init__()
        self.theta = nn.Conv3d(channels, inter_channels, 1)  # queries, from the cross-modal input
        self.phi = nn.Conv3d(channels, inter_channels, 1)  # keys, from the primary input
        self.g = nn.Conv3d(channels, inter_channels, 1)  # values, from the primary input
        self.w_z = nn.Sequential(nn.Conv3d(inter_channels, channels, 1), nn.BatchNorm3d(channels))
        self.attention = attention
        self.float32_attention = True

    def reset_output_scale(self) -> None:
        nn.init.zeros_(self.w_z[1].weight)
        nn.init.zeros_(self.w_z[1].bias)

    def forward(self, primary: torch.Tensor, cross: torch.Tensor) -> torch.Tensor:
        n, _, d, h, w = primary.shape
        q = self.theta(cross).flatten(2).transpose(1, 2)
        k = self.phi(primary).flatten(2).transpose(1, 2)
        v = self.g(primary).flatten(2).transpose(1, 2)
        if self.float32_attention and q.dtype != torch.float32:
            with torch.autocast(q.device.type, enabled=False):
                y = attend(q.float(), k.float(), v.float(), self.attention).to(q.dtype)
        else:
            y = attend(q, k, v, self.attention)
        y = y.transpose(1, 2).reshape(n, -1, d, h, w)
        return self.w_z(y) + primary
