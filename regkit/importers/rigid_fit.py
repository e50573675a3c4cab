"""Rigid fits of a gland surface (and landmarks) onto another: robust point-to-plane ICP, the starts of the
surfaces-only search, and the mirror image used to find flipped axes (used by :mod:`regkit.importers.reference`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from regkit.errors import InputError
from regkit.transform import RigidTransform

if TYPE_CHECKING:  # pragma: no cover
    from regkit.surface import MeshDistance

AMBIGUITY_DEGREES = 20.0  # a runner-up orientation counts when it differs from the best by more


@dataclass
class GlandSurface:
    """A gland surface in physical mm: vertices, triangles (None for bare points) and the volume it encloses."""

    points: np.ndarray
    faces: np.ndarray | None = None
    volume_mm3: float | None = None

    @classmethod
    def of(cls, surface, what: str = "surface") -> GlandSurface:
        """From ``(points, faces)``, an ``(N, 3)`` point array, or a binary SimpleITK label."""
        from regkit.surface import label_mesh, mesh_volume

        if isinstance(surface, GlandSurface):
            return surface
        if hasattr(surface, "GetSize"):
            import SimpleITK as sitk

            count = int((sitk.GetArrayViewFromImage(surface) > 0).sum())
            if count < 8:
                raise InputError(f"the {what} label has {count} voxels inside; a gland label is needed")
            pts, faces = label_mesh(surface)
            return cls(pts, np.asarray(faces, np.int64), count * float(np.prod(surface.GetSpacing())))
        if isinstance(surface, tuple) and len(surface) == 2:
            pts, faces = np.asarray(surface[0], float), np.asarray(surface[1], np.int64)
            return cls(pts, faces, mesh_volume(pts, faces) if len(faces) else None)
        pts = np.asarray(surface, float)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 4:
            raise InputError(f"the {what} must be (points, faces), (N, 3) points or a label; got shape {pts.shape}")
        return cls(pts)


def sample_points(points: np.ndarray, count: int) -> np.ndarray:
    if len(points) <= count:
        return points
    return points[np.linspace(0, len(points) - 1, count).round().astype(int)]


def rodrigues(w: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(w))
    if theta < 1e-12:
        return np.eye(3)
    k = w / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


class FitProblem:
    """The fit's data: MR points (possibly mirrored), the TRUS surface, landmarks; ICP and its score."""

    def __init__(self, mr: GlandSurface, us: GlandSurface | MeshDistance, lm_fixed: np.ndarray,
                 lm_moving: np.ndarray, huber_mm: float, sample: int, coarse: int = 400):
        from regkit.surface import MeshDistance

        self.mr_points = sample_points(mr.points, sample)
        self.coarse_points = sample_points(mr.points, coarse)
        self.us = us if isinstance(us, MeshDistance) else MeshDistance(us.points, us.faces)
        self.lm_fixed, self.lm_moving = lm_fixed, lm_moving
        self.huber = huber_mm

    def icp(self, matrix: np.ndarray, iterations: int = 50, tolerance: float = 1e-3,
            coarse: bool = False) -> tuple[np.ndarray, int]:
        """Refine a 4×4 matrix (proper or improper) by point-to-plane ICP against the TRUS mesh's nearest
        vertices and their normals (point-to-point without faces); return it and the iterations run."""
        m = matrix.copy()
        n_lm = len(self.lm_fixed)
        points = self.coarse_points if coarse else self.mr_points
        it = 0
        for it in range(1, iterations + 1):  # noqa: B007 (returned)
            p = points @ m[:3, :3].T + m[:3, 3]
            q, _, normals = self.us.nearest_vertex(p)
            centre = p.mean(axis=0)
            pc = p - centre
            if normals is not None:
                r = np.einsum("ij,ij->i", p - q, normals)
                rows = np.hstack([np.cross(pc, normals), normals])
            else:
                rows = np.concatenate([np.hstack([np.cross(pc, e), np.broadcast_to(e, pc.shape)]) for e in np.eye(3)])
                r = np.concatenate([(p - q)[:, k] for k in range(3)])
            w = np.where(np.abs(r) <= self.huber, 1.0, self.huber / np.maximum(np.abs(r), 1e-12)) / len(r)
            a = rows.T @ (rows * w[:, None])
            b = rows.T @ (w * r)
            if n_lm:
                lp = self.lm_fixed @ m[:3, :3].T + m[:3, 3]
                lc = lp - centre
                lr = np.concatenate([(lp - self.lm_moving)[:, k] for k in range(3)])
                lrows = np.concatenate([np.hstack([np.cross(lc, e), np.broadcast_to(e, lc.shape)]) for e in np.eye(3)])
                lw = np.full(len(lr), 1.0 / n_lm)
                a += lrows.T @ (lrows * lw[:, None])
                b += lrows.T @ (lw * lr)
            try:
                delta = -np.linalg.solve(a + 1e-9 * np.eye(6), b)
            except np.linalg.LinAlgError:
                break
            step = np.eye(4)
            step[:3, :3] = rodrigues(delta[:3])
            step[:3, 3] = centre - step[:3, :3] @ centre + delta[3:]
            m = step @ m
            moved = np.linalg.norm(delta[3:]) + np.linalg.norm(delta[:3]) * np.abs(pc).max()
            if moved < tolerance:
                break
        return m, it

    def score(self, matrix: np.ndarray, coarse: bool = False) -> float:
        """Mean MR → TRUS surface distance (point-to-plane at the nearest vertex), plus the landmark RMS
        residual (mm)."""
        p = (self.coarse_points if coarse else self.mr_points) @ matrix[:3, :3].T + matrix[:3, 3]
        q, d, normals = self.us.nearest_vertex(p)
        s = float((d if normals is None else np.abs(np.einsum("ij,ij->i", p - q, normals))).mean())
        if len(self.lm_fixed):
            lp = self.lm_fixed @ matrix[:3, :3].T + matrix[:3, 3]
            s += float(np.sqrt((np.linalg.norm(lp - self.lm_moving, axis=1) ** 2).mean()))
        return s


