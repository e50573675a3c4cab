"""MSReg (Guo et al., CMIG 2020): a 2-channel 3-D ResNeXt regressing the six parameters.

No MSReg code is public; this follows the authors' lab's shared 3-D ResNeXt (``networks/generators.py`` in
DIAL-RPI/FreehandUSRecon, built with cardinality 16), re-written from its description:

====  ================================================================================  ==============
step  layers                                                                            output
====  ================================================================================  ==============
S     Conv3d(2→32, 3, no bias) → BN → ReLU → MaxPool3d(3, stride 1) → Conv3d(32→64, 3,
      stride (1, 2, 2), no bias)                                                        64×32×48×48
X0    Conv3d(64→64, 3, stride 2, no bias) on S                                          64×16×24×24
L1    3 bottlenecks, 64 planes → 128 channels (first with a projection)                 128×32×48×48
L2    4 bottlenecks, 64 planes → 128                                                    128×32×48×48
L3    4 bottlenecks, 32 planes → 64, the first with stride 2 and a projection           64×16×24×24
M     concat(X0, L3) → BN → Conv3d(128→128, 3) → ReLU → Conv3d(128→16, 5, no padding)    16×12×20×20
F     flatten 76,800 → ReLU → FC 128 → ReLU → FC 32 → ReLU → FC 6                       6
====  ================================================================================  ==============

Bottleneck: 1×1 conv → BN → ReLU → 3×3×3 grouped conv (16 groups) → BN → ReLU → 1×1 conv (×2 expansion) → BN,
plus the shortcut (1×1 conv + BN when the shape changes), then ReLU; width = 16·⌊planes/32⌋.

Parameter count: the lab class also registers layers its forward never uses (a fourth ResNeXt stage and three
linear layers). The paper's 16,106,076 evidently counts such parameters: with them the total is 16,095,756
(0.064 % below the paper); without them it is 10,799,862. To report the paper's figure faithfully they are
kept here, frozen (``requires_grad=False``) and outside the forward pass, in ``self.unused``.
"""

from __future__ import annotations

import torch
from torch import nn

from regkit.deep.layers import ChannelsLast, MaxPool3d, init_conv_bn, regression_head

CARDINALITY = 16


class Bottleneck(nn.Module):
    expansion = 2

    def __init__(self, inplanes: int, planes: int, cardinality: int = CARDINALITY, stride=1):
        super().__init__()
        mid = cardinality * (planes // 32)
        out = planes * self.expansion
        self.body = nn.Sequential(
            nn.Conv3d(inplanes, mid, 1, bias=False), nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
            nn.Conv3d(mid, mid, 3, stride=stride, padding=1, groups=cardinality, bias=False),
            nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
            nn.Conv3d(mid, out, 1, bias=False), nn.BatchNorm3d(out),
        )
        self.shortcut = None
        if stride != 1 or inplanes != out:
            self.shortcut = nn.Sequential(nn.Conv3d(inplanes, out, 1, stride=stride, bias=False),
                                          nn.BatchNorm3d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return torch.relu(self.body(x) + skip)


def stage(inplanes: int, planes: int, blocks: int, stride=1) -> nn.Sequential:
    layers = [Bottleneck(inplanes, planes, stride=stride)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class MSReg(ChannelsLast):
    def __init__(self, keep_unused: bool = True):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(2, 32, 3, padding=1, bias=False), nn.BatchNorm3d(32), nn.ReLU(inplace=True),
            MaxPool3d(3, stride=1, padding=1),
            nn.Conv3d(32, 64, 3, stride=(1, 2, 2), padding=1, bias=False),
        )
        self.shortcut = nn.Conv3d(64, 64, 3, stride=2, padding=1, bias=False)
        self.layer1 = stage(64, 64, 3)
        self.layer2 = stage(128, 64, 4)
        self.layer3 = stage(128, 32, 4, stride=2)
        self.merge = nn.Sequential(
            nn.BatchNorm3d(128), nn.Conv3d(128, 128, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv3d(128, 16, 5),
        )
        self.regressor = regression_head(16 * 12 * 20 * 20)
        if keep_unused:
            self.unused = nn.ModuleDict({
                "layer4": stage(64, 128, 4, stride=2),
                "fc": nn.Linear(1024, 400),
                "fc_layer1": nn.Linear(36864, 128),
                "fc_layer2": nn.Linear(128, 6),
            })
            self.unused.requires_grad_(False)
        init_conv_bn(self)
        self.set_channels_last(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        s = self.stem(x)
        h = torch.cat([self.shortcut(s), self.layer3(self.layer2(self.layer1(s)))], dim=1)
        return self.regressor(self.merge(h).flatten(1))


def msreg() -> MSReg:
    return MSReg()
