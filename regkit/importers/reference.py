"""The rigid reference (MR physical → TRUS physical) derived from labels, and how far it can be trusted.

Layouts such as µ-RegPro, DeepReg and TCIA Prostate-MRI-US-Biopsy ship no registration: the reference ("ground
truth") regkit measures SRE against has to come from the labels. It follows regkit's convention (a transform maps
fixed MR points to moving TRUS points, LPS mm).

How it is derived
-----------------
``"landmarks+surfaces"`` (≥ 3 corresponding landmarks, not collinear)
    A least-squares rigid fit of the landmark pairs (:func:`regkit.transform.fit_rigid`), refined by ICP that
    minimises, with equal total weights, the mean squared landmark residual and the mean Huber-weighted
    point-to-plane distance of the MR gland surface to the TRUS gland surface (exact closest points on the TRUS
    mesh; residuals beyond ``huber_mm`` count linearly, so a few bad surface points do not drag the fit).
``"surfaces"`` (fewer landmarks)
    The same ICP (with whatever landmarks there are in the objective) started from many rotations: the 4 proper
    sign choices of the glands' principal axes and the 24 rotations of the cube about the identity, each
    centred on the gland centroids. The start that ends with the lowest score wins; a 15° offset cannot fool it,
    since every rotation lies within 63° of one of the starts and the glands' shapes decide between them.
``"identity"``
    Only when asked for by name: the identity, with its quality measured all the same.

What is recorded (:class:`Reference`)
-------------------------------------
* the landmark residual after the fit, per landmark and its mean and maximum (mm);
* the gland surface distance after the fit: symmetric (MR surface → TRUS surface and back), mean and 95th
  percentile (mm), point-to-triangle;
* the Dice of the mapped gland labels (the MR label resampled into the TRUS grid under the reference);
* flags, each with its reason (:data:`FLAGS`), by the thresholds of :class:`ReferenceThresholds`.

A flipped axis is found by fitting the mirror image too: the MR surface and landmarks mirrored (a rigid transform
cannot flip), fitted the same way; when the mirror fits much better, an axis is flipped in one image's header or
array. A wrong pairing (images of two patients) leaves landmarks that no rigid transform aligns, glands of
different volumes or shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from regkit.errors import InputError
from regkit.transform import RigidTransform, fit_rigid

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

    from regkit.importers.labels import Landmarks
    from regkit.surface import MeshDistance

ReferenceMethod = Literal["landmarks+surfaces", "surfaces", "identity"]
METHODS = ("auto", "landmarks+surfaces", "surfaces", "identity")

FLAGS = {
    "flipped-axis": "a mirror image of the MR fits the TRUS much better than any rotation: an axis is flipped",
    "wrong-pairing": "the MR and TRUS look like two different patients (landmarks no rigid transform aligns, or "
                     "glands of very different volumes)",
    "few-landmarks": "the labels have landmark channels but fewer than 3 usable pairs: the reference rests on the "
                     "gland surfaces",
    "poor-landmark-fit": "the landmark residual after the fit is large",
    "poor-surface-fit": "the gland surfaces do not agree after the fit",
    "low-dice": "the mapped gland labels overlap poorly",
    "ambiguous-orientation": "another, distinct orientation fits the surfaces nearly as well",
}


@dataclass(frozen=True)
class ReferenceThresholds:
    """Where a reference is flagged (mm unless stated). See ``docs/your-own-data.md`` for how each was chosen:
    between what an exact fit, a probe-deformed TRUS and a 2 mm label noise give (never flagged) and what a
    flipped axis or a wrong pairing give (always flagged)."""

    landmark_mean_mm: float = 3.0
    landmark_max_mm: float = 6.0
    surface_mean_mm: float = 1.5
    surface_p95_mm: float = 4.0
    dice_min: float = 0.80
    flip_ratio: float = 0.6  # mirror score / best proper score below this: flipped
    volume_ratio: float = 1.6  # larger gland volume / smaller above this: wrong pairing
    wrong_landmark_mean_mm: float = 6.0  # landmark mean residual above this: wrong pairing
    ambiguity_margin: float = 0.15  # runner-up score within this fraction of the best: ambiguous
    ambiguity_degrees: float = 20.0  # a runner-up counts when its rotation differs from the best by more


DEFAULT_THRESHOLDS = ReferenceThresholds()


@dataclass
class Reference:
    """A rigid reference derived from labels, and its quality.

    Attributes
    ----------
    transform : RigidTransform
        MR physical → TRUS physical (mm).
    method : {"landmarks+surfaces", "surfaces", "identity"}
    landmark_names : list of str
        The landmarks used, in the order of ``landmark_residuals_mm``.
    landmark_residuals_mm : list of float
        ``|T(MR landmark) − TRUS landmark|`` after the fit.
    surface_mean_mm, surface_p95_mm : float
        Symmetric gland surface distance after the fit.
    dice : float or None
        Dice of the mapped gland labels (None when no label or mesh allows it).
    flags : dict
        Flag name → reason, empty for a reference that passed every check.
    details : dict
        Scores of the mirror fit and the runner-up orientation, gland volumes, ICP iterations, ...
    """

    transform: RigidTransform
    method: ReferenceMethod
    landmark_names: list[str] = field(default_factory=list)
    landmark_residuals_mm: list[float] = field(default_factory=list)
    surface_mean_mm: float = float("nan")
    surface_p95_mm: float = float("nan")
    dice: float | None = None
    flags: dict[str, str] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    @property
    def landmark_mean_mm(self) -> float | None:
        return float(np.mean(self.landmark_residuals_mm)) if self.landmark_residuals_mm else None

    @property
    def landmark_max_mm(self) -> float | None:
        return float(np.max(self.landmark_residuals_mm)) if self.landmark_residuals_mm else None

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def to_json(self) -> dict:
        """The ``"reference"`` entry of ``case.json`` and of the import report."""

        def r(v):
            return None if v is None or not np.isfinite(v) else round(float(v), 4)

        return {
            "method": self.method,
            "landmarks": len(self.landmark_names),
            "landmark_residual_mean_mm": r(self.landmark_mean_mm),
            "landmark_residual_max_mm": r(self.landmark_max_mm),
            "landmark_residuals_mm": {n: r(v) for n, v in zip(self.landmark_names, self.landmark_residuals_mm,
                                                               strict=True)},
            "surface_distance_mean_mm": r(self.surface_mean_mm),
            "surface_distance_p95_mm": r(self.surface_p95_mm),
            "dice": r(self.dice),
            "flags": dict(self.flags),
            "details": self.details,
        }


# --------------------------------------------------------------------------- surfaces
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


def _sample(points: np.ndarray, count: int) -> np.ndarray:
    if len(points) <= count:
        return points
    return points[np.linspace(0, len(points) - 1, count).round().astype(int)]


def _rodrigues(w: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(w))
    if theta < 1e-12:
        return np.eye(3)
    k = w / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


class _Problem:
    """The fit's data: MR points (possibly mirrored), the TRUS surface, landmarks; ICP and its score."""

    def __init__(self, mr: GlandSurface, us: GlandSurface | MeshDistance, lm_fixed: np.ndarray,
                 lm_moving: np.ndarray, huber_mm: float, sample: int, coarse: int = 400):
        from regkit.surface import MeshDistance

        self.mr_points = _sample(mr.points, sample)
        self.coarse_points = _sample(mr.points, coarse)
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
            step[:3, :3] = _rodrigues(delta[:3])
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


