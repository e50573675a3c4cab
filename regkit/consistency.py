"""How far a registration can be trusted without the ground truth: its consistency, and ``suspect``.

A registration's result should be a fixed point of its method: started again a few millimetres away, the method
should come back to it. The measure, the **restart spread**, is the mean distance between the result and the
results of :data:`RESTARTS` restarts from the result perturbed by :data:`RADIUS_MM` (random rigid perturbations
drawn as the starts' protocol draws them, :func:`regkit.starts.draw_perturbation`, each moving the region of
interest by that much on average, seeded by the case). Distances are means over the fixed image's region of
interest (:func:`roi_points`: the MR prostate label grown by :data:`ROI_MARGIN_MM`, or, without a label, the part of
the fixed image that overlaps the moving image under the result).

A result whose spread exceeds :data:`THRESHOLD_MM` is **suspect**. It keeps its status (``ok``, ``not converged``):
the flag informs, it drops nothing. A failed registration is not measured (its status says enough).

The measure, the threshold, the radius and the number of restarts were chosen on development data only, against
the truth: the real multimodal MR pairs and real prostate anatomy with simulated TRUS (``bench/qa_flag.py``;
BENCHMARKS.md, "Reliability", gives what the flag catches and misses there and on held-out test data). Restarts
from the result separated the registrations ending more than 2 mm from the truth from the others better than
inverse consistency (which EPI distortion and a moving image without a mask spoil), restarts from the start (which
land in other optima from good results too), a network's spread under perturbed starts, or between its cascade's
stages; two restarts did as well as three. The threshold was chosen again when ``mi``'s general recipe changed
(more precise on the MR pairs): the same 1.5 mm.

What it misses: a wrong optimum the method comes back to from nearby. From the spine dev pair's 16 mm starts,
``mi`` ends 10-31 mm from the reference in optima along the cord; restarts from some of them return within
0.3-2 mm (from others they go on to another optimum), so the flag misses some draws: 2 of 12 such results measured
0.69 and 1.21 mm, and regkit's own restarts from the README's first two starts 1.41 and 1.23 mm. The flag warns;
it does not guarantee.

A registrar may measure itself: a method ``consistency(pairs, results, **settings)`` returning one
:class:`Consistency` (or None) per result is called instead of the restarts (a chain measures its last member, from
that member's start: :meth:`regkit.chain.ChainRegistrar.consistency`).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from regkit.case import Case
from regkit.image import ImageGeometry
from regkit.registrar import FAILED, Registrar, RegistrationResult, check_results
from regkit.transform import RigidTransform

MEASURE = "restart spread"
#: A result whose restart spread exceeds this is suspect. Chosen on development data only (bench/qa_flag.py): of
#: 134 registrations (mi and mind on the real multimodal MR pairs; mi, mind, attreg and attreg+mi on real prostate
#: anatomy with simulated TRUS from the held-out PROMISE12 MRs; 8 and 16 mm starts), the threshold that best
#: separates those ending more than 2 mm from the truth (sensitivity minus false-alarm rate) was 1.54 mm; the same
#: after mi's general recipe changed (rerun on the MR pairs). One threshold for every method: a lower one for mi's
#: general recipe alone (its good results spread 0.02-0.84 mm, its wrong optima 0.69 mm and more, over 12 starts per
#: pair and level) would catch 2 more of its 14 bad results for 1 more false alarm, no better pooled, and mi's
#: ultrasound recipe (alone, or last in attreg+mi) spreads up to 1.9 mm when good.
THRESHOLD_MM = 1.5
#: Restarts, and how far from the result they start (mean displacement over the region of interest).
RESTARTS = 2
RADIUS_MM = 4.0
#: The region of interest: the MR prostate label grown by this margin, sampled on a grid of this step.
ROI_MARGIN_MM = 10.0
ROI_STEP_MM = 3.0
ROI_MAX_POINTS = 2000


@dataclass(frozen=True)
class Consistency:
    """A registration's consistency, measured without the ground truth.

    Attributes
    ----------
    value_mm : float
        The measure (mm): the mean over restarts of the mean distance from the result over the region of interest.
    suspect : bool
        ``value_mm > threshold_mm``.
    measure : str
        Its name (:data:`MEASURE`, or a registrar's own).
    threshold_mm : float
    distances_mm : tuple of float
        Each restart's mean distance from the result.
    seconds : float
        The time the measure took (its restarts).
    """

    value_mm: float
    suspect: bool
    measure: str = MEASURE
    threshold_mm: float = THRESHOLD_MM
    distances_mm: tuple[float, ...] = field(default=())
    seconds: float = 0.0

    def describe(self) -> str:
        """``"restart spread 5.31 mm, above the 1.50 mm threshold"`` (or ``"within"``)."""
        where = "above" if self.suspect else "within"
        return f"{self.measure} {self.value_mm:.2f} mm, {where} the {self.threshold_mm:.2f} mm threshold"

    def to_dict(self) -> dict:
        return {"measure": self.measure, "value_mm": round(float(self.value_mm), 4), "suspect": bool(self.suspect),
                "threshold_mm": self.threshold_mm, "distances_mm": [round(float(d), 4) for d in self.distances_mm],
                "seconds": round(float(self.seconds), 3)}


def check(registrar: Registrar, pairs: Sequence[tuple[Case, RigidTransform]], results: Sequence[RegistrationResult],
          *, restarts: int = RESTARTS, radius_mm: float = RADIUS_MM, threshold_mm: float = THRESHOLD_MM
          ) -> list[Consistency | None]:
    """The consistency of each result of ``registrar.register_many(pairs)`` (None for a failed one): the
    registrar's own ``consistency`` method when it has one, else the restart spread (:func:`restart_spread`)."""
    own = getattr(registrar, "consistency", None)
    settings = dict(restarts=restarts, radius_mm=radius_mm, threshold_mm=threshold_mm)
    if callable(own):
        return list(own(pairs, results, **settings))
    return restart_spread(registrar, pairs, results, **settings)


def check_safely(registrar: Registrar, pairs: Sequence[tuple[Case, RigidTransform]],
                 results: Sequence[RegistrationResult], **settings) -> tuple[list[Consistency | None], str]:
    """:func:`check`, and an empty note; or, when the measure itself fails (a registrar's own measure that
    raises), no measure and a note saying why: a fault of the measure must not lose a registration's result."""
    try:
        return check(registrar, pairs, results, **settings), ""
    except Exception as exc:
        return [None] * len(results), f"consistency not measured: {type(exc).__name__}: {exc}"


def restart_spread(registrar: Registrar, pairs: Sequence[tuple[Case, RigidTransform]],
                   results: Sequence[RegistrationResult], *, restarts: int = RESTARTS, radius_mm: float = RADIUS_MM,
                   threshold_mm: float = THRESHOLD_MM) -> list[Consistency | None]:
    """The restart spread of each result (module docstring); every restart in one ``register_many`` call, so that
    a batched registrar (a network) runs them together."""
    todo, rois = [], {}
    for i, ((case, _), result) in enumerate(zip(pairs, results, strict=True)):
        if result.status == FAILED:
            continue
        rois[i] = roi_points(case, result.transform)
        seed = zlib.crc32(case.case_id.encode())
        todo += [(i, case, result.transform @ p) for p in perturbations(rois[i], radius_mm, restarts, seed)]
    t0 = time.perf_counter()
    restarts_of = [(case, start) for _, case, start in todo]
    runs = check_results(registrar.register_many(restarts_of), restarts_of, getattr(registrar, "name", "?")) \
        if todo else []
    each = (time.perf_counter() - t0) / max(len(todo), 1)
    distances: dict[int, list[float]] = {}
    for (i, _, _), run in zip(todo, runs, strict=True):
        distances.setdefault(i, []).append(distance(run.transform, results[i].transform, rois[i]))
    out: list[Consistency | None] = [None] * len(results)
    for i, d in distances.items():
        value = float(np.mean(d))
        out[i] = Consistency(value, value > threshold_mm, MEASURE, threshold_mm, tuple(d), each * len(d))
    return out


def roi_points(case: Case, transform: RigidTransform | None = None, margin_mm: float = ROI_MARGIN_MM,
               step_mm: float = ROI_STEP_MM, max_points: int = ROI_MAX_POINTS) -> np.ndarray:
    """Points (N, 3; LPS mm) of the fixed image's region of interest, on a regular grid of ``step_mm``.

    With an MR prostate label: the label grown by ``margin_mm``. Without one: the fixed image where it overlaps
    the moving image under ``transform`` (the whole fixed image when nothing overlaps, or no transform is given).
    At most ``max_points``, evenly subsampled.
    """
    if case.fixed_label is not None:
        points = _label_region(case, margin_mm, step_mm)
    else:
        geo = ImageGeometry.of(case.fixed)
        step = max(step_mm, float(np.prod(geo.extent) / (max_points * 20)) ** (1 / 3))
        axes = [np.arange(0, n, max(1.0, step / sp)) for n, sp in zip(geo.size, geo.spacing, strict=True)]
        points = geo.to_physical(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3))
        if transform is not None:
            overlap = points[_inside(ImageGeometry.of(case.moving), transform.apply(points))]
            if len(overlap) >= 4:
                points = overlap
    if len(points) > max_points:
        points = points[np.linspace(0, len(points) - 1, max_points).round().astype(int)]
    return points


