"""A registration case: the fixed MR, the moving TRUS, the MR prostate label and surface, the ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regkit.errors import InputError, check_path
from regkit.image import ImageGeometry, read_image
from regkit.image_checks import check_image, check_label, check_voxels
from regkit.surface import MESH_SUFFIXES, read_mesh_points, surface_from_label
from regkit.transform import RigidTransform
from regkit.transform_io import read_transform


@dataclass(eq=False)
class Case:
    """One MR–TRUS pair.

    Attributes
    ----------
    case_id : str
    fixed : SimpleITK.Image
        The MR (T2) image, the fixed image.
    moving : SimpleITK.Image
        The TRUS image, the moving image.
    fixed_label : SimpleITK.Image
        The MR prostate label, on the MR grid.
    ground_truth : RigidTransform or None
        The true transform, fixed (MR) → moving (TRUS) physical points. None when unknown.
    surface_points : ndarray (N, 3) or None
        MR prostate surface points in physical mm, on which SRE is measured.
    moving_label : SimpleITK.Image or None
        An optional TRUS prostate label, on the TRUS grid.
    metadata : dict
        Free-form facts about the case (generator parameters, source files, ...).
    """

    case_id: str
    fixed: sitk.Image
    moving: sitk.Image
    fixed_label: sitk.Image | None
    ground_truth: RigidTransform | None = None
    surface_points: np.ndarray | None = None
    moving_label: sitk.Image | None = None
    metadata: dict = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()
        if self.surface_points is None and self.fixed_label is not None:
            self.surface_points = surface_from_label(self.fixed_label, self.files.get("fixed_label"))
            self._check_surface()

    def validate(self) -> None:
        """Check the images (:mod:`regkit.image_checks`: type, dimension, geometry, voxels, labels), that each label
        matches its image's grid, and that labels, surface and ground truth fall on their images; raise
        :class:`InputError` naming the file."""
        self._check_types()
        self._check_images()
        for image, label, what, role, fix in (
                (self.fixed, self.fixed_label, "MR", "fixed_label",
                 "resample the label onto the MR grid (nearest neighbour) or give the matching label"),
                (self.moving, self.moving_label, "TRUS", "moving_label",
                 "resample the label onto the TRUS grid or leave it out")):
            diff = label is not None and ImageGeometry.of(image).matches(ImageGeometry.of(label))
            if diff:
                raise InputError(f"the {what} label's geometry does not match the {what} image: {diff}",
                                 self.files.get(role), fix)
        if self.surface_points is not None:
            try:
                pts = np.asarray(self.surface_points, dtype=float)
            except (TypeError, ValueError):
                pts = np.zeros((0,))
            if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 4:
                raise InputError(f"surface points must be an (N, 3) array of numbers, N ≥ 4; got {pts.shape}",
                                 self.files.get("surface"))
            if not np.all(np.isfinite(pts)):
                raise InputError("the surface points hold NaN or infinite coordinates", self.files.get("surface"))
            self.surface_points = pts
        self._check_label_overlaps()
        self._check_surface()

    def _check_types(self) -> None:
        """The Python API's arguments: an id, a transform, metadata (the images are checked with their content)."""
        if not isinstance(self.case_id, str) or not self.case_id:
            raise InputError(f"a case id must be text, got {self.case_id!r}", fix="e.g. Case('case000', ...)")
        if self.ground_truth is not None and not isinstance(self.ground_truth, RigidTransform):
            raise InputError(f"the ground truth must be a RigidTransform, got {type(self.ground_truth).__name__}",
                             self.files.get("ground_truth"),
                             "read it with regkit.read_transform or build it with RigidTransform.from_matrix")
        if self.ground_truth is not None and self.ground_truth.batch_shape:
            raise InputError("the ground truth must be one transform, not a batch", self.files.get("ground_truth"))
        if not isinstance(self.metadata, dict) or not isinstance(self.files, dict):
            raise InputError(f"a case's metadata and files must be dicts, got {type(self.metadata).__name__} and "
                             f"{type(self.files).__name__}")

    def _check_images(self) -> None:
        """Each image and label as :mod:`regkit.image_checks` states: a 3-D scalar image with a sane geometry and
        finite, non-constant voxels; a label a binary mask of one region."""
        check_image(self.fixed, "MR image", self.files.get("fixed"))
        check_image(self.moving, "TRUS image", self.files.get("moving"))
        check_voxels(self.fixed, "MR image", self.files.get("fixed"))
        check_voxels(self.moving, "TRUS image", self.files.get("moving"))
        for label, what, role in ((self.fixed_label, "MR prostate label", "fixed_label"),
                                  (self.moving_label, "TRUS prostate label", "moving_label")):
            if label is not None:
                check_image(label, what, self.files.get(role))
                check_voxels(label, what, self.files.get(role), allow_constant=True)
                check_label(label, what, self.files.get(role))

    def _check_label_overlaps(self) -> None:
        """A label must lie on its image's content: otherwise it belongs to another case, or another
        coordinate system."""
        for image, label, what, role in ((self.fixed, self.fixed_label, "MR", "fixed_label"),
                                         (self.moving, self.moving_label, "TRUS", "moving_label")):
            if label is None:
                continue
            voxels = sitk.GetArrayViewFromImage(image)
            under = voxels[sitk.GetArrayViewFromImage(label) > 0]
            if under.size and under.max() == voxels.min():
                raise InputError(
                    f"the {what} prostate label does not overlap the {what} image's content: every {what} voxel "
                    f"under it holds the background value {float(under.max()):g} (the image's lowest)",
                    self.files.get(role),
                    f"check that the label belongs to this {what} image (same case, same orientation)")

    def _check_surface(self) -> None:
        """The surface must lie in the MR, and the ground truth must map the prostate into the TRUS volume."""
        if self.surface_points is None:
            return
        fixed_geo = ImageGeometry.of(self.fixed)
        if not _any_inside(fixed_geo, self.surface_points):
            raise InputError(
                "the MR prostate surface lies outside the MR image: none of its points falls in the image's volume",
                self.files.get("surface", self.files.get("fixed_label")),
                "give the surface in the MR's physical coordinates (LPS mm; a mesh in RAS has x and y negated)")
        if self.ground_truth is not None:
            self.check_overlap(self.ground_truth, "the ground truth", self.files.get("ground_truth"),
                               "check the transform's direction (it maps fixed MR points to moving TRUS points) and "
                               "its units (mm)")

    def check_overlap(self, transform: RigidTransform, what: str, path: str | Path | None = None,
                      fix: str | None = None) -> None:
        """Raise :class:`InputError` when ``transform`` maps the MR prostate (its surface points; else the MR
        image's corners) entirely outside the TRUS volume: the images then share no physical space, and no
        registration can start from there."""
        points = self.surface_points if self.surface_points is not None else ImageGeometry.of(self.fixed).corners()
        moving = ImageGeometry.of(self.moving)
        mapped = transform.apply(points)
        if _any_inside(moving, mapped):
            return
        low, high = np.min(moving.corners(), axis=0), np.max(moving.corners(), axis=0)
        span = ", ".join(f"{a} [{lo:.0f}, {hi:.0f}]" for a, lo, hi in zip("xyz", low, high, strict=True))
        centre = ", ".join(f"{v:.0f}" for v in mapped.mean(axis=0))
        raise InputError(
            f"{what} maps the MR prostate entirely outside the TRUS volume: its centre lands at ({centre}) mm, while "
            f"the TRUS image ({self.files.get('moving', 'in memory')}) spans {span} mm", path,
            f"{fix or 'check the transform'}; if the transform is right, the TRUS image's origin or spacing is not "
            "(check its header)")

    @property
    def surface_centroid(self) -> np.ndarray:
        """Mean of the surface points (mm); the centre of the starting perturbations."""
        if self.surface_points is None:
            raise InputError(f"case {self.case_id} has no MR prostate surface points")
        return self.surface_points.mean(axis=0)

    def fixed_input(self, variant: str = "image") -> sitk.Image:
        """The fixed input of a registrar: the MR image (``"image"``) or the MR prostate label (``"label"``)."""
        if variant == "image":
            return self.fixed
        if variant == "label":
            if self.fixed_label is None:
                raise InputError(f"case {self.case_id} has no MR prostate label, needed for the label variant")
            return self.fixed_label
        raise InputError(f"unknown fixed-input variant {variant!r}; use 'image' or 'label'")