def _principal_axes(points: np.ndarray) -> np.ndarray:
    c = points - points.mean(axis=0)
    _, vecs = np.linalg.eigh(c.T @ c)
    return vecs[:, ::-1]  # columns: major to minor


def _cube_rotations() -> list[np.ndarray]:
    out = []
    for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        for signs in np.ndindex(2, 2, 2):
            r = np.zeros((3, 3))
            for i, (j, s) in enumerate(zip(perm, signs, strict=True)):
                r[i, j] = -1.0 if s else 1.0
            if np.linalg.det(r) > 0:
                out.append(r)
    return out


def _starts(mr: np.ndarray, us: np.ndarray) -> list[np.ndarray]:
    """Rotations to start the surfaces-only fit from, each centred on the gland centroids."""
    e_mr, e_us = _principal_axes(mr), _principal_axes(us)
    rots = []
    for signs in np.ndindex(2, 2, 2):
        s = np.diag([-1.0 if k else 1.0 for k in signs])
        r = e_us @ s @ e_mr.T
        if np.linalg.det(r) > 0:
            rots.append(r)
    rots += _cube_rotations()
    c_mr, c_us = mr.mean(axis=0), us.mean(axis=0)
    starts = []
    for r in rots:
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = c_us - r @ c_mr
        starts.append(m)
    return starts


