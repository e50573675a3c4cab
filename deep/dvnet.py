"""DVNet-style network (after Sun et al. 2018): a 2-D CNN that reads the volume's slices as channels.

No DVNet code is public, so this is regkit's own design from the paper's one-line description ("treats 3D
volumes as patches of 2D images"). The input ``(N, 2, 32, 96, 96)`` is reshaped to ``(N, 64, 96, 96)``: the 32
MR slices then the 32 TRUS slices, as channels of a 96×96 image. A VGG-style trunk of four blocks (two 3×3
conv → BN → ReLU, then 2×2 max-pooling) takes it to 256×6×6, and three fully connected layers regress the six
parameters:

=====  ===========================================  ===========
block  layers                                       output
=====  ===========================================  ===========
1      conv 64→64, conv 64→64, pool                  64×48×48
2      conv 64→128, conv 128→128, pool               128×24×24
3      conv 128→256, conv 256→256, pool              256×12×12
4      conv 256→256, conv 256→256, pool              256×6×6
F      flatten 9216 → FC 314 → ReLU → FC 64 → ReLU → FC 6
=====  ===========================================  ===========

The first hidden width (314) was chosen so that the parameter count, 5,276,800, lands within 0.02 % of the
5,275,832 the paper reports for DVNet; the layer list is ours, not Sun et al.'s.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def conv_block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DVNet(nn.Module):
    def __init__(self, slices: int = 32, hidden: int = 314):
        super().__init__()
        widths = [2 * slices, 64, 128, 256, 256]
        layers: list[nn.Module] = []
        for cin, cout in itertools.pairwise(widths):
            layers += conv_block(cin, cout) + conv_block(cout, cout) + [nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.regressor = nn.Sequential(
            nn.Linear(256 * 6 * 6, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 64), nn.ReLU(inplace=True),
            nn.Linear(64, 6),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, d, h, w = x.shape
        return self.regressor(self.features(x.reshape(n, c * d, h, w)).flatten(1))


def dvnet() -> DVNet:
    return DVNet()