def principal_axes(points: np.ndarray) -> np.ndarray:
    c = points - points.mean(axis=0)
    _, vecs = np.linalg.eigh(c.T @ c)
    return vecs[:, ::-1]  # columns: major to minor


def cube_rotations() -> list[np.ndarray]:
    out = []
    for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        for signs in np.ndindex(2, 2, 2):
            r = np.zeros((3, 3))
            for i, (j, s) in enumerate(zip(perm, signs, strict=True)):
                r[i, j] = -1.0 if s else 1.0
            if np.linalg.det(r) > 0:
                out.append(r)
    return out


def starts(mr: np.ndarray, us: np.ndarray) -> list[np.ndarray]:
    """Rotations to start the surfaces-only fit from, each centred on the gland centroids."""
    e_mr, e_us = principal_axes(mr), principal_axes(us)
    rots = []
    for signs in np.ndindex(2, 2, 2):
        s = np.diag([-1.0 if k else 1.0 for k in signs])
        r = e_us @ s @ e_mr.T
        if np.linalg.det(r) > 0:
            rots.append(r)
    rots += cube_rotations()
    c_mr, c_us = mr.mean(axis=0), us.mean(axis=0)
    starts = []
    for r in rots:
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = c_us - r @ c_mr
        starts.append(m)
    return starts


def rotation_between(a: np.ndarray, b: np.ndarray) -> float:
    r = a[:3, :3].T @ b[:3, :3]
    return float(np.rad2deg(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))


@dataclass
class Fit:
    matrix: np.ndarray
    score: float
    iterations: int


def fit_surfaces(problem: FitProblem, init: np.ndarray | None, runner_up: bool, refine: int = 4
         ) -> tuple[Fit, Fit | None, int]:
    """Refine ``init``; or (None) run a short ICP from every start on a few points, refine the ``refine`` best
    distinct ones fully, and return the best, the best runner-up whose rotation differs from it by more than
    ``AMBIGUITY_DEGREES`` (when ``runner_up``), and the number of starts."""
    if init is not None:
        m, it = problem.icp(init)
        return Fit(m, problem.score(m), it), None, 1
    coarse = []
    for start in starts(problem.mr_points, problem.us.points):
        m, it = problem.icp(start, iterations=12, tolerance=1e-2, coarse=True)
        coarse.append(Fit(m, problem.score(m, coarse=True), it))
    coarse.sort(key=lambda f: f.score)
    distinct: list[Fit] = []
    for f in coarse:
        if all(rotation_between(f.matrix, d.matrix) > 5.0 for d in distinct):
            distinct.append(f)
        if len(distinct) == refine:
            break
    fits = []
    for f in distinct:
        m, it = problem.icp(f.matrix)
        fits.append(Fit(m, problem.score(m), f.iterations + it))
    fits.sort(key=lambda f: f.score)
    best = fits[0]
    others = [f for f in fits[1:] if rotation_between(f.matrix, best.matrix) > AMBIGUITY_DEGREES]
    return best, (others[0] if runner_up and others else None), len(coarse)


def mirror(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    out = np.array(points, float, copy=True)
    out[:, 0] = 2 * centre[0] - out[:, 0]
    return out


def mirror_matrix(centre: np.ndarray) -> np.ndarray:
    s = np.eye(4)
    s[0, 0] = -1.0
    s[0, 3] = 2 * centre[0]
    return s


def random_offset(rng: np.random.Generator, max_translation_mm: float = 20.0,
                  max_rotation_deg: float = 15.0, centre: np.ndarray = (0.0, 0.0, 0.0)) -> RigidTransform:
    """A random rigid offset: a rotation of up to ``max_rotation_deg`` about a random axis through ``centre``
    and a translation of up to ``max_translation_mm`` in a random direction (for fixtures and checks)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0, max_rotation_deg))
    r = rodrigues(axis * angle)
    d = rng.normal(size=3)
    t = d / np.linalg.norm(d) * rng.uniform(0, max_translation_mm)
    c = np.asarray(centre, float)
    return RigidTransform.from_rotation_translation(r, c - r @ c + t)
