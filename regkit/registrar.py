"""The ``Registrar`` interface every method implements, its result record, and the ``identity`` registrar."""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

from regkit.case import Case
from regkit.transform import RigidTransform

OK = "ok"
FAILED = "failed"


@dataclass
class RegistrationResult:
    """What a registration returns.

    Attributes
    ----------
    transform : RigidTransform
        The estimate, fixed (MR) → moving (TRUS). A failed registration returns its start here, so a failure
        counts as "no improvement" in every table.
    runtime : float
        Wall-clock seconds spent in the registration (excluding one-off start-up such as importing ITK).
    status : str
        ``"ok"`` or ``"failed"``.
    message : str
        Why it failed, or a note.
    info : dict
        Method-specific extras (iterations, log file, stage results, ...).
    """

    transform: RigidTransform
    runtime: float
    status: str = OK
    message: str = ""
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @classmethod
    def failure(cls, initial: RigidTransform, runtime: float, message: str, **info) -> RegistrationResult:
        return cls(transform=initial, runtime=runtime, status=FAILED, message=message, info=dict(info))


@runtime_checkable
class Registrar(Protocol):
    """A registration method.

    ``register(case, initial)`` estimates the rigid transform of ``case`` (fixed MR → moving TRUS, see
    :mod:`regkit.transform`) starting from ``initial``. Implementations may also offer
    ``register_many(pairs)`` for a list of ``(case, initial)`` pairs when batching pays.
    """

    name: str

    def register(self, case: Case, initial: RigidTransform) -> RegistrationResult: ...


class RegistrarBase:
    """Convenience base class: times the call and turns any exception into a failed result.

    Subclasses implement ``_register(case, initial) -> (transform, info)``.
    """

    name: ClassVar[str] = "base"
    kind: ClassVar[str] = "classical"
    summary: ClassVar[str] = ""

    def register(self, case: Case, initial: RigidTransform) -> RegistrationResult:
        t0 = time.perf_counter()
        try:
            transform, info = self._register(case, initial)
        except Exception as exc:  # a failure in one registration must not stop a comparison
            return RegistrationResult.failure(
                initial, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(limit=6),
            )
        return RegistrationResult(transform=transform, runtime=time.perf_counter() - t0, info=info)

    def register_many(self, pairs: Sequence[tuple[Case, RigidTransform]]) -> list[RegistrationResult]:
        """Register each pair in turn (subclasses batch when they can)."""
        return [self.register(case, initial) for case, initial in pairs]

    def _register(self, case: Case, initial: RigidTransform) -> tuple[RigidTransform, dict]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class IdentityRegistrar(RegistrarBase):
    """Returns its start unchanged: the "no registration" row of every table."""

    name = "identity"
    kind = "reference"
    summary = "no registration: returns the starting transform"

    def __init__(self, **options):
        if options:
            raise TypeError(f"identity takes no options, got {sorted(options)}")

    def _register(self, case: Case, initial: RigidTransform) -> tuple[RigidTransform, dict]:
        return initial, {}
