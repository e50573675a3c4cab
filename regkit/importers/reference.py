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
from regkit.importers.rigid_fit import (
    FitProblem,
    GlandSurface,
    fit_surfaces,
    mirror,
    mirror_matrix,
    random_offset,
    rotation_between,
)
from regkit.transform import RigidTransform, fit_rigid

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

    from regkit.importers.labels import Landmarks

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
    """Where a reference is flagged (mm unless stated).

    Chosen on the layout fixtures (``tests/layouts``; figures in ``docs/your-own-data.md``): above what an exact
    fit gives (landmarks ≤ 0.13 mm, surface mean ≤ 0.22 and p95 ≤ 0.56 mm, Dice ≥ 0.98, mirror/best ≥ 1.35) and
    what a TRUS pushed by a probe by 6 mm gives (landmarks ≤ 0.52 mean and 1.0 max, surface ≤ 1.14 mean and 2.84
    p95, Dice ≥ 0.88, mirror/best ≥ 1.01), below what a flipped axis (mirror/best ≤ 0.70) or a wrong pairing with
    landmarks (landmarks ≥ 1.5 mean and 2.0 max, surface p95 ≥ 3.6, Dice ≤ 0.86) gives. Real deformation and two
    annotators may leave larger residuals than the phantom's: these are starting points, passed as
    ``thresholds=`` to change them."""

    landmark_mean_mm: float = 1.25
    landmark_max_mm: float = 2.5
    surface_mean_mm: float = 1.25
    surface_p95_mm: float = 3.5
    dice_min: float = 0.85
    flip_ratio: float = 0.85  # mirror score / best proper score below this: flipped
    volume_ratio: float = 1.6  # larger gland volume / smaller above this: wrong pairing
    ambiguity_margin: float = 0.15  # runner-up score within this fraction of the best: ambiguous
    header_degrees: float = 45.0  # a near tie is broken by the headers when one orientation alone is this close


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
                            huber_mm: float = 1.0, sample: int = 3000, search: bool = True) -> Reference:
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
    search : bool
        False: refine from the identity only, without the orientation search and the mirror test (a quick check
        of pairs said to be aligned; landmarks, when ≥ 3, still start the fit).
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
        problem = FitProblem(mr, us, lm_f, lm_m, huber_mm, sample)
        best_score = problem.score(np.eye(4))
    else:
        problem = FitProblem(mr, us, lm_f, lm_m, huber_mm, sample)
        init = fit_rigid(lm_f, lm_m).matrix if method == "landmarks+surfaces" else None if search else np.eye(4)
        best, second, tried = fit_surfaces(problem, init, runner_up=method == "surfaces")
        orientation = None
        if second is not None and second.score <= best.score * (1 + thresholds.ambiguity_margin):
            near = [rotation_between(f.matrix, np.eye(4)) <= thresholds.header_degrees for f in (best, second)]
            if near == [False, True]:  # the headers' orientation breaks a near tie
                best, second = second, best
            if sum(near) == 1:
                orientation = (f"two orientations score within {100 * thresholds.ambiguity_margin:.0f}%; "
                               f"the one within {thresholds.header_degrees:g}° of the headers' was kept")
        transform = RigidTransform.from_matrix(best.matrix, orthonormalize=True)
        best_score = best.score
        details.update({"score_mm": round(best.score, 4), "icp_iterations": best.iterations, "starts": tried})
        if orientation:
            details["orientation"] = orientation
        if init is not None:
            details["landmark_fit_vs_final_sre_mm"] = round(float(np.linalg.norm(
                transform.apply(mr.points) - RigidTransform.from_matrix(init).apply(mr.points), axis=1).mean()), 4)
        if second is not None:
            details["runner_up"] = {"score_mm": round(second.score, 4),
                                    "rotation_from_best_deg": round(rotation_between(second.matrix, best.matrix),
                                                                    1)}
            if second.score <= best.score * (1 + thresholds.ambiguity_margin) and "orientation" not in details:
                flags["ambiguous-orientation"] = (
                    f"an orientation {details['runner_up']['rotation_from_best_deg']:.0f}° away scores "
                    f"{second.score:.2f} mm against the best {best.score:.2f} mm (within "
                    f"{100 * thresholds.ambiguity_margin:.0f}%): the glands' shapes do not decide it; check the "
                    "overlays, or add landmarks")
        # the mirror image: a rigid transform cannot flip, so fit MR mirrored through its centroid
        centre = problem.mr_points.mean(axis=0) if search else None
    if method != "identity" and search:
        s = mirror_matrix(centre)
        mirrored = FitProblem(GlandSurface(mirror(mr.points, centre)), problem.us, mirror(lm_f, centre), lm_m,
                            huber_mm, sample)
        m_init = fit_rigid(mirrored.lm_fixed, lm_m).matrix if method == "landmarks+surfaces" else None
        m_best, _, _ = fit_surfaces(mirrored, m_init, runner_up=False)
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
    poor_glands = ref.surface_p95_mm > th.surface_p95_mm or (ref.dice is not None and ref.dice < th.dice_min)
    if ref.landmark_residuals_mm and ref.landmark_mean_mm > th.landmark_mean_mm and poor_glands and "flipped-axis" \
            not in f:
        reasons.append(f"no rigid transform aligns the landmarks (mean residual {ref.landmark_mean_mm:.1f} mm) nor the "
                       f"glands (95th percentile distance {ref.surface_p95_mm:.1f} mm"
                       + (f", Dice {ref.dice:.2f}" if ref.dice is not None else "") + ")")
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


__all__ = ["DEFAULT_THRESHOLDS", "FLAGS", "GlandSurface", "Reference", "ReferenceThresholds", "random_offset",
           "reference_from_labels", "reference_from_surfaces"]
