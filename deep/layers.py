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


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """For inference: fold every batch norm that directly follows a convolution in a ``Sequential`` into it.

    In eval mode a batch norm is a per-channel affine map, so ``BN(conv(x))`` is one convolution with scaled
    weights and a shifted bias; the batch norm becomes an identity. Outputs agree to float rounding (1e-6
    relative). The module must be in eval mode and must not be trained afterwards. Returns ``module``.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if module.training:
        raise ValueError("fold_batch_norms is for inference: call module.eval() first")
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if (isinstance(conv, (nn.Conv2d, nn.Conv3d)) and isinstance(bn, (nn.BatchNorm2d, nn.BatchNorm3d))
                    and conv.out_channels == bn.num_features):
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()
    return module


class ChannelsLast(nn.Module):
    """A network that keeps its weights and activations channels-last (the default: faster on the CPU, 1.8×
    for MSReg) or contiguous; :class:`regkit.deep.registrar.DeepRegistrar` restores the layout after loading."""

    channels_last: bool = True

    def set_channels_last(self, enabled: bool) -> None:
        self.channels_last = enabled
        self.to(memory_format=torch.channels_last_3d if enabled else torch.contiguous_format)


class MaxPool3d(nn.MaxPool3d):
    """``nn.MaxPool3d`` that keeps its input's dtype under autocast.

    CPU autocast runs max pooling in float32: under bf16 it casts the whole feature map up and the next
    convolution casts it back, which took 30 % of a bf16 Attention-Reg pass (``bench/where_time_goes.py``). A
    maximum is exact in any dtype, so the pooled values are the same either way.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x)
