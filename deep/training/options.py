"""The options of a training run (``regkit train``), their checks, and the methods that can be trained."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from regkit.deep.networks import architecture
from regkit.errors import InputError, check_whole
from regkit.registrar import MethodDeclaration


def trainable_methods() -> dict[str, MethodDeclaration]:
    """The declared methods that name a network (``regkit train --method`` takes these)."""
    from regkit.registry import available_registrars

    return {name: d for name, d in available_registrars().items() if d.trainable}


def trainable_declaration(method: str) -> MethodDeclaration:
    methods = trainable_methods()
    if method not in methods:
        raise InputError(f"{method!r} is not a trainable registrar", fix=f"use one of {', '.join(methods)}")
    return methods[method]


@dataclass
class TrainOptions:
    """Options of ``regkit train`` (see ``regkit train --help``)."""

    method: str
    out: Path
    data: Path | str | list | tuple | None = None  # dataset folder(s); "builtin" = the built-in benchmark
    stage: int = 1
    init_range: str | None = None
    epochs: int = 100
    batch_size: int | None = None
    lr: float | None = None
    resume: Path | None = None
    init_weights: Path | None = None
    seed: int = 0
    time_budget: float | None = None
    val_starts: int = 5
    val_every: int = 1
    samples_per_epoch: int | None = None
    bf16: bool | None = None
    compile: bool = False
    device: str | None = None
    threads: int | None = None
    show_progress: bool = True
    max_steps: int | None = None  # stop after this many optimiser steps in this process (tests, benchmarks)
    augment: bool = False
    fit_epochs: bool = False  # with time_budget: lower `epochs` after the first steps to what fits in the budget
    rollout: float = 0.0  # the fraction of samples whose start a network's passes move first (rollout.py)
    rollout_from: Path | None = None  # that network's checkpoint; None: the network being trained

    def resolved(self) -> TrainOptions:
        decl = trainable_declaration(self.method)
        if self.stage not in (1, 2):
            raise InputError(f"stage must be 1 or 2, got {self.stage}")
        check_train_options(self)
        arch = architecture(decl.architecture)
        self.init_range = self.init_range or ("0-20mm" if self.stage == 1 else "0-8mm")
        self.batch_size = self.batch_size or arch.batch_size
        self.lr = self.lr or arch.lr
        self.out = Path(self.out)
        return self

    @property
    def sources(self) -> list[str]:
        """The datasets, as strings: folders, or "builtin"."""
        if self.data is None:
            return ["builtin"]
        items = [self.data] if isinstance(self.data, (str, Path)) else list(self.data)
        return [str(d) for d in items] or ["builtin"]


def check_train_options(opts: TrainOptions) -> None:
    """Range checks of the training options, and that the dataset folders exist, before any work, as
    :class:`InputError` naming the option or the folder."""
    from regkit.deep.registrar import resolve_device

    for source in opts.sources:
        if source != "builtin" and not Path(source).is_dir():
            raise InputError("the dataset folder does not exist", source, "give a dataset folder, or 'builtin'")

    for name in ("epochs", "batch_size", "val_starts", "val_every", "samples_per_epoch", "threads", "max_steps"):
        check_whole(name, getattr(opts, name), 1, optional=True)
    check_whole("seed", opts.seed, 0, optional=True)
    if (isinstance(opts.rollout, bool) or not isinstance(opts.rollout, int | float)
            or not 0 <= opts.rollout <= 1):
        raise InputError(f"rollout must be a fraction from 0 to 1, got {opts.rollout!r}")
    if opts.rollout_from is not None and not opts.rollout:
        raise InputError("rollout_from is given but rollout is 0, so it would never be used",
                         fix="give --rollout, the fraction of samples that start where that network leaves them")
    for name in ("lr", "time_budget"):
        value = getattr(opts, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value) or value <= 0):
            raise InputError(f"{name} must be a positive number, got {value!r}")
    if opts.device is not None:
        resolve_device(opts.device)