def _rotation_between(a: np.ndarray, b: np.ndarray) -> float:
    r = a[:3, :3].T @ b[:3, :3]
    return float(np.rad2deg(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))


@dataclass
class _Fit:
    matrix: np.ndarray
    score: float
    iterations: int


def _fit(problem: _Problem, init: np.ndarray | None, runner_up: bool, refine: int = 4
         ) -> tuple[_Fit, _Fit | None, int]:
    """Refine ``init``; or (None) run a short ICP from every start on a few points, refine the ``refine`` best
    distinct ones fully, and return the best, the best runner-up whose rotation differs from it by more than
    ``ambiguity_degrees`` (when ``runner_up``), and the number of starts."""
    if init is not None:
        m, it = problem.icp(init)
        return _Fit(m, problem.score(m), it), None, 1
    coarse = []
    for start in _starts(problem.mr_points, problem.us.points):
        m, it = problem.icp(start, iterations=12, tolerance=1e-2, coarse=True)
        coarse.append(_Fit(m, problem.score(m, coarse=True), it))
    coarse.sort(key=lambda f: f.score)
    distinct: list[_Fit] = []
    for f in coarse:
        if all(_rotation_between(f.matrix, d.matrix) > 5.0 for d in distinct):
            distinct.append(f)
        if len(distinct) == refine:
            break
    fits = []
    for f in distinct:
        m, it = problem.icp(f.matrix)
        fits.append(_Fit(m, problem.score(m), f.iterations + it))
    fits.sort(key=lambda f: f.score)
    best = fits[0]
    others = [f for f in fits[1:] if _rotation_between(f.matrix, best.matrix) > DEFAULT_THRESHOLDS.ambiguity_degrees]
    return best, (others[0] if runner_up and others else None), len(coarse)


