"""Registrar chains: ``"a+b"`` runs ``b`` from where ``a`` ended.

Any registrars chain: a network's estimate refined by an intensity method (``attreg+mind``), a coarse method
before a fine one (``mind+mi``), or the same method twice. The registry resolves a name with ``+`` to a
:class:`ChainRegistrar` of its members (see :func:`regkit.registry.declaration`; this module knows no registry),
so a chain works wherever a name does: ``regkit compare --methods attreg+mind``,
``regkit register --method attreg+mind``, ``regkit.get_registrar("attreg+mind")``.

* **Options** go to a member as ``MEMBER.OPTION`` (``mind.iterations=100``), or ``K.OPTION`` with the member's
  1-based position when a registrar appears twice (``2.iterations=100`` in ``mi+mi``).
* **Capabilities** are the members' together: a chain uses a device, is batched or needs the fixed label if
  any member does; the runner schedules it accordingly.
* **Result**: the last member's transform; the runtime is the sum of the members'; each member's transform,
  runtime and status are in ``info["stage_transforms"]``, ``info["stage_runtimes"]`` and
  ``info["stage_status"]`` (so the comparison reports SRE per stage). The status is ``"failed"`` if a member
  failed (the chain goes on from that member's start), else the last member's.
* **Consistency** (``--qa``, :mod:`regkit.consistency`): the last member's, from its own start.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from regkit.case import Case
from regkit.errors import ConfigurationError, InputError
from regkit.registrar import FAILED, Capabilities, Registrar, RegistrationResult, check_results
from regkit.transform import RigidTransform

SEPARATOR = "+"


def is_chain(name: str) -> bool:
    return isinstance(name, str) and SEPARATOR in name


def combined_capabilities(caps: Sequence[Capabilities]) -> Capabilities:
    """A chain's capabilities: what any of its members needs (a chain never runs in the runner's process)."""
    return Capabilities(batched=any(c.batched for c in caps), needs_fixed_label=any(c.needs_fixed_label for c in caps),
                        uses_device=any(c.uses_device for c in caps))


def members_of(name: str) -> list[str]:
    """The member names of a chain name, checked for empty parts."""
    parts = [p.strip() for p in name.split(SEPARATOR)]
    if len(parts) < 2 or not all(parts):
        raise InputError(f"cannot read the chain {name!r}", fix="write registrar names joined by '+', e.g. attreg+mind")
    return parts


def split_options(members: Sequence[str], options: dict) -> list[dict]:
    """Per-member options from ``{"MEMBER.OPTION": value}`` or ``{"K.OPTION": value}`` (K 1-based)."""
    out: list[dict] = [{} for _ in members]
    for key, value in options.items():
        who, dot, option = str(key).partition(".")
        if not dot or not option:
            raise InputError(f"option {key!r} of the chain {SEPARATOR.join(members)!r} names no member",
                             fix="write MEMBER.OPTION=VALUE, e.g. mind.iterations=100 (or 2.iterations=100)")
        if who.isdigit() and 1 <= int(who) <= len(members):
            targets = [int(who) - 1]
        else:
            targets = [i for i, m in enumerate(members) if m == who]
        if not targets:
            raise InputError(f"option {key!r}: {who!r} is not a member of the chain {SEPARATOR.join(members)!r}",
                             fix=f"use one of {', '.join(members)} or a position 1-{len(members)}")
        if len(targets) > 1:
            raise InputError(f"option {key!r}: {who!r} appears {len(targets)} times in the chain",
                             fix=f"use its position instead, e.g. {targets[-1] + 1}.{option}")
        out[targets[0]][option] = value
    return out


class ChainRegistrar:
    """Registrars run in turn, each from the previous one's result (see the module docstring)."""

    kind = "chain"

    def __init__(self, members: Sequence[Registrar], name: str | None = None):
        if len(members) < 2:
            raise InputError("a chain needs at least two registrars")
        self.members = list(members)
        self.name = name or SEPARATOR.join(m.name for m in self.members)
        self.capabilities = combined_capabilities([getattr(m, "capabilities", Capabilities())
                                                   for m in self.members])

    def register(self, case: Case, initial: RigidTransform) -> RegistrationResult:
        return self.register_many([(case, initial)])[0]

    def register_many(self, pairs: Sequence[tuple[Case, RigidTransform]]) -> list[RegistrationResult]:
        stages: list[list[RegistrationResult]] = []
        current = list(pairs)
        for member in self.members:
            t0 = time.perf_counter()
            try:
                results = check_results(member.register_many(current), current, getattr(member, "name", "?"))
            except ConfigurationError:  # the member cannot run at all: neither can the chain
                raise
            except Exception as exc:  # a member must not take the chain down: its start stands
                elapsed = (time.perf_counter() - t0) / max(len(current), 1)
                results = [RegistrationResult.failure(t, elapsed, f"{type(exc).__name__}: {exc}") for _, t in current]
            stages.append(results)
            current = [(case, r.transform) for (case, _), r in zip(current, results, strict=True)]
        return [self._combine([s[k] for s in stages]) for k in range(len(pairs))]

    def consistency(self, pairs: Sequence[tuple[Case, RigidTransform]], results: Sequence[RegistrationResult],
                    **settings) -> list:
        """A chain's consistency is its last member's, from that member's start (:func:`regkit.consistency.check`):
        restarting the whole chain would measure its first member instead."""
        from regkit.consistency import check

        starts = [(case, (r.info.get("stage_transforms") or [None, start])[-2])
                  for (case, start), r in zip(pairs, results, strict=True)]
        return check(self.members[-1], starts, results, **settings)

    def _combine(self, results: list[RegistrationResult]) -> RegistrationResult:
        failed = [i for i, r in enumerate(results) if r.status == FAILED]
        status = FAILED if failed else results[-1].status
        notes = [f"stage {i + 1} ({m.name}): {r.message}" for i, (m, r) in enumerate(zip(self.members, results,
                                                                                      strict=True)) if r.message]
        info = {"stages": [m.name for m in self.members],
                "stage_transforms": [r.transform for r in results],
                "stage_runtimes": [float(r.runtime) for r in results],
                "stage_status": [r.status for r in results],
                "stage_info": [r.info for r in results]}
        return RegistrationResult(results[-1].transform, float(sum(r.runtime for r in results)), status,
                                  "; ".join(notes), info)

    def __repr__(self) -> str:
        return f"<ChainRegistrar {self.name!r}>"
