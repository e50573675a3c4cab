"""The four architectures, their paper parameter counts, and the paper's training schedules."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from torch import nn

from regkit.errors import InputError


@dataclass(frozen=True)
class Architecture:
    name: str
    title: str
    paper_parameters: int
    lr: float
    schedule: str  # "multistep": ×0.3 at 40 %, 57 % and 83 % of the epochs (120/170/250 of 300); "step5": ×0.9 every 5
    batch_size: int

    def build(self, attention: str = "fused") -> nn.Module:
        if self.name == "attention_reg":
            from deep.attention_reg import attention_reg

            return attention_reg(attention)
        if self.name == "feature_reg":
            from deep.attention_reg import feature_reg

            return feature_reg(attention)
        if self.name == "msreg":
            from deep.msreg import msreg

            return msreg()
        if self.name == "dvnet":
            from deep.dvnet import dvnet

            return dvnet()
        raise InputError(f"unknown architecture {self.name!r}")


ARCHITECTURES = {
    a.name: a
    for a in (
        Architecture("attention_reg", "Attention-Reg", 1_248_777, 1e-3, "multistep", 8),
        Architecture("feature_reg", "Feature-Reg", 1_244_393, 1e-3, "multistep", 8),
        # the paper trained MSReg at batch 16 on a GPU server; 16 does not fit a 24 GB CPU machine, 4 does
        Architecture("msreg", "MSReg", 16_106_076, 5e-5, "step5", 4),
        Architecture("dvnet", "DVNet", 5_275_832, 1e-3, "step5", 16),
    )
}


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}", fix=f"use one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def build_network(name: str, attention: str = "fused") -> nn.Module:
    return architecture(name).build(attention)


@cache
def parameter_count(name: str) -> int:
    """All registered parameters, as the paper counts them (MSReg includes its unused layers)."""
    return sum(p.numel() for p in build_network(name).parameters())
