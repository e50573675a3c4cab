"""The starting-transform protocol of the paper, and test sets of starts saved as files.

A start is drawn as follows (Song et al. 2021, §3.1, and the authors' lab code):

1. draw a perturbation ``P`` with translations uniform in ±5 mm and rotations uniform in ±6° per axis
   (parameters ``[tx, ty, tz, ax, ay, az]``, R = Rz·Ry·Rx) about the centroid of the MR surface points;
2. compose it with the ground truth: ``start = T_gt ∘ P``, so ``P`` moves the MR points before ``T_gt`` maps
   them to TRUS space and ``SRE(start) = mean ‖P(p) − p‖``;
3. scale all six parameters by one factor ``s`` so that the SRE equals the target. Linear scaling is exact
   only for translations, so ``s`` is solved for numerically (Brent's method), to within 1e-4 mm. A
   perturbation that needs ``s > max_scale`` (nearly zero SRE, which would blow the angles up) is redrawn.

The target is fixed (``8mm``) or drawn uniformly from a range (``0-20mm``). Every (case, init) pair has its own
random stream, seeded by the seed, the case id and the init label, so a case's starts do not depend on which
other cases are in the set.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

from regkit.atomic import atomic_path
from regkit.errors import InputError, check_path, check_whole
from regkit.sre import displacement_sre, sre
from regkit.transform import RigidTransform

TRANSLATION_RANGE_MM = 5.0
ROTATION_RANGE_DEG = 6.0
MAX_SCALE = 10.0
SRE_TOLERANCE_MM = 1e-4
MATRIX_COLUMNS = [f"m{i}{j}" for i in range(4) for j in range(4)]
START_COLUMNS = ["case", "start_id", "init", "target_sre", "seed", *MATRIX_COLUMNS]


@dataclass(frozen=True)
class InitSpec:
    """A starting-error setting: a fixed SRE or a uniform range, in mm."""

    low: float
    high: float

    @property
    def label(self) -> str:
        return f"{_fmt(self.low)}mm" if self.low == self.high else f"{_fmt(self.low)}-{_fmt(self.high)}mm"

    def draw(self, rng: np.random.Generator) -> float:
        return self.low if self.low == self.high else float(rng.uniform(self.low, self.high))

    def __str__(self) -> str:
        return self.label


def _fmt(v: float) -> str:
    return f"{v:g}"


_NUMBER = r"\d+(?:\.\d*)?|\.\d+"


def parse_init(text: str) -> list[InitSpec]:
    """Parse ``8mm``, ``16``, ``0-20mm``, ``[0,20]mm`` or a comma list of these (``8mm,16mm``)."""
    if not isinstance(text, str):
        raise InputError(f"a starting error is text such as '8mm', '0-20mm' or '8mm,16mm', got {text!r}",
                         fix=f"write '{text}mm'" if isinstance(text, int | float) else "e.g. '8mm'")
    specs = []
    text = text.strip()
    items = re.findall(r"\[[^\]]*\](?:mm)?|[^,]+", text)
    for item in items:
        item = item.strip().lower().removesuffix("mm").strip()
        m_range = re.fullmatch(rf"\[?\s*({_NUMBER})\s*[-,:]\s*({_NUMBER})\s*\]?", item)
        m_fixed = re.fullmatch(rf"({_NUMBER})", item)
        if m_range:
            lo, hi = float(m_range.group(1)), float(m_range.group(2))
        elif m_fixed:
            lo = hi = float(m_fixed.group(1))
        else:
            raise InputError(f"cannot read starting error {item!r} in {text!r}",
                             fix="write a fixed SRE such as 8mm, a range such as 0-20mm, or a list: 8mm,16mm")
        if lo < 0 or hi < lo:
            raise InputError(f"bad starting-error range {item!r}: need 0 ≤ low ≤ high")
        specs.append(InitSpec(lo, hi))
    if not specs:
        raise InputError(f"no starting error in {text!r}", fix="e.g. --init 8mm")
    return specs


def start_rng(seed: int, case_id: str, init_label: str) -> np.random.Generator:
    """The random stream of one (case, init) pair."""
    return np.random.default_rng([int(seed), zlib.crc32(case_id.encode()), zlib.crc32(init_label.encode())])


def random_perturbation_params(rng: np.random.Generator,
                               translation: float = TRANSLATION_RANGE_MM,
                               rotation: float = ROTATION_RANGE_DEG) -> np.ndarray:
    """``[tx, ty, tz, ax, ay, az]`` uniform in ±translation mm and ±rotation degrees."""
    return np.concatenate([rng.uniform(-translation, translation, 3), rng.uniform(-rotation, rotation, 3)])


def scale_to_sre(params: np.ndarray, center: np.ndarray, points: np.ndarray, target: float,
                 max_scale: float = MAX_SCALE) -> tuple[RigidTransform, float] | None:
    """The perturbation ``P(s·params)`` about ``center`` whose SRE is ``target``, and ``s``.

    Returns None when the target needs a scale above ``max_scale``.
    """
    if target == 0:
        return RigidTransform.identity(), 0.0

    def excess(s: float) -> float:
        return displacement_sre(RigidTransform.from_params(s * params, center), points) - target

    if excess(max_scale) < 0:
        return None
    hi = 1.0
    while excess(hi) < 0:
        hi *= 2.0
    lo = hi / 2.0 if hi > 1.0 else 0.0
    s = brentq(excess, lo, min(hi, max_scale), xtol=1e-12, rtol=1e-12)
    p = RigidTransform.from_params(s * params, center)
    if abs(displacement_sre(p, points) - target) > SRE_TOLERANCE_MM:
        return None
    return p, float(s)


def draw_perturbation(rng: np.random.Generator, points: np.ndarray, target: float,
                      center: np.ndarray | None = None) -> RigidTransform:
    """A fixed-space perturbation with SRE ``target`` over ``points`` (redrawn until the scale is sane)."""
    pts = np.asarray(points, dtype=float)
    c = pts.mean(axis=0) if center is None else np.asarray(center, float)
    for _ in range(100):
        found = scale_to_sre(random_perturbation_params(rng), c, pts, target)
        if found is not None:
            return found[0]
    raise InputError(f"could not draw a perturbation with SRE {target} mm in 100 tries; is the target sane?")


def draw_start(rng: np.random.Generator, ground_truth: RigidTransform, points: np.ndarray,
               target: float) -> RigidTransform:
    """A start ``T_gt ∘ P`` whose SRE is ``target``."""
    return ground_truth @ draw_perturbation(rng, points, target)


@dataclass(frozen=True)
class Start:
    """One starting transform of a test set."""

    case: str
    start_id: int
    init: str
    target_sre: float
    seed: int
    transform: RigidTransform


def make_starts(cases, init: str | InitSpec | Sequence[InitSpec], per_case: int, seed: int = 0) -> list[Start]:
    """Draw ``per_case`` starts for each case (anything with ``case_id``, ``ground_truth``, ``surface_points``)
    and starting error (``init``: text such as ``8mm,16mm``, or settings already read by :func:`parse_init`)."""
    cases = _check_cases(cases)
    if isinstance(init, str):
        specs = parse_init(init)
    elif isinstance(init, InitSpec):
        specs = [init]
    elif isinstance(init, Sequence) and init and all(isinstance(i, InitSpec) for i in init):
        specs = list(init)
    else:
        raise InputError(f"init must be a starting error such as '8mm' (or InitSpec settings), got {init!r}",
                         fix="e.g. make_starts(cases, '8mm', 3)")
    check_whole("starts per case", per_case, 1, fix="e.g. per_case=3")
    check_whole("the seed", seed, 0, fix="e.g. seed=0")
    out = []
    for spec in specs:
        for case in cases:
            if case.ground_truth is None:
                raise InputError(f"case {case.case_id!r} has no ground truth, so no starts can be drawn")
            rng = start_rng(seed, case.case_id, spec.label)
            for k in range(per_case):
                target = spec.draw(rng)
                t = draw_start(rng, case.ground_truth, case.surface_points, target)
                out.append(Start(case.case_id, k, spec.label, target, seed, t))
    return out


def _check_cases(cases) -> list:
    """``cases`` as a list of cases (anything with ``case_id``, ``ground_truth`` and ``surface_points``)."""
    fix = "give a list of cases, e.g. [dataset.load('case000')] or list(dataset)"
    if isinstance(cases, str | bytes) or not isinstance(cases, Iterable):
        raise InputError(f"cases must be a list of cases, got {type(cases).__name__} {cases!r}"[:200], fix=fix)
    cases = list(cases)
    for case in cases:
        if not all(hasattr(case, a) for a in ("case_id", "ground_truth", "surface_points")):
            raise InputError(f"cases must be cases (with case_id, ground_truth and surface_points), got "
                             f"{type(case).__name__} {case!r}"[:200], fix=fix)
        if case.ground_truth is not None and not isinstance(case.ground_truth, RigidTransform):
            raise InputError(f"case {case.case_id!r}'s ground truth must be a RigidTransform, got "
                             f"{type(case.ground_truth).__name__}", fix=fix)
    return cases


def starts_to_frame(starts: list[Start]):
    import pandas as pd

    rows = []
    for s in starts:
        rows.append([s.case, s.start_id, s.init, s.target_sre, s.seed, *s.transform.matrix.ravel().tolist()])
    return pd.DataFrame(rows, columns=START_COLUMNS)


def starts_from_frame(frame, source: str | None = None) -> list[Start]:
    """The starts of a table of :data:`START_COLUMNS` (numbers already numbers: see :func:`read_starts`)."""
    missing = [c for c in START_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"the starts file lacks columns {missing}", source,
                         "write it with regkit.starts.write_starts")
    mats = frame[MATRIX_COLUMNS].to_numpy(float).reshape(-1, 4, 4)
    out = []
    for row, m in zip(frame.itertuples(index=False), mats, strict=True):
        t = RigidTransform.from_matrix(m, orthonormalize=True, source=source)
        out.append(Start(str(row.case), int(row.start_id), str(row.init), float(row.target_sre), int(row.seed), t))
    return out


def write_starts(starts: list[Start], path: str | Path) -> Path:
    """Save a test set of starts as CSV (one row per start, the 4×4 matrix in 16 columns, full precision)."""
    path = check_path("the starts path", path)
    if not isinstance(starts, list | tuple) or not all(isinstance(s, Start) for s in starts):
        raise InputError("write_starts takes a list of Start objects (from make_starts or read_starts)", path)
    with atomic_path(path) as tmp:
        starts_to_frame(starts).to_csv(tmp, index=False, float_format="%.17g")
    return path


STARTS_FIX = "write it with regkit.starts.write_starts (or let regkit compare draw the starts)"


def read_starts(path: str | Path, cases=None) -> list[Start]:
    """A test set of starts from a file written by :func:`write_starts`, checked.

    Each start is keyed by (case, start id, starting error) once; its target SRE is a finite number ≥ 0 and its
    matrix a finite rigid transform. With ``cases`` (anything with ``case_id``, ``ground_truth`` and
    ``surface_points``), each start of one of those cases must have the SRE it states against that case's ground
    truth (within :data:`STORED_SRE_TOLERANCE_MM`): otherwise the starts belong to another dataset or ground truth.
    """
    from regkit.records import read_table

    path = check_path("the starts file", path)
    kinds = {"case": "text", "start_id": "whole", "init": "text", "target_sre": "number", "seed": "whole",
             **{c: "number" for c in MATRIX_COLUMNS}}
    frame = read_table(path, "starts file", kinds, fix=STARTS_FIX)
    bad = frame.index[~(frame["target_sre"] >= 0) | ~np.isfinite(frame["target_sre"])]
    if len(bad):
        raise InputError(f"the starts file's target_sre on line {bad[0] + 2} is {frame['target_sre'][bad[0]]!r}: a "
                         "target SRE is a finite number of mm, ≥ 0", path, STARTS_FIX)
    twice = frame.duplicated(subset=["case", "start_id", "init"], keep=False)
    if twice.any():
        rows = frame.index[twice][:2]
        key = frame.loc[rows[0], ["case", "start_id", "init"]].tolist()
        raise InputError(f"the starts file lists start {key[1]} of case {key[0]!r} ({key[2]}) more than once (lines "
                         f"{', '.join(str(r + 2) for r in rows)}): each (case, start_id, init) is one start", path,
                         "give each start its own start_id, or remove the repeated rows")
    starts = starts_from_frame(frame, str(path))
    if cases is not None:
        check_stored_sre(starts, _check_cases(cases), path)
    return starts


STORED_SRE_TOLERANCE_MM = 1e-3  # regkit draws starts to within 1e-4 mm of their target and stores 17 digits


def check_stored_sre(starts: list[Start], cases, source: str | Path | None = None) -> None:
    """Each start of one of ``cases`` has the SRE its ``target_sre`` states, against the case's ground truth."""
    by_id = {c.case_id: c for c in cases}
    for s in starts:
        case = by_id.get(s.case)
        if case is None or case.ground_truth is None or case.surface_points is None:
            continue
        actual = float(sre(s.transform, case.ground_truth, case.surface_points))
        if abs(actual - s.target_sre) > STORED_SRE_TOLERANCE_MM:
            raise InputError(
                f"start {s.start_id} of case {s.case!r} ({s.init}) states a target SRE of {s.target_sre:g} mm, but its "
                f"matrix is {actual:.4g} mm from this case's ground truth: the starts belong to another dataset or "
                "ground truth, or were edited", source,
                "draw the starts for this dataset (leave out --starts), or give the starts file made for it")
