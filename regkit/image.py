"""Image I/O and geometry, physical space first.

Images are SimpleITK images: the voxel array plus origin, spacing and direction. NIfTI, MetaImage
(MHA/MHD), NRRD and every other format SimpleITK knows are read and written with their geometry.
Arrays taken from SimpleITK are indexed ``[z, y, x]``; physical points are ``(x, y, z)`` in LPS mm.

Bad files fail loudly, naming the file: what an image must be to enter regkit (the file, its geometry, its voxels,
and a label's values) is stated once, in :mod:`regkit.image_checks`, and :func:`read_image` applies it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regkit.atomic import atomic_path
from regkit.errors import InputError, check_path, itk_message
from regkit.image_checks import (
    check_image,
    check_image_file,
    check_voxels,  # noqa: F401 (its home was here)
)
from regkit.image_files import numbers_text

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
GEOMETRY_TOLERANCE = 1e-4  # mm for origins and spacings, unitless for direction cosines


def image_suffix(path: str | Path) -> str:
    """The full suffix of an image path (``.nii.gz`` counts as one)."""
    name = Path(path).name.lower()
    for s in IMAGE_SUFFIXES:
        if name.endswith(s):
            return s
    return Path(path).suffix.lower()


def read_image(path: str | Path, what: str = "image") -> sitk.Image:
    """Read a 3-D scalar image with its geometry.

    Parameters
    ----------
    path : path-like
        NIfTI, MHA/MHD, NRRD or any format SimpleITK reads.
    what : str
        What the image is ("MR image", "TRUS label", ...), for error messages.

    Raises
    ------
    InputError
        The file is missing, unreadable, cut short or corrupt, or its header's geometry is one ITK would replace
        (see :func:`~regkit.image_checks.check_image_file`); or the image is not 3-D, not scalar, or has a geometry
        no patient image has (see :func:`~regkit.image_checks.check_image`).
    """
    path = check_path("the image path", path)
    if not path.exists():
        raise InputError(f"the {what} file does not exist", path, "check the path and the dataset layout")
    if path.is_dir():
        raise InputError(f"the {what} is a folder, not an image file", path, "name the image file itself")
    check_image_file(path, what)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(
            f"cannot read the {what}: {_itk_reason(exc, path)}",
            path,
            "give a readable, complete NIfTI (.nii/.nii.gz), MetaImage (.mha/.mhd) or NRRD file (a file cut short "
            "by a copy or download cannot be read: get it again)",
        ) from None
    return check_image(img, what, path)


def _itk_reason(exc: Exception, path: Path) -> str:
    reason = itk_message(exc)
    if image_suffix(path) in (".mha", ".mhd") and "No such file" in reason:
        reason = f"{reason.split(' Reason:')[0]} ({_metaimage_problem(path)})"  # ITK reports a stale errno here
    return reason


def _metaimage_problem(path: Path) -> str:
    """Why a MetaImage that exists cannot be read: its data file is missing, or its voxel data is cut short."""
    try:
        header = path.read_bytes()[:4096].decode("latin-1")
    except OSError as exc:
        return str(exc)
    m = re.search(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", header, re.MULTILINE)
    data = m.group(1) if m else "LOCAL"
    if data not in ("LOCAL", "LIST") and not data.startswith("%") and not (path.parent / data).exists():
        return f"its data file {data} does not exist"
    return "its voxel data is cut short or corrupt"


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write an image with its geometry, atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = image_suffix(path)
    if suffix in (".mhd", ".nhdr"):  # header + data file pairs name each other; write them in place
        sitk.WriteImage(image, str(path), compress)
        return path
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), compress)
    return path


@dataclass(frozen=True)
class ImageGeometry:
    """Size (x, y, z voxels), spacing (mm), origin (mm) and direction (3×3, columns = axes) of an image."""

    size: tuple[int, int, int]
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray

    @classmethod
    def of(cls, image: sitk.Image) -> ImageGeometry:
        return cls(
            size=tuple(int(s) for s in image.GetSize()),
            spacing=np.array(image.GetSpacing(), dtype=float),
            origin=np.array(image.GetOrigin(), dtype=float),
            direction=np.array(image.GetDirection(), dtype=float).reshape(3, 3),
        )

    @property
    def index_to_physical(self) -> np.ndarray:
        """4×4 matrix mapping continuous indices (x, y, z) to physical points."""
        m = np.eye(4)
        m[:3, :3] = self.direction @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    @property
    def physical_to_index(self) -> np.ndarray:
        """4×4 matrix mapping physical points to continuous indices (x, y, z)."""
        return np.linalg.inv(self.index_to_physical)

    def to_physical(self, index: np.ndarray) -> np.ndarray:
        """Continuous indices ``(..., 3)`` in (x, y, z) order to physical points."""
        m = self.index_to_physical
        return np.asarray(index, dtype=float) @ m[:3, :3].T + m[:3, 3]

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Physical points ``(..., 3)`` to continuous indices in (x, y, z) order."""
        m = self.physical_to_index
        return np.asarray(points, dtype=float) @ m[:3, :3].T + m[:3, 3]

    @property
    def extent(self) -> np.ndarray:
        """Physical size of the voxel grid along each axis, in mm."""
        return np.array(self.size) * self.spacing

    @property
    def center(self) -> np.ndarray:
        """Physical centre of the voxel grid."""
        return self.to_physical((np.array(self.size) - 1) / 2.0)

    def corners(self) -> np.ndarray:
        """The 8 corner voxel centres in physical space, shape (8, 3)."""
        s = np.array(self.size) - 1
        idx = np.array([[i, j, k] for i in (0, s[0]) for j in (0, s[1]) for k in (0, s[2])], dtype=float)
        return self.to_physical(idx)

    def matches(self, other: ImageGeometry, tolerance: float = GEOMETRY_TOLERANCE) -> str | None:
        """None when both grids are the same, else a sentence saying how they differ."""
        if self.size != other.size:
            return f"size {other.size} differs from {self.size}"
        if not np.allclose(self.spacing, other.spacing, atol=tolerance, rtol=tolerance):
            return f"spacing {numbers_text(other.spacing)} differs from {numbers_text(self.spacing)}"
        if not np.allclose(self.origin, other.origin, atol=max(tolerance, 1e-3 * self.spacing.min())):
            return f"origin {numbers_text(other.origin)} differs from {numbers_text(self.origin)}"
        if not np.allclose(self.direction, other.direction, atol=tolerance):
            return "direction cosines differ"
        return None


def make_image(
    array_zyx: np.ndarray,
    spacing: np.ndarray,
    origin: np.ndarray = (0.0, 0.0, 0.0),
    direction: np.ndarray = np.eye(3),
) -> sitk.Image:
    """A SimpleITK image from a ``[z, y, x]`` array and its geometry."""
    img = sitk.GetImageFromArray(np.asarray(array_zyx))
    img.SetSpacing([float(v) for v in spacing])
    img.SetOrigin([float(v) for v in origin])
    img.SetDirection([float(v) for v in np.asarray(direction, dtype=float).ravel()])
    return img


def intensity_window(image: sitk.Image, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Robust intensity range: the ``low`` and ``high`` percentiles of the non-zero voxels."""
    a = sitk.GetArrayViewFromImage(image)
    v = a[a != 0]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)
