"""Registrars for the fault and bad-input tests, installed as a plug-in (an entry point) by ``tests/conftest.py``,
so that the runner can construct them in its worker processes.

* ``gated``: moves the start halfway to the truth (known, deterministic results). With ``markers``, it leaves a
  file there as each call starts (``call-PID-N``); after ``block_after`` calls it leaves ``waiting-PID`` and waits
  until the file ``gate`` exists: a test can kill a process at a known point, and then let the run go on.
* ``bad-result``: returns what a buggy plug-in might (``kind``: a NaN transform, an ndarray, None, too few results,
  a 4×4 array as the transform, or ``sys.exit``; ``"field"``: a result whose ``field`` is ``value``, e.g. a
  runtime of -1 or a status ``"great"``; ``"config"``: raises a ``ConfigurationError``, as a registrar that cannot
  run with its options at all).
* ``crasher``: kills its process on case001, as a segfault in native code would.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from regkit.errors import ConfigurationError, InputError
from regkit.registrar import RegistrarBase, RegistrationResult
from regkit.transform import RigidTransform


def halfway(case, initial, fraction: float = 0.5) -> RigidTransform:
    p = (case.ground_truth.inverse() @ initial).to_params(case.surface_centroid)
    return case.ground_truth @ RigidTransform.from_params(fraction * p, case.surface_centroid)


class Gated(RegistrarBase):
    name = "gated"
    kind = "test"

    def __init__(self, markers: str = "", gate: str = "", block_after: int = 0):
        if block_after < 0:
            raise InputError(f"block_after must be at least 0, got {block_after}")
        self.markers, self.gate, self.block_after, self.calls = markers, gate, block_after, 0

    def _register(self, case, initial):
        self.calls += 1
        if self.markers:
            Path(self.markers, f"call-{os.getpid()}-{self.calls}").touch()
            if self.gate and self.calls > self.block_after and not Path(self.gate).exists():
                Path(self.markers, f"waiting-{os.getpid()}").touch()
                while not Path(self.gate).exists():
                    time.sleep(0.02)
        return halfway(case, initial), {}


def _nan_transform() -> RigidTransform:
    t = object.__new__(RigidTransform)  # what a plug-in that bypasses the constructor's checks could hand back
    object.__setattr__(t, "matrix", np.full((4, 4), np.nan))
    return t


def _with_start(value, start):
    if isinstance(value, dict):
        return {k: _with_start(v, start) for k, v in value.items()}
    if isinstance(value, list):
        return [start if v == "START" else _with_start(v, start) for v in value]
    return value


class BadResult(RegistrarBase):
    name = "bad-result"
    kind = "test"

    def __init__(self, kind: str = "nan", field: str = "", value: Any = None):
        self.bad, self.field, self.value = kind, field, value

    def register_many(self, pairs):
        n = len(pairs)
        if self.bad == "field":  # "START" in a list of the value stands for the start (JSON holds no transform)
            results = [RegistrationResult(start, 0.1) for _, start in pairs]
            for r, (_, start) in zip(results, pairs, strict=True):
                setattr(r, self.field, _with_start(self.value, start))
            return results
        if self.bad == "config":
            raise ConfigurationError("this plug-in cannot run with kind='config'", fix="use another kind")
        if self.bad == "nan":
            return [RegistrationResult(_nan_transform(), 0.1) for _ in pairs]
        if self.bad == "ndarray":
            return np.zeros((n, 4, 4))
        if self.bad == "none":
            return [None] * n
        if self.bad == "short":
            return [RegistrationResult(start, 0.1) for _, start in pairs[:-1]]
        if self.bad == "matrix":
            return [RegistrationResult(np.eye(4), 0.1) for _ in pairs]
        if self.bad == "exit":
            sys.exit(3)
        raise ValueError(self.bad)


class Crasher(RegistrarBase):
    """Kills its worker process on case001, as a segfault in native code would."""

    name = "crasher"
    kind = "test"

    def _register(self, case, initial):
        if case.case_id == "case001":
            os._exit(139)
        return initial, {}


ENTRY_POINTS = {"gated": "Gated", "bad-result": "BadResult", "crasher": "Crasher"}
