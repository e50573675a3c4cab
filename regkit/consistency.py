"""How far a registration can be trusted, without the ground truth: its consistency measure and ``suspect``.

Draft helpers (the measure's region of interest, the distance between two transforms over it, perturbed
restarts, the swapped case); the measure itself is chosen by ``bench/qa_flag.py``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from regkit.case import Case
from regkit.image import ImageGeometry
from regkit.transform import RigidTransform

#: The region of interest: the MR prostate label grown by this margin, sampled on a grid of this step.
ROI_MARGIN_MM = 10.0
ROI_STEP_MM = 3.0
ROI_MAX_POINTS = 2000


def roi_points(case: Case, transform: RigidTransform | None = None, margin_mm: float = ROI_MARGIN_MM,
               step_mm: float = ROI_STEP_MM, max_points: int = ROI_MAX_POINTS) -> np.ndarray:
    """Points (N, 3; LPS mm) of the fixed image's region of interest, on a regular grid of ``step_mm``.

    With an MR prostate label: the label grown by ``margin_mm``. Without one: the fixed image where it overlaps
    the moving image under ``transform`` (the whole fixed image when nothing overlaps, or no transform is given).
    At most ``max_points``, evenly subsampled.
    """
    from scipy.spatial import cKDTree

    if case.fixed_label is not None:
        geo = ImageGeometry.of(case.fixed_label)
        surface = np.asarray(case.surface_points, float)
        lo, hi = surface.min(axis=0) - margin_mm, surface.max(axis=0) + margin_mm
        grid = _grid(lo, hi, step_mm)
        near = cKDTree(surface).query(grid, distance_upper_bound=margin_mm)[0] <= margin_mm
        idx = np.rint(geo.to_index(grid)).astype(int)
        size = np.array(geo.size)
        inside_image = np.all((idx >= 0) & (idx < size), axis=1)
        label = sitk.GetArrayViewFromImage(case.fixed_label)
        in_label = np.zeros(len(grid), bool)
        ii = idx[inside_image]
        in_label[inside_image] = label[ii[:, 2], ii[:, 1], ii[:, 0]] > 0
        points = grid[near | in_label]
    else:
        fixed_geo = ImageGeometry.of(case.fixed)
        size = np.array(fixed_geo.size)
        step = max(step_mm, float(np.prod(fixed_geo.extent) / (max_points * 20)) ** (1 / 3))
        axes = [np.arange(0, n, max(1.0, step / sp)) for n, sp in zip(size, fixed_geo.spacing, strict=True)]
        grid = fixed_geo.to_physical(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3))
        points = grid
        if transform is not None:
            overlap = grid[_inside(ImageGeometry.of(case.moving), transform.apply(grid))]
            if len(overlap) >= 4:
                points = overlap
    if len(points) > max_points:
        points = points[np.linspace(0, len(points) - 1, max_points).round().astype(int)]
    return points


def _grid(lo: np.ndarray, hi: np.ndarray, step: float) -> np.ndarray:
    axes = [np.arange(a, b + step / 2, step) for a, b in zip(lo, hi, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _inside(geometry: ImageGeometry, points: np.ndarray) -> np.ndarray:
    idx = geometry.to_index(points)
    return np.all((idx >= -0.5) & (idx <= np.array(geometry.size) - 0.5), axis=1)


def distance(a: RigidTransform, b: RigidTransform, points: np.ndarray) -> float:
    """Mean distance (mm) between ``a(p)`` and ``b(p)`` over ``points``."""
    return float(np.linalg.norm(a.apply(points) - b.apply(points), axis=1).mean())


def perturbations(points: np.ndarray, radius_mm: float, count: int, seed: int = 0) -> list[RigidTransform]:
    """``count`` random rigid perturbations (about the points' centroid) each moving ``points`` by ``radius_mm``
    on average (the starts' protocol, :func:`regkit.starts.draw_perturbation`), seeded."""
    from regkit.starts import draw_perturbation

    rng = np.random.default_rng([int(seed), int(round(radius_mm * 1000)), count])
    return [draw_perturbation(rng, points, radius_mm) for _ in range(count)]


def swapped_case(case: Case) -> Case:
    """The same pair the other way round: the moving image as the fixed one, the fixed image (and its label) as
    the moving one; its ground truth is the inverse. A moving label is left out: a user rarely has one."""
    return Case(f"{case.case_id}-swapped", case.moving, case.fixed, None,
                ground_truth=None if case.ground_truth is None else case.ground_truth.inverse(),
                moving_label=case.fixed_label, metadata={"moving_modality": "MR", "swapped": True})
