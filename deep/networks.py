"""Building a network from its :class:`~regkit.deep.methods.Architecture`, and counting its parameters."""

from __future__ import annotations

import importlib
import inspect
from functools import cache

from torch import nn

from regkit.deep.methods import ARCHITECTURES, Architecture
from regkit.errors import InputError


def architecture(name: str | Architecture) -> Architecture:
    """A built-in architecture by name, or a plug-in's by ``"module:attribute"``."""
    if isinstance(name, Architecture):
        return name
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            arch = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"cannot load architecture {name!r}: {exc}",
                             fix="install the package that defines it") from None
        if isinstance(arch, Architecture):
            return arch
    raise InputError(f"unknown architecture {name!r}",
                     fix=f"use one of {sorted(ARCHITECTURES)} or 'module:attribute' of an Architecture")


def build_network(name: str | Architecture, attention: str = "fused") -> nn.Module:
    arch = architecture(name)
    builder = arch.builder
    if isinstance(builder, str):
        module, _, attr = builder.partition(":")
        builder = getattr(importlib.import_module(module), attr)
    kwargs = {"attention": attention} if "attention" in inspect.signature(builder).parameters else {}
    return builder(**kwargs)


@cache
def parameter_count(name: str | Architecture) -> int:
    """All registered parameters, as the paper counts them (MSReg includes its unused layers): the one place a
    network's parameters are counted (the registry asks a method through :func:`regkit.registry.parameter_count`)."""
    return sum(p.numel() for p in build_network(name).parameters())