def load_case(
    case_id: str,
    fixed: str | Path,
    moving: str | Path,
    fixed_label: str | Path | None = None,
    ground_truth: str | Path | None = None,
    surface: str | Path | None = None,
    moving_label: str | Path | None = None,
    metadata: dict | None = None,
) -> Case:
    """Read a case from its files.

    Parameters
    ----------
    case_id : str
    fixed, moving : path-like
        MR and TRUS images (NIfTI, MHA/MHD, NRRD).
    fixed_label : path-like, optional
        MR prostate label on the MR grid.
    ground_truth : path-like, optional
        Fixed → moving rigid transform: 4×4 text, ITK .tfm/.h5 or elastix parameters.
    surface : path-like, optional
        MR prostate surface mesh (.stl, .vtk, ...) in MR physical coordinates. Without it the surface
        comes from marching cubes on ``fixed_label``.
    moving_label : path-like, optional
        TRUS prostate label on the TRUS grid.
    """
    if not isinstance(case_id, str):
        raise InputError(f"a case id must be text, got {type(case_id).__name__} {case_id!r}", fix="e.g. 'case000'")
    if metadata is not None and not isinstance(metadata, dict):
        raise InputError(f"metadata must be a dict, got {type(metadata).__name__}")
    files = {"fixed": check_path("fixed", fixed), "moving": check_path("moving", moving)}
    for key, value in (("fixed_label", fixed_label), ("ground_truth", ground_truth),
                       ("surface", surface), ("moving_label", moving_label)):
        if value is not None:
            files[key] = check_path(key, value)
    if surface is not None and Path(surface).suffix.lower() not in MESH_SUFFIXES:
        raise InputError(f"unknown surface mesh format {Path(surface).suffix!r}", surface,
                         f"use one of {', '.join(MESH_SUFFIXES)}")
    return Case(
        case_id=case_id,
        fixed=read_image(fixed, "MR image"),
        moving=read_image(moving, "TRUS image"),
        fixed_label=read_image(fixed_label, "MR prostate label") if fixed_label is not None else None,
        ground_truth=read_transform(ground_truth) if ground_truth is not None else None,
        surface_points=read_mesh_points(surface) if surface is not None else None,
        moving_label=read_image(moving_label, "TRUS prostate label") if moving_label is not None else None,
        metadata=dict(metadata or {}),
        files=files,
    )


def _any_inside(geometry: ImageGeometry, points: np.ndarray) -> bool:
    """Whether any physical point falls within the image's voxel grid (half a voxel beyond the centres)."""
    idx = geometry.to_index(np.asarray(points, dtype=float))
    size = np.array(geometry.size, dtype=float)
    return bool(np.any(np.all((idx >= -0.5) & (idx <= size - 0.5), axis=-1)))
