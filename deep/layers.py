"""Pieces shared by the networks: the regression head and the authors' initialisation."""

from __future__ import annotations

from torch import nn


def regression_head(in_features: int) -> nn.Sequential:
    """flatten features → ReLU → FC 128 → ReLU → FC 32 → ReLU → FC 6 (the six parameters)."""
    return nn.Sequential(
        nn.ReLU(), nn.Linear(in_features, 128), nn.ReLU(inplace=True),
        nn.Linear(128, 32), nn.ReLU(inplace=True), nn.Linear(32, 6),
    )


def init_conv_bn(module: nn.Module) -> None:
    """Kaiming-normal (fan-out) 3-D convolutions; batch norms with scale 1 and shift 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
