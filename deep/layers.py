"""Pieces shared by the networks: the regression head and the authors' initialisation."""

from __future__ import annotations

import torch
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


def flush_denormals() -> None:
    """Treat denormal floats as zero on the CPU (the FTZ and DAZ flags).

    The softmax of the attention's 9216 unscaled logits underflows into denormals, which x86 processors handle
    up to a hundred times slower than normal floats: with trained weights the fused attention's backward ran
    30× slower than on random inputs. Flushing them changes results only below 1e-38. Torch's worker threads
    take the flags from the thread that starts them, so this is called before the first parallel operation
    (when the trainer or a deep registrar is built); threads started before keep their mode.
    """
    torch.set_flush_denormal(True)
