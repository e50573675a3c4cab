"""Attention-Reg and its ablation Feature-Reg (Song et al. 2021, Fig. 3).

Input ``(N, 2, 32, 96, 96)``: channel 0 the fixed MR (image or label), channel 1 the moving TRUS. Output
``(N, 6)``: ``[tx, ty, tz, ax, ay, az]`` in mm and degrees (see :mod:`regkit.deep.correction`).

=====  =================================================================  ==============
step   layers                                                             output
=====  =================================================================  ==============
B1     Conv3d(1→32, 3, no bias) → BN → ReLU                               32×32×96×96
B2     MaxPool3d(3, stride 2, pad 1)                                      32×16×48×48
B3     Conv3d(32→32, 3, no bias) → BN → ReLU                              32×16×48×48
B4     MaxPool3d(3, stride (1, 2, 2), pad 1)                              32×16×24×24
A      cross-modal attention per branch (not in Feature-Reg), then ReLU   32×16×24×24
C      concatenate the MR and TRUS branches                               64×16×24×24
H      BN → Conv(64→16, 1) → ReLU → Conv(16→4, 3) → ReLU → Conv(4→1, 3) → BN   1×16×24×24
F      flatten 9216 → ReLU → FC 128 → ReLU → FC 32 → ReLU → FC 6          6
=====  =================================================================  ==============

The two feature branches do not share weights. Parameters: 1,248,777 (Attention-Reg), 1,244,393 (Feature-Reg).

The network keeps its 3-D tensors channels-last (``channels_last_3d``): oneDNN's convolutions, batch norms
and pooling run about twice as fast that way on the CPU (``bench/training_speed.py``); the arithmetic is the
same.
"""

from __future__ import annotations

import torch
from torch import nn

from regkit.deep.attention import CrossModalAttention
from regkit.deep.layers import ChannelsLast, MaxPool3d, init_conv_bn, regression_head


def feature_branch() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(1, 32, 3, padding=1, bias=False), nn.BatchNorm3d(32), nn.ReLU(inplace=True),
        MaxPool3d(3, stride=2, padding=1),
        nn.Conv3d(32, 32, 3, padding=1, bias=False), nn.BatchNorm3d(32), nn.ReLU(inplace=True),
        MaxPool3d(3, stride=(1, 2, 2), padding=1),
    )


class AttentionReg(ChannelsLast):
    """Attention-Reg; with ``use_attention=False`` it is Feature-Reg (same layers minus the attention blocks)."""

    def __init__(self, use_attention: bool = True, attention: str = "fused"):
        super().__init__()
        self.mr_branch = feature_branch()
        self.us_branch = feature_branch()
        self.use_attention = use_attention
        if use_attention:
            self.mr_attention = CrossModalAttention(32, 16, attention)
            self.us_attention = CrossModalAttention(32, 16, attention)
        self.fuse = nn.Sequential(
            nn.BatchNorm3d(64), nn.Conv3d(64, 16, 1), nn.ReLU(inplace=True),
            nn.Conv3d(16, 4, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv3d(4, 1, 3, padding=1), nn.BatchNorm3d(1),
        )
        self.regressor = regression_head(16 * 24 * 24)
        init_conv_bn(self)
        if use_attention:
            self.mr_attention.reset_output_scale()
            self.us_attention.reset_output_scale()
        self.set_channels_last(True)

    @property
    def attention(self) -> str:
        return self.mr_attention.attention if self.use_attention else "none"

    def set_attention(self, implementation: str) -> None:
        if self.use_attention:
            self.mr_attention.attention = implementation
            self.us_attention.attention = implementation

    @property
    def _format(self) -> torch.memory_format:
        return torch.channels_last_3d if self.channels_last else torch.contiguous_format

    def encode_fixed(self, fixed: torch.Tensor) -> torch.Tensor:
        """The MR branch's output for fixed channels ``(N, 1, D, H, W)``, to pass as ``fixed_features``."""
        return self.mr_branch(fixed.contiguous(memory_format=self._format))

    def features(self, x: torch.Tensor, fixed_features: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two branches' outputs after attention (or after pooling, in Feature-Reg), before the ReLU.

        ``fixed_features``: :meth:`encode_fixed` of the fixed channel, shared by every sample of ``x`` (the starts
        of one case, whose fixed channel is the same), so that the MR branch runs once for them; ``x[:, 0]`` is
        then not read. In eval mode only: in training the batch norms' statistics depend on the batch.
        """
        if fixed_features is None:
            mr = self.encode_fixed(x[:, 0:1])
        elif self.training:
            raise ValueError("fixed_features is for inference: call eval() first")
        else:
            mr = fixed_features.expand(len(x), *fixed_features.shape[1:]).contiguous(memory_format=self._format)
        us = self.us_branch(x[:, 1:2].contiguous(memory_format=self._format))
        if self.use_attention:
            return self.mr_attention(mr, us), self.us_attention(us, mr)
        return mr, us

    def head(self, mr: torch.Tensor, us: torch.Tensor) -> torch.Tensor:
        h = torch.cat([torch.relu(mr), torch.relu(us)], dim=1)
        return self.regressor(self.fuse(h).flatten(1))

    def forward(self, x: torch.Tensor, fixed_features: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(*self.features(x, fixed_features))


def attention_reg(attention: str = "fused") -> AttentionReg:
    return AttentionReg(True, attention)


def feature_reg(attention: str = "fused") -> AttentionReg:
    return AttentionReg(False, attention)
