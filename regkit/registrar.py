"""The ``Registrar`` interface every method implements, its result record, and the ``identity`` registrar."""

from __future__ import annotations

import functools
import importlib
import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, get_args, runtime_checkable

from regkit.case import Case
from regkit.transform import RigidTransform

OK = "ok"
FAILED = "failed"
#: The registration ran, but its optimiser did not improve on the start, or stopped on its iteration limit
#: far from convergence; its transform is kept (and counted in the tables), its status says it stalled.
NOT_CONVERGED = "not converged"
#: A registration's outcome, :attr:`RegistrationResult.status`: ``"ok"``, ``"not converged"`` or ``"failed"``.
Status = Literal["ok", "not converged", "failed"]
#: The statuses a result may have (:data:`Status`'s values).
STATUSES: tuple[str, ...] = get_args(Status)
#: The fixed input of a method: the MR image, or the MR prostate label.
Variant = Literal["image", "label"]


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
        ``"ok"``; ``"not converged"`` (:data:`NOT_CONVERGED`: the registration returned a transform, but its
        metric did not improve on the start, or it stopped on its iteration limit far from convergence); or
        ``"failed"`` (it raised; the start is returned).
    message : str
        Why it failed or did not converge, or a note.
    info : dict
        Method-specific extras (iterations, log file, stage results, ...).
    """

    transform: RigidTransform
    runtime: float
    status: Status = OK
    message: str = ""
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @classmethod
    def failure(cls, initial: RigidTransform, runtime: float, message: str, **info) -> RegistrationResult:
        return cls(transform=initial, runtime=runtime, status=FAILED, message=message, info=dict(info))


@dataclass(frozen=True)
class Capabilities:
    """What the comparison runner may rely on when it schedules a registrar.

    Attributes
    ----------
    batched : bool
        ``register_many`` gains from all starts of a case at once: the runner hands it one case at a time.
    needs_fixed_label : bool
        The registrar cannot run without the MR prostate label.
    uses_device : bool
        It runs on an accelerator when there is one (a GPU): the runner keeps it in its own process (the caller's)
        instead of spreading samples over per-core worker processes.
    in_process : bool
        Pure Python and cheap, it cannot crash its process: the runner runs it in its own process (the caller's),
        without starting worker processes for it (which isolate a native crash, at a start-up cost of seconds).

    A registrar that runs in the caller's process (``uses_device``, ``in_process``, or a Registrar object or a
    name registered in this process) is not isolated: a crash in its native code (a segfault, ``os._exit``) ends
    the caller's process, ``regkit.compare(..., workers=1)`` included. The run's crash journal keeps a resumed run
    from dying on the same sample more than twice (:mod:`regkit.evaluation.faults`).
    """

    batched: bool = False
    needs_fixed_label: bool = False
    uses_device: bool = False
    in_process: bool = False


@runtime_checkable
class Registrar(Protocol):
    """A registration method.

    ``register(case, initial)`` estimates the rigid transform of ``case`` (fixed MR → moving TRUS, see
    :mod:`regkit.transform`) starting from ``initial``; ``register_many(pairs)`` does so for a list of
    ``(case, initial)`` pairs (in turn, or batched when ``capabilities.batched``). :class:`RegistrarBase`
    provides everything but ``_register``.
    """

    name: str
    capabilities: Capabilities

    def register(self, case: Case, initial: RigidTransform) -> RegistrationResult: ...

    def register_many(self, pairs: Sequence[tuple[Case, RigidTransform]]) -> list[RegistrationResult]: ...


@dataclass(frozen=True)
class MethodDeclaration:
    """A registration method, declared once: everything regkit derives about it comes from here.

    The registry, ``regkit list``, the CLI's choices, the table titles and ``regkit train`` read it.

    Attributes
    ----------
    name : str
        Registry name (``regkit compare --methods NAME``).
    factory : str or callable
        ``"module:attribute"`` (imported on first use) or the callable itself; called with ``options`` and the
        user's options, it returns a :class:`Registrar`.
    title : str
        Row title in the tables (default: the name).
    kind : str
        ``"classical"``, ``"deep"``, ``"reference"``, ... (shown by ``regkit list``).
    summary : str
        One line for ``regkit list``.
    capabilities : Capabilities
    options : dict
        Fixed keyword arguments for ``factory`` (e.g. a network's architecture and fixed-input variant).
    architecture, variant : str, optional
        Deep methods: the network (a built-in architecture name or ``"module:attribute"`` of an
        ``Architecture``) and the fixed channel (``"image"`` or ``"label"``). A declaration with an
        architecture can be trained with ``regkit train``.
    weights : tuple of str
        Bundled checkpoints (stems or ``.safetensors`` paths), in stage order; missing files are skipped.
    claims : tuple of str
        The arms this method is claimed to beat in the paper it reproduces (registry names; ``NAME@K`` is stage
        ``K`` of a cascade, ``self``'s own name included): ``regkit compare --compare paper`` tests those whose
        methods are in the run.
    source : str
        Who declared it: a distribution's name, or ``"local"`` (filled in by the registry).
    """

    name: str
    factory: str | Callable[..., Registrar]
    title: str = ""
    kind: str = "classical"
    summary: str = ""
    capabilities: Capabilities = Capabilities()
    options: dict = field(default_factory=dict)
    architecture: Any = None  # a network's name, or the architecture object itself
    variant: Variant | None = None
    weights: tuple[str, ...] = ()
    claims: tuple[str, ...] = ()
    source: str = ""

    @property
    def display_title(self) -> str:
        return self.title or self.name

    @property
    def trainable(self) -> bool:
        return self.architecture is not None

    def load(self) -> Callable[..., Registrar]:
        """The factory, with the declared options bound."""
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
        return functools.partial(factory, **self.options) if self.options else factory


class RegistrarBase:
    """Convenience base class: times the call and turns any exception into a failed result.

    Subclasses implement ``_register(case, initial) -> (transform, info)`` and may set ``capabilities``,
    ``title``, ``kind`` and ``summary`` (read when the class is registered without a declaration). ``info`` may
    hold ``"status"`` (e.g. :data:`NOT_CONVERGED`) and ``"message"``, which become the result's. A
    :class:`~regkit.errors.ConfigurationError` (the registrar cannot run with its options at all) is raised, not
    recorded as a failure. Options are best checked in the constructor (see :mod:`regkit.options`).
    """

    name: ClassVar[str] = "base"
    capabilities: ClassVar[Capabilities] = Capabilities()
    title: ClassVar[str] = ""
    kind: ClassVar[str] = "classical"
    summary: ClassVar[str] = ""

    def register(self, case: Case, initial: RigidTransform) -> RegistrationResult:
        from regkit.errors import ConfigurationError

        t0 = time.perf_counter()
        try:
            transform, info = self._register(case, initial)
        except ConfigurationError:  # not this sample's failure: the registrar cannot run at all
            raise
        except Exception as exc:  # a failure in one registration must not stop a comparison
            return RegistrationResult.failure(
                initial, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(limit=6),
            )
        runtime = time.perf_counter() - t0
        info = dict(info)
        status, message = info.pop("status", OK), info.pop("message", "")
        return RegistrationResult(transform=transform, runtime=runtime, status=status, message=message, info=info)

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
    capabilities = Capabilities(in_process=True)

    def _register(self, case: Case, initial: RigidTransform) -> tuple[RigidTransform, dict]:
        return initial, {}

    def consistency(self, pairs: Sequence[tuple[Case, RigidTransform]], results: Sequence[RegistrationResult],
                    **settings) -> list[None]:
        """Not measured (:mod:`regkit.consistency`): returning the start is no registration to check."""
        return [None] * len(results)


METHODS = (MethodDeclaration("identity", IdentityRegistrar, title="No registration", kind="reference",
                             summary="no registration: returns the starting transform",
                             capabilities=IdentityRegistrar.capabilities),)


# ---------------------------------------------------------------------------------------------- result checks
def check_results(results, pairs: Sequence[tuple[Case, RigidTransform]], name: str) -> list[RegistrationResult]:
    """``results`` of ``register_many(pairs)`` if each is a sound :class:`RegistrationResult`; anything else becomes
    a failed result naming the registrar, its transform the start (a third-party registrar's bug must not pass
    for a success, nor abort a comparison).

    Sound means: a ``RegistrationResult`` whose ``transform`` is one finite, rigid
    :class:`~regkit.transform.RigidTransform`, whose ``runtime`` is a finite number of seconds of at least 0 (NaN
    only for a failure), whose ``status`` is one of :data:`STATUSES` and whose ``message`` is a string; and one result
    per pair.
    """
    n = len(pairs)
    if isinstance(results, str | bytes) or not isinstance(results, Sequence) or len(results) != n:
        what = f"a list of {len(results)}" if isinstance(results, list | tuple) else _kind(results)
        message = f"registrar {name!r} returned {what} from register_many, not a list of {n} RegistrationResult"
        return [RegistrationResult.failure(start, float("nan"), message) for _, start in pairs]
    out = []
    for r, (_, start) in zip(results, pairs, strict=True):
        problem = _result_problem(r)
        if problem:
            runtime = getattr(r, "runtime", None)
            sound = isinstance(runtime, int | float) and not isinstance(runtime, bool) and 0 <= runtime < math.inf
            runtime = float(runtime) if sound else math.nan
            r = RegistrationResult.failure(start, runtime, f"registrar {name!r} returned {problem}")
        out.append(r)
    return out


def _kind(value) -> str:
    """``None``, "a list", "a numpy.ndarray of shape (4, 4)", ... (what a value is, for a message)."""
    if value is None:
        return "None"
    kind = type(value)
    module = kind.__module__.split(".")[0]
    name = kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    shape = getattr(value, "shape", None)
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def _result_problem(r) -> str | None:
    import numpy as np

    from regkit.errors import InputError
    from regkit.transform import ORTHONORMAL_TOLERANCE, _check_rigid

    if not isinstance(r, RegistrationResult):
        return f"{_kind(r)} instead of a RegistrationResult"
    t = r.transform
    if not isinstance(t, RigidTransform):
        return (f"a transform that is {_kind(t)}, not a RigidTransform (wrap a 4×4 matrix with "
                "RigidTransform.from_matrix)")
    if t.batch_shape:
        return f"a batch of {t.batch_shape} transforms for one start"
    m = np.asarray(t.matrix, dtype=float)
    if not np.all(np.isfinite(m)):
        return "a transform with NaN or infinite values"
    try:
        _check_rigid(m, ORTHONORMAL_TOLERANCE, None)
    except InputError as exc:
        return f"a transform that is not rigid ({exc})"
    if not isinstance(r.status, str) or not isinstance(r.message, str):
        return f"a status {r.status!r} and message {r.message!r} that are not both text"
    if r.status not in STATUSES:
        return f"the status {r.status!r}, which is none of {', '.join(map(repr, STATUSES))}"
    runtime = r.runtime
    if isinstance(runtime, bool) or not isinstance(runtime, int | float) or \
            (math.isnan(runtime) and r.status != FAILED) or math.isinf(runtime) or runtime < 0:
        return f"a runtime of {runtime!r}, not a number of seconds (finite, at least 0)"
    if not isinstance(r.info, dict):
        return f"info that is {_kind(r.info)}, not a dict"
    return _stages_problem(r.info)


def _stages_problem(info: dict) -> str | None:
    """What is wrong with the per-stage results in ``info`` (``stage_transforms`` and the lists beside it, which a
    comparison reads), or None."""
    import numpy as np

    stages = info.get("stage_transforms")
    if stages is None:
        return None
    if not isinstance(stages, list | tuple) or not all(
            isinstance(t, RigidTransform) and not t.batch_shape and np.all(np.isfinite(t.matrix)) for t in stages):
        return "info['stage_transforms'] that is not a list of finite RigidTransforms, one per stage"
    for key, kind, noun in (("stages", str, "text"), ("stage_status", str, "text"),
                            ("stage_runtimes", int | float, "number")):
        values = info.get(key)
        if values is not None and (not isinstance(values, list | tuple) or len(values) != len(stages)
                                   or not all(v is None or isinstance(v, kind) for v in values)):
            return f"info[{key!r}] that is not a list of one {noun} per stage"
    return None
