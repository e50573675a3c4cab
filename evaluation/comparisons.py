"""Which results a run compares: arms (a method's final result, or one stage of a cascade) and the comparisons
of a run, which are also its Holm family.

An *arm* is written ``METHOD`` (the final result) or ``METHOD@K`` (stage ``K`` of a cascade). A comparison
``A:B`` tests ``error(A) − error(B)``, so a negative difference favours ``A``. The paper's claims are not listed
here: each method declares the arms it claims to beat (:attr:`regkit.registrar.MethodDeclaration.claims`), and
``paper`` collects the claims whose arms are in the run.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from regkit.errors import InputError

STAGE_COLUMN = re.compile(r"^stage(\d+)_sre$")


@dataclass(frozen=True)
class Arm:
    """One outcome of a method: its final result (``stage=None``) or the result of stage ``stage``."""

    method: str
    stage: int | None = None

    @property
    def label(self) -> str:
        return self.method if self.stage is None else f"{self.method}@{self.stage}"

    @classmethod
    def parse(cls, text: str) -> Arm:
        method, at, stage = text.strip().rpartition("@") if "@" in text else (text.strip(), "", "")
        if at and not (stage.isdigit() and int(stage) >= 1):
            raise InputError(f"cannot read {text!r} as a method or a stage of one",
                             fix="write METHOD or METHOD@STAGE, e.g. attreg@1 for Attention-Reg's first stage")
        return cls(method, int(stage) if at else None)


def stage_columns(samples: pd.DataFrame) -> dict[int, str]:
    """The per-stage error columns of a results table, ``{k: "stage<k>_sre"}``, whatever stages it holds."""
    out = {}
    for c in samples.columns:
        m = STAGE_COLUMN.match(str(c))
        if m:
            out[int(m.group(1))] = c
    return dict(sorted(out.items()))


def n_stages(samples: pd.DataFrame, method: str) -> int:
    """Stages of a method in the results: 1 plus its highest stage column with values (the last is final)."""
    rows = samples[samples["method"] == method]
    ks = [k for k, c in stage_columns(samples).items() if pd.to_numeric(rows[c], errors="coerce").notna().any()]
    return max(ks) + 1 if ks and max(ks) >= 1 else 1


def arm_values(samples: pd.DataFrame, arm: Arm, init: str | None = None) -> pd.DataFrame:
    """``case``, ``start_id`` and ``error`` of an arm (and starting error): a one-stage method's stage 1 is its
    final result, and so is the last stage of a cascade."""
    rows = samples[samples["method"] == arm.method]
    if init is not None:
        rows = rows[rows["init"] == init]
    column = "final_sre"
    if arm.stage is not None:
        stages = n_stages(samples, arm.method)
        if arm.stage > stages:
            return rows.iloc[:0].assign(error=[])[["case", "start_id", "error"]]
        if arm.stage < stages:
            column = stage_columns(samples)[arm.stage]
    out = rows[["case", "start_id"]].copy()
    out["error"] = pd.to_numeric(rows[column], errors="coerce").to_numpy(float)
    return out[np.isfinite(out["error"])]


# ---------------------------------------------------------------------------------------------- comparisons
@dataclass(frozen=True)
class Comparison:
    a: Arm
    b: Arm
    why: str  # "asked", "reference", "all", "paper", "stage for stage"

    @property
    def key(self) -> frozenset:
        return frozenset((self.a, self.b))


def comparisons(spec: str | Sequence | None, methods: Sequence[str], samples: pd.DataFrame | None = None,
                reference: str | None = None, registrars: dict[str, str] | None = None) -> list[Comparison]:
    """The comparisons of a run: its Holm family.

    Parameters
    ----------
    spec : str, sequence or None
        Comma-separated items: ``A:B`` (a pair; ``A`` and ``B`` are method labels, ``METHOD@K`` for stage ``K``
        of a cascade), ``reference`` (every method against the reference), ``all`` (every pair of methods) or
        ``paper`` (the paper's claims whose methods are present). Default ``"reference,paper"``.
    methods : sequence of str
        The run's method labels, in order.
    samples : DataFrame, optional
        The results, to know which methods are cascades.
    reference : str, optional
        The reference method [``identity`` if present, else the first method].
    registrars : dict, optional
        Label → registry name, so that the paper's claims find aliased methods.

    Notes
    -----
    Whenever the final results of two methods are compared and one of them is a cascade, the comparison of
    their first stages comes with it (the paper's Table 2 compares stage for stage).
    """
    methods = list(methods)
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        spec = "reference,paper"
    items = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    if reference is not None and reference not in methods:
        raise InputError(f"the reference {reference!r} is not one of the methods {methods}",
                         fix="give one of --methods as --reference")
    ref = reference or ("identity" if "identity" in methods else methods[0])

    def check(arm: Arm, item: str) -> Arm:
        if arm.method not in methods:
            raise InputError(f"--compare {item!r} names {arm.method!r}, which is not one of the methods {methods}",
                             fix="name methods by their labels in --methods")
        return arm

    found: list[Comparison] = []
    for item in items:
        if isinstance(item, tuple | list):
            found.append(Comparison(check(Arm.parse(str(item[0])), str(item)), check(Arm.parse(str(item[1])),
                                                                                    str(item)), "asked"))
        elif item == "reference":
            found += [Comparison(Arm(m), Arm(ref), "reference") for m in methods if m != ref]
        elif item == "all":
            found += [Comparison(Arm(a), Arm(b), "all") for a, b in itertools.combinations(methods, 2)]
        elif item == "paper":
            found += paper_claims(methods, registrars)
        elif ":" in item:
            a, _, b = item.partition(":")
            found.append(Comparison(check(Arm.parse(a), item), check(Arm.parse(b), item), "asked"))
        else:
            raise InputError(f"cannot read --compare item {item!r}",
                             fix="write A:B pairs (attreg:mind, attreg@1:featreg), or reference, all, paper")
    cascades = {m for m in methods if samples is not None and n_stages(samples, m) > 1}
    out: list[Comparison] = []
    seen: set = set()
    for c in found:
        if c.a == c.b:
            raise InputError(f"a comparison of {c.a.label!r} with itself", fix="name two different methods")
        todo = [c]
        if c.a.stage is None and c.b.stage is None and (c.a.method in cascades or c.b.method in cascades):
            todo.append(Comparison(*(Arm(x.method, 1 if x.method in cascades else None) for x in (c.a, c.b)),
                                   "stage for stage"))
        for comp in todo:
            if comp.key not in seen:
                seen.add(comp.key)
                out.append(comp)
    return out


def paper_claims(methods: Sequence[str], registrars: dict[str, str] | None = None) -> list[Comparison]:
    """The paper's claims whose arms are both in the run, in the order of ``methods``: for each method, the arms
    its declaration claims to beat (``MethodDeclaration.claims``, registry names; ``@K`` is a stage)."""
    from regkit.registry import available_registrars

    registrars = registrars or {}
    declared = available_registrars()
    by_name: dict[str, str] = {}
    for label in methods:
        by_name.setdefault(registrars.get(label, label), label)
        by_name.setdefault(label, label)
    found = []
    for label in methods:
        decl = declared.get(registrars.get(label, label))
        for claim in decl.claims if decl is not None else ():
            other = Arm.parse(claim)
            if other.method in by_name:
                found.append(Comparison(Arm(label), Arm(by_name[other.method], other.stage), "paper"))
    return found