def _mirror(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    out = np.array(points, float, copy=True)
    out[:, 0] = 2 * centre[0] - out[:, 0]
    return out


def _mirror_matrix(centre: np.ndarray) -> np.ndarray:
    s = np.eye(4)
    s[0, 0] = -1.0
    s[0, 3] = 2 * centre[0]
    return s


def _flipped_axis(improper: np.ndarray, centre: np.ndarray) -> str:
    """The TRUS frame's physical axis whose flip turns the mirror fit into the rotation nearest the identity."""
    best, name = None, "x"
    for k, axis in enumerate(("x (left-right)", "y (anterior-posterior)", "z (inferior-superior)")):
        f = np.eye(3)
        f[k, k] = -1.0
        angle = np.rad2deg(np.arccos(np.clip((np.trace(f @ improper[:3, :3]) - 1) / 2, -1, 1)))
        if best is None or angle < best:
            best, name = angle, axis
    return f"{name}, which leaves a rotation of {best:.0f}°"


def _symmetric_distance(mr: GlandSurface, us: GlandSurface, t: RigidTransform) -> np.ndarray:
    from regkit.surface import MeshDistance

    moved = t.apply(mr.points)
    forward = MeshDistance(us.points, us.faces).closest(moved)[1]
    backward = MeshDistance(moved, mr.faces).closest(us.points)[1]
    return np.concatenate([forward, backward])


def _dice_labels(mr_label: sitk.Image, us_label: sitk.Image, t: RigidTransform) -> float:
    import SimpleITK as sitk

    mapped = sitk.Resample(sitk.Cast(mr_label > 0, sitk.sitkFloat32), us_label, t.inverse().to_sitk(),
                           sitk.sitkLinear, 0.0)
    a = sitk.GetArrayViewFromImage(mapped) > 0.5
    b = sitk.GetArrayViewFromImage(us_label) > 0
    total = int(a.sum()) + int(b.sum())
    return float(2 * np.logical_and(a, b).sum() / total) if total else float("nan")


def _dice_meshes(mr: GlandSurface, us: GlandSurface, t: RigidTransform, spacing: float = 0.5) -> float:
    from regkit.image import make_image
    from regkit.surface import label_from_mesh

    moved = t.apply(mr.points)
    lo = np.minimum(moved.min(0), us.points.min(0)) - 2 * spacing
    hi = np.maximum(moved.max(0), us.points.max(0)) + 2 * spacing
    size = np.ceil((hi - lo) / spacing).astype(int) + 1
    grid = make_image(np.zeros(size[::-1], np.uint8), (spacing,) * 3, lo)
    a = label_from_mesh(moved, mr.faces, grid)
    b = label_from_mesh(us.points, us.faces, grid)
    import SimpleITK as sitk

    x, y = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    total = int(x.sum()) + int(y.sum())
    return float(2 * np.logical_and(x, y).sum() / total) if total else float("nan")


# --------------------------------------------------------------------------- public
def reference_from_surfaces(mr_surface, us_surface, landmarks: Landmarks | None = None, *,
                            method: Literal["auto", "landmarks+surfaces", "surfaces", "identity"] = "auto",
                            mr_label: sitk.Image | None = None, us_label: sitk.Image | None = None,
                            landmark_channels: int | None = None,
                            thresholds: ReferenceThresholds = DEFAULT_THRESHOLDS,
                            huber_mm: float = 1.0, sample: int = 3000) -> Reference:
    """The rigid reference from two gland surfaces (and landmarks), with its quality (see the module docstring).

    Parameters
    ----------
    mr_surface, us_surface
        Gland surfaces in MR and TRUS physical mm: ``(points, faces)`` meshes (e.g. STL files read with
        :func:`regkit.surface.read_mesh`), ``(N, 3)`` points, or binary SimpleITK labels.
    landmarks : Landmarks, optional
        Corresponding MR and TRUS landmarks (mm).
    method : {"auto", "landmarks+surfaces", "surfaces", "identity"}
        ``"auto"``: landmarks+surfaces with ≥ 3 non-collinear landmarks, else surfaces. ``"identity"`` only
        measures the identity.
    mr_label, us_label : SimpleITK.Image, optional
        Gland labels for the Dice; without them the Dice is measured on the voxelised meshes (0.5 mm grid).
    landmark_channels : int, optional
        How many landmark channels the labels have (empty ones included), for the ``few-landmarks`` flag.
    thresholds : ReferenceThresholds
        Where flags are raised.
    huber_mm : float
        Surface residuals beyond this count linearly in the fit (robustness to outliers).
    sample : int
        MR surface points used by the fit (all are used for the reported distances).
    """
    if method not in METHODS:
        raise InputError(f"unknown reference method {method!r}", fix=f"use one of {', '.join(METHODS)}")
    mr, us = GlandSurface.of(mr_surface, "MR gland"), GlandSurface.of(us_surface, "TRUS gland")
    names = list(landmarks.names) if landmarks is not None else []
    lm_f = landmarks.fixed if landmarks is not None else np.zeros((0, 3))
    lm_m = landmarks.moving if landmarks is not None else np.zeros((0, 3))
    spread = np.linalg.svd(lm_f - lm_f.mean(0), compute_uv=False)[1] if len(lm_f) >= 3 else 0.0
    usable = len(lm_f) >= 3 and spread > 1.0  # 3 points on a line do not fix the rotation about it
    flags: dict[str, str] = {}
    if method == "auto":
        method = "landmarks+surfaces" if usable else "surfaces"
    if method == "landmarks+surfaces" and not usable:
        method = "surfaces"
    if (landmark_channels or len(names)) and not usable:
        flags["few-landmarks"] = (f"{len(names)} landmark pair(s) usable of {landmark_channels or len(names)} "
                                  "channel(s)" + (" (collinear)" if len(lm_f) >= 3 else "")
                                  + ": the reference rests on the gland surfaces")
    details: dict = {}
    if method == "identity":
        transform = RigidTransform.identity()
        problem = _Problem(mr, us, lm_f, lm_m, huber_mm, sample)
        best_score = problem.score(np.eye(4))
    else:
        problem = _Problem(mr, us, lm_f, lm_m, huber_mm, sample)
        init = fit_rigid(lm_f, lm_m).matrix if method == "landmarks+surfaces" else None
        best, second, tried = _fit(problem, init, runner_up=method == "surfaces")
        transform = RigidTransform.from_matrix(best.matrix, orthonormalize=True)
        best_score = best.score
        details.update({"score_mm": round(best.score, 4), "icp_iterations": best.iterations, "starts": tried})
        if init is not None:
            details["landmark_fit_vs_final_sre_mm"] = round(float(np.linalg.norm(
                transform.apply(mr.points) - RigidTransform.from_matrix(init).apply(mr.points), axis=1).mean()), 4)
        if second is not None:
            details["runner_up"] = {"score_mm": round(second.score, 4),
                                    "rotation_from_best_deg": round(_rotation_between(second.matrix, best.matrix),
                                                                    1)}
            if second.score <= best.score * (1 + thresholds.ambiguity_margin):
                flags["ambiguous-orientation"] = (
                    f"an orientation {details['runner_up']['rotation_from_best_deg']:.0f}° away scores "
                    f"{second.score:.2f} mm against the best {best.score:.2f} mm (within "
                    f"{100 * thresholds.ambiguity_margin:.0f}%): the glands' shapes do not decide it; check the "
                    "overlays, or add landmarks")
        # the mirror image: a rigid transform cannot flip, so fit MR mirrored through its centroid
        centre = problem.mr_points.mean(axis=0)
        s = _mirror_matrix(centre)
        mirrored = _Problem(GlandSurface(_mirror(mr.points, centre)), problem.us, _mirror(lm_f, centre), lm_m,
                            huber_mm, sample)
        m_init = fit_rigid(mirrored.lm_fixed, lm_m).matrix if method == "landmarks+surfaces" else None
        m_best, _, _ = _fit(mirrored, m_init, runner_up=False)
        details["mirror_score_mm"] = round(m_best.score, 4)
        if m_best.score < thresholds.flip_ratio * best.score:
            flags["flipped-axis"] = (
                f"the MR's mirror image fits the TRUS with score {m_best.score:.2f} mm against {best.score:.2f} mm for "
                f"the best rotation: one image is flipped, most likely along the TRUS frame's "
                f"{_flipped_axis(m_best.matrix @ s, centre)}; check the header (direction, qform/sform) and the "
                "array order of the image and its label")
    lm_res = (np.linalg.norm(transform.apply(lm_f) - lm_m, axis=1) if len(lm_f) else np.zeros(0))
    dist = _symmetric_distance(mr, us, transform)
    if mr_label is not None and us_label is not None:
        dice = _dice_labels(mr_label, us_label, transform)
    elif mr.faces is not None and us.faces is not None:
        dice = _dice_meshes(mr, us, transform)
    else:
        dice = None
    ref = Reference(transform=transform, method=method, landmark_names=names,
                    landmark_residuals_mm=[float(v) for v in lm_res], surface_mean_mm=float(dist.mean()),
                    surface_p95_mm=float(np.percentile(dist, 95)), dice=dice, flags=flags, details=details)
    details["score_mm"] = round(best_score, 4)
    if mr.volume_mm3 and us.volume_mm3:
        details["gland_volume_ml"] = {"mr": round(mr.volume_mm3 / 1000, 2), "trus": round(us.volume_mm3 / 1000, 2)}
    _quality_flags(ref, mr, us, thresholds)
    return ref


def _quality_flags(ref: Reference, mr: GlandSurface, us: GlandSurface, th: ReferenceThresholds) -> None:
    f = ref.flags
    if ref.landmark_residuals_mm:
        mean, worst = ref.landmark_mean_mm, ref.landmark_max_mm
        worst_name = ref.landmark_names[int(np.argmax(ref.landmark_residuals_mm))]
        if mean > th.landmark_mean_mm or worst > th.landmark_max_mm:
            f["poor-landmark-fit"] = (f"landmark residual mean {mean:.2f} mm (limit {th.landmark_mean_mm:g}), max "
                                      f"{worst:.2f} mm at {worst_name} (limit {th.landmark_max_mm:g}): check that "
                                      "the channels correspond (same order in both labels)")
    if ref.surface_mean_mm > th.surface_mean_mm or ref.surface_p95_mm > th.surface_p95_mm:
        f["poor-surface-fit"] = (f"gland surface distance mean {ref.surface_mean_mm:.2f} mm (limit "
                                 f"{th.surface_mean_mm:g}), 95th percentile {ref.surface_p95_mm:.2f} mm (limit "
                                 f"{th.surface_p95_mm:g})")
    if ref.dice is not None and ref.dice < th.dice_min:
        f["low-dice"] = f"Dice of the mapped gland labels {ref.dice:.3f} (limit {th.dice_min:g})"
    reasons = []
    if mr.volume_mm3 and us.volume_mm3:
        ratio = max(mr.volume_mm3, us.volume_mm3) / min(mr.volume_mm3, us.volume_mm3)
        if ratio > th.volume_ratio:
            reasons.append(f"the gland volumes differ {ratio:.2f}-fold (MR {mr.volume_mm3 / 1000:.1f} ml, TRUS "
                           f"{us.volume_mm3 / 1000:.1f} ml; limit {th.volume_ratio:g})")
    if (ref.landmark_residuals_mm and ref.landmark_mean_mm > th.wrong_landmark_mean_mm
            and "flipped-axis" not in f):
        reasons.append(f"no rigid transform aligns the landmarks (mean residual {ref.landmark_mean_mm:.1f} mm, "
                       f"limit {th.wrong_landmark_mean_mm:g})")
    if reasons and ref.method != "identity":
        f["wrong-pairing"] = "; ".join(reasons) + ": check that the MR and TRUS files are the same patient's"


def reference_from_labels(mr_gland: sitk.Image, us_gland: sitk.Image, landmarks: Landmarks | None = None, *,
                          method: Literal["auto", "landmarks+surfaces", "surfaces", "identity"] = "auto",
                          landmark_channels: int | None = None,
                          thresholds: ReferenceThresholds = DEFAULT_THRESHOLDS, **options) -> Reference:
    """The rigid reference from the MR and TRUS gland labels (and landmarks), with its quality.

    The glands' surfaces are their marching-cubes meshes (level 0.5), in physical mm from the headers; the Dice
    is that of the MR label resampled onto the TRUS grid under the reference. See
    :func:`reference_from_surfaces` for the parameters.
    """
    return reference_from_surfaces(mr_gland, us_gland, landmarks, method=method, mr_label=mr_gland,
                                   us_label=us_gland, landmark_channels=landmark_channels, thresholds=thresholds,
                                   **options)


def random_offset(rng: np.random.Generator, max_translation_mm: float = 20.0,
                  max_rotation_deg: float = 15.0, centre: np.ndarray = (0.0, 0.0, 0.0)) -> RigidTransform:
    """A random rigid offset: a rotation of up to ``max_rotation_deg`` about a random axis through ``centre``
    and a translation of up to ``max_translation_mm`` in a random direction (for fixtures and checks)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0, max_rotation_deg))
    r = _rodrigues(axis * angle)
    d = rng.normal(size=3)
    t = d / np.linalg.norm(d) * rng.uniform(0, max_translation_mm)
    c = np.asarray(centre, float)
    return RigidTransform.from_rotation_translation(r, c - r @ c + t)


__all__ = ["DEFAULT_THRESHOLDS", "FLAGS", "GlandSurface", "Reference", "ReferenceThresholds", "random_offset",
           "reference_from_labels", "reference_from_surfaces"]