def _label_region(case: Case, margin_mm: float, step_mm: float) -> np.ndarray:
    """Grid points inside the MR prostate label or within ``margin_mm`` of its surface."""
    from scipy.spatial import cKDTree

    surface = np.asarray(case.surface_points, float)
    lo, hi = surface.min(axis=0) - margin_mm, surface.max(axis=0) + margin_mm
    axes = [np.arange(a, b + step_mm / 2, step_mm) for a, b in zip(lo, hi, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    near = cKDTree(surface).query(grid, distance_upper_bound=margin_mm)[0] <= margin_mm
    geo = ImageGeometry.of(case.fixed_label)
    idx = np.rint(geo.to_index(grid)).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(geo.size)), axis=1)
    in_label = np.zeros(len(grid), bool)
    ii = idx[inside]
    in_label[inside] = sitk.GetArrayViewFromImage(case.fixed_label)[ii[:, 2], ii[:, 1], ii[:, 0]] > 0
    return grid[near | in_label]


def _inside(geometry: ImageGeometry, points: np.ndarray) -> np.ndarray:
    idx = geometry.to_index(points)
    return np.all((idx >= -0.5) & (idx <= np.array(geometry.size) - 0.5), axis=1)


def distance(a: RigidTransform, b: RigidTransform, points: np.ndarray) -> float:
    """Mean distance (mm) between ``a(p)`` and ``b(p)`` over ``points``: SRE's formula (:func:`regkit.sre.sre`)
    over the region of interest."""
    from regkit.sre import sre

    return float(sre(a, b, points))


def perturbations(points: np.ndarray, radius_mm: float, count: int, seed: int = 0) -> list[RigidTransform]:
    """``count`` random rigid perturbations (about the points' centroid), each moving ``points`` by ``radius_mm``
    on average (the starts' protocol, :func:`regkit.starts.draw_perturbation`), seeded."""
    from regkit.starts import draw_perturbation

    rng = np.random.default_rng([int(seed), round(radius_mm * 1000), count])
    return [draw_perturbation(rng, points, radius_mm) for _ in range(count)]
