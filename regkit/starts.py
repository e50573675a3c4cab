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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

from regkit.atomic import atomic_path
from regkit.errors import InputError, check_whole
from regkit.sre import displacement_sre
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
    specs = parse_init(init) if isinstance(init, str) else [init] if isinstance(init, InitSpec) else list(init)
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


def starts_to_frame(starts: list[Start]):
    import pandas as pd

    rows = []
    for s in starts:
        rows.append([s.case, s.start_id, s.init, s.target_sre, s.seed, *s.transform.matrix.ravel().tolist()])
    return pd.DataFrame(rows, columns=START_COLUMNS)


def starts_from_frame(frame, source: str | None = None) -> list[Start]:
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
    path = Path(path)
    with atomic_path(path) as tmp:
        starts_to_frame(starts).to_csv(tmp, index=False, float_format="%.17g")
    return path


def read_starts(path: str | Path) -> list[Start]:
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise InputError("the starts file does not exist", path)
    try:
        frame = pd.read_csv(path, dtype={"case": str, "init": str}, keep_default_na=False, na_values=[""])
    except Exception as exc:
        raise InputError(f"cannot read the starts file: {exc}", path) from None
    return starts_from_frame(frame, str(path))
