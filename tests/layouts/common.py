"""MR–TRUS pairs with a known rigid offset, for the layout fixtures (``muregpro.py``, ``deepreg.py``, ...).

A pair is built from regkit's own phantom (:func:`regkit.synth.synth_case` with the probe deformation off, so the
labels determine the offset exactly): its MR and its simulated TRUS are resampled onto the grids a layout ships,
with a random rigid offset ``T`` (MR physical → TRUS physical) of up to 20 mm and 15° about the gland centre.
The gland labels are voxelisations of one surface (the phantom gland's marching-cubes mesh, mapped by ``T`` on
the TRUS side), and the landmark channels are balls around corresponding points (apex, base, urethra, lesions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import SimpleITK as sitk

from regkit.image import ImageGeometry, make_image
from regkit.importers.rigid_fit import random_offset
from regkit.surface import label_from_mesh, label_mesh
from regkit.synth import PhantomSettings, synth_case
from regkit.transform import RigidTransform

# The µ-RegPro challenge grids (NIfTI x, y, z) at 0.8 mm
MUREGPRO_MR = ((120, 128, 128), (0.8, 0.8, 0.8))
MUREGPRO_US = ((81, 118, 88), (0.8, 0.8, 0.8))


@lru_cache(maxsize=4)
def phantom(seed: int):
    """A phantom case without probe deformation (its ground truth maps the MR onto the TRUS exactly) and its MR
    gland mesh; cached, as rendering takes seconds."""
    case = synth_case(seed, 0, PhantomSettings(probe_deformation=False))
    return case, label_mesh(case.fixed_label)


@dataclass
class Pair:
    """One MR–TRUS pair in physical space: ``offset`` maps MR physical points to TRUS physical points."""

    mr: sitk.Image
    us: sitk.Image
    mr_labels: list[sitk.Image]  # channel 0 the gland, then the landmarks
    us_labels: list[sitk.Image]
    offset: RigidTransform
    landmarks_mm: np.ndarray  # MR physical
    names: list[str] = field(default_factory=list)


def grid(size, spacing, centre, direction=np.eye(3), dtype=np.float32) -> sitk.Image:
    """An empty image of ``size`` (x, y, z) and ``spacing`` whose centre is ``centre`` (mm)."""
    direction = np.asarray(direction, float)
    origin = np.asarray(centre, float) - direction @ ((np.array(size) - 1) / 2 * np.array(spacing))
    return make_image(np.zeros(tuple(size)[::-1], dtype), spacing, origin, direction)


def ball(reference: sitk.Image, centre: np.ndarray, radius: float) -> sitk.Image:
    geo = ImageGeometry.of(reference)
    idx = np.clip(np.round(geo.to_index(centre)).astype(int), 0, np.array(geo.size) - 1)
    reach = np.ceil(radius / geo.spacing).astype(int) + 1
    lo, hi = np.maximum(idx - reach, 0), np.minimum(idx + reach + 1, geo.size)
    zz, yy, xx = np.mgrid[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    p = geo.to_physical(np.stack([xx, yy, zz], -1).reshape(-1, 3).astype(float))
    inside = (np.linalg.norm(p - centre, axis=1) <= radius).reshape(zz.shape)
    out = np.zeros(tuple(geo.size)[::-1], np.uint8)
    out[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] = inside
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(reference)
    return img


def landmark_points(mesh_points: np.ndarray, rng: np.random.Generator, count: int) -> tuple[np.ndarray, list[str]]:
    """Apex, base, urethra (the gland centre) and lesions inside the gland, as many as ``count`` (MR mm)."""
    c = mesh_points.mean(axis=0)
    z = mesh_points[:, 2]
    apex = c + 0.6 * (mesh_points[np.argmin(z)] - c)
    base = c + 0.6 * (mesh_points[np.argmax(z)] - c)
    pts, names = [apex, base, c], ["apex", "base", "urethra"]
    while len(pts) < count:
        p = mesh_points[rng.integers(len(mesh_points))]
        pts.append(c + rng.uniform(0.3, 0.6) * (p - c))
        names.append(f"lesion{len(pts) - 3}")
    return np.array(pts[:count]), names[:count]


def make_pair(seed: int, rng: np.random.Generator, mr_grid=MUREGPRO_MR, us_grid=MUREGPRO_US, landmarks: int = 4,
              mr_direction=np.eye(3), us_direction=np.eye(3), offset: RigidTransform | None = None,
              us_seed: int | None = None, push_mm: float = 0.0) -> Pair:
    """A pair from phantom ``seed``: MR and TRUS on the given grids, offset by a random rigid transform (or
    ``offset``). ``us_seed``: take the TRUS side from another phantom (a wrong pairing). ``push_mm``: a probe
    behind the gland pushes the TRUS side's gland and landmarks by up to this much (no rigid fit is exact)."""
    case, (verts, faces) = phantom(seed)
    centre = verts.mean(axis=0)
    if offset is None:
        offset = random_offset(rng, 20.0, 15.0, centre)
    mr = grid(*mr_grid, centre + rng.uniform(-3, 3, 3), mr_direction)
    mr = sitk.Resample(case.fixed, mr, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    pts, names = landmark_points(verts, rng, landmarks)
    radii = rng.uniform(2.0, 3.5, len(pts))
    mr_labels = [label_from_mesh(verts, faces, mr)] + [ball(mr, p, r) for p, r in zip(pts, radii, strict=True)]

    us_case, (us_verts, us_faces), us_pts = case, (verts, faces), pts
    if us_seed is not None:
        us_case, (us_verts, us_faces) = phantom(us_seed)
        us_pts, _ = landmark_points(us_verts, np.random.default_rng(us_seed), landmarks)
    if push_mm:
        us_verts, us_pts = (probe_pushed(x, us_verts, push_mm) for x in (us_verts, us_pts))
    us = grid(*us_grid, offset.apply(us_verts.mean(axis=0)) + rng.uniform(-3, 3, 3), us_direction)
    # TRUS physical -> MR physical (offset⁻¹) -> the phantom's TRUS (its exact ground truth)
    to_phantom = (us_case.ground_truth @ offset.inverse()).to_sitk()
    us = sitk.Resample(us_case.moving, us, to_phantom, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    us_labels = [label_from_mesh(offset.apply(us_verts), us_faces, us)]
    us_labels += [ball(us, offset.apply(p), r) for p, r in zip(us_pts, radii, strict=True)]
    return Pair(mr, us, mr_labels, us_labels, offset, pts, names)


def probe_pushed(points: np.ndarray, gland: np.ndarray, push_mm: float) -> np.ndarray:
    """``points`` pushed by a probe lying behind (posterior, +y) the ``gland`` points, along z."""
    from regkit.synth.probe import Probe

    c = gland.mean(axis=0)
    behind = float(gland[:, 1].max() - c[1])
    probe = Probe(c + [0.0, behind + 10.0 - 0.8 * push_mm, 0.0], np.eye(3), 10.0, push_mm, 18.0)
    return probe.deform(points)


def flipped(image: sitk.Image, axis: int = 0) -> sitk.Image:
    """The image's array flipped along index ``axis`` (x = 0), its header kept: a flipped axis."""
    a = sitk.GetArrayFromImage(image)
    out = sitk.GetImageFromArray(np.flip(a, axis=2 - axis).copy())
    out.CopyInformation(image)
    return out


def four_d(channels: list[sitk.Image]) -> sitk.Image:
    """A 4-D (x, y, z, k) label of the channels, as µ-RegPro ships them."""
    return sitk.JoinSeries([sitk.Cast(c, sitk.sitkUInt8) for c in channels])


def sre_of(estimate: RigidTransform, truth: RigidTransform, surface: np.ndarray) -> float:
    return float(np.linalg.norm(estimate.apply(surface) - truth.apply(surface), axis=1).mean())
