"""What an image must be to enter regkit: the rules, stated once, and the checks that apply them.

Every image enters through :func:`regkit.image.read_image` (a file) or a :class:`~regkit.case.Case` (a file or a
SimpleITK image handed to the Python API), and both apply the same checks, which fail loudly, naming the image
and the fix (as elastix, ANTs and SimpleITK do), never as a silent "ok":

* **the file** (:func:`check_image_file`): a NIfTI file cut short, or a gzip-compressed file whose stream is cut or
  corrupt, is an error (ITK fills the missing part of a NIfTI volume with zeros and says nothing); so is a header
  whose geometry ITK would quietly replace: a NIfTI voxel size (``pixdim``) that is zero, negative or NaN (read as
  1 mm), a NaN origin or spacing in a MetaImage (read as 0), a NIfTI ``sform`` with shear, or a NIfTI ``sform``
  whose scales disagree with its voxel size (readers differ on which to use);
* **the image** (:func:`check_image`): a SimpleITK image, 3-D, scalar (one component per voxel), at least
  :data:`MIN_SIZE` voxels along each axis (a single slice is not a volume), with a **geometry** a patient image can
  have: a finite spacing within :data:`SPACING_RANGE_MM` (outside it, the header is wrong or not in millimetres), a
  finite origin within :data:`ORIGIN_LIMIT_MM` of the scanner's origin, and a direction matrix that is a rotation
  or a reflection (orthonormal within :data:`DIRECTION_TOLERANCE`: scaling belongs in the spacing, and shear in
  nothing regkit reads);
* **the voxels** (:func:`check_voxels`): NaN or infinite voxels are an error, never filled in silently: regkit
  does not guess what a NaN means (background? outside the field of view?), so replace them yourself, e.g. with
  ``numpy.nan_to_num``. They are looked for in NIfTI files as they are read (ITK reads them as 0) and in every
  case's images. A constant image (all zero, or one value everywhere) is an error too;
* **a label** (:func:`check_label`) is a binary mask: every voxel 0 (outside) or 1 (inside), in any integer or
  float type. A label with other values is refused, never binarised by a guess: several values (1, 2, 3, ...: a
  multi-label segmentation) need the prostate's value chosen (``label == K``), 0/255 needs ``label > 0``, fractions
  (a probability map, or a label resampled with linear interpolation) need a threshold. A label must also look
  like one organ: not empty, not every voxel, and not scattered (its largest connected piece holds at least
  :data:`LABEL_LARGEST_PIECE` of its voxels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regkit.errors import InputError
from regkit.image_files import REWRITE, check_header_geometry, check_image_file
from regkit.image_files import numbers_text as _vec

__all__ = ["check_geometry", "check_header_geometry", "check_image", "check_image_file", "check_label",
           "check_voxels"]

MIN_SIZE = 2  # voxels along each axis of a volume
SPACING_RANGE_MM = (1e-3, 100.0)  # a voxel edge of a patient image, in mm (1 µm to 10 cm)
ORIGIN_LIMIT_MM = 1e5  # 100 m from the scanner's origin: no patient is there
DIRECTION_TOLERANCE = 1e-3  # largest |DᵀD − I| entry of a direction matrix
LABEL_LARGEST_PIECE = 0.5  # the smallest share of a label's voxels its largest connected piece may hold


def check_voxels(image: sitk.Image, what: str = "image", path: str | Path | None = None,
                 allow_constant: bool = False) -> None:
    """Raise :class:`InputError` when an image holds NaN or infinite voxels, or (unless ``allow_constant``) holds
    one value everywhere.

    The policy: non-finite voxels are never replaced silently. elastix would sample them and its metric would
    turn NaN, and a network would see them as some number; the fix belongs to whoever knows what they mean
    (background, outside the field of view, ...), e.g. ``numpy.nan_to_num`` before writing the file.
    """
    a = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.complexfloating):
        finite = np.isfinite(a)
        if not finite.all():
            bad = np.argwhere(~finite)
            n_nan = int(np.isnan(a).sum())
            first = bad[0][::-1].tolist()  # x, y, z
            raise InputError(
                f"the {what} holds {n_nan} NaN and {len(bad) - n_nan} infinite voxels (of {a.size}; the first at "
                f"voxel [x, y, z] = {first})", path,
                "replace them with the background value (e.g. numpy.nan_to_num) before registering: regkit does "
                "not guess what a NaN means")
    if not allow_constant and a.size and a.min() == a.max():
        raise InputError(f"the {what} is constant: every voxel is {a.flat[0]!r}, so there is nothing to register",
                         path, "check that the file holds the image (not an empty export or a blank series)")


def check_image(image, what: str = "image", path: str | Path | None = None) -> sitk.Image:
    """``image`` if it is a 3-D scalar SimpleITK image with a sane geometry (see the module docstring), else an
    :class:`InputError` naming ``what`` (and ``path``)."""
    if not isinstance(image, sitk.Image):
        raise InputError(f"the {what} must be a SimpleITK image (or, where a file is read, a path), got "
                         f"{type(image).__name__}", path, "read it with regkit.image.read_image or SimpleITK.ReadImage")
    dim = image.GetDimension()
    if dim == 4:
        raise InputError(f"the {what} is 4-D {image.GetSize()}; regkit expects a 3-D volume", path,
                         "extract the channel you need (the importers take channel 0 of 4-D labels)")
    if dim != 3:
        raise InputError(f"the {what} is {dim}-D {image.GetSize()}; a 3-D volume is needed", path,
                         "give the 3-D volume (a 2-D slice cannot be registered in 3-D)")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"the {what} has {image.GetNumberOfComponentsPerPixel()} components per voxel; a scalar "
                         "image is needed", path,
                         "keep one component (e.g. SimpleITK.VectorIndexSelectionCast(image, 0)) or convert colour "
                         "to grey")
    check_geometry(image, what, path)
    return image


def check_geometry(image: sitk.Image, what: str = "image", path: str | Path | None = None) -> None:
    """The size, spacing, origin and direction of a 3-D image are those a patient image can have (see the module
    docstring); an :class:`InputError` names the first that is not."""
    size = image.GetSize()
    spacing = np.array(image.GetSpacing(), dtype=float)
    origin = np.array(image.GetOrigin(), dtype=float)
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    if min(size) < MIN_SIZE:
        axis = "xyz"[int(np.argmin(size))]
        raise InputError(f"the {what} is a single slice along {axis} (size {size}): a volume needs at least "
                         f"{MIN_SIZE} voxels along each axis", path,
                         "give the whole 3-D volume (all its slices), not one slice of it")
    low, high = SPACING_RANGE_MM
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"the {what}'s voxel spacing {_vec(spacing)} mm is not a positive, finite size", path, REWRITE)
    if np.any(spacing > high):
        raise InputError(f"the {what}'s voxel spacing {_vec(spacing)} mm is enormous: no patient image has voxels over "
                         f"{high:g} mm", path, f"check the header's voxel size (in mm); {REWRITE}")
    if np.any(spacing < low):
        raise InputError(f"the {what}'s voxel spacing {_vec(spacing)} mm is below {low:g} mm (metres written as "
                         "millimetres?)", path, f"give the voxel size in millimetres; {REWRITE}")
    if not np.all(np.isfinite(origin)):
        raise InputError(f"the {what}'s origin {_vec(origin)} holds NaN or infinite coordinates", path, REWRITE)
    if np.any(np.abs(origin) > ORIGIN_LIMIT_MM):
        raise InputError(f"the {what}'s origin {_vec(origin)} mm lies over {ORIGIN_LIMIT_MM / 1000:g} m from the "
                         "scanner's origin: the header is wrong (or not in millimetres)", path, REWRITE)
    if not np.all(np.isfinite(direction)):
        raise InputError(f"the {what}'s direction matrix holds NaN or infinite values", path, REWRITE)
    error = np.abs(direction.T @ direction - np.eye(3)).max()
    if error > DIRECTION_TOLERANCE:
        norms = np.linalg.norm(direction, axis=0)
        axes = direction / np.where(norms > 0, norms, 1)
        kind = "scaling" if np.abs(axes.T @ axes - np.eye(3)).max() <= DIRECTION_TOLERANCE else "shear"
        raise InputError(f"the {what}'s direction matrix is not a rotation: it holds {kind} (DᵀD differs from I by "
                         f"{error:.3g}; its columns have lengths {_vec(norms)})", path,
                         "give an orthonormal direction (a voxel's size belongs in the spacing, and regkit reads no "
                         f"sheared grids); {REWRITE}")


def check_label(label: sitk.Image, what: str = "label", path: str | Path | None = None) -> None:
    """A label is a binary mask of one organ (see the module docstring): an :class:`InputError` names what it is
    instead, and how to make the mask."""
    from scipy import ndimage

    a = sitk.GetArrayViewFromImage(label)
    if np.issubdtype(a.dtype, np.complexfloating):
        raise InputError(f"the {what} holds complex values; a label is 0/1", path, "write the label as 0/1 integers")
    fractions = np.issubdtype(a.dtype, np.floating) and not np.all((a == 0) | (a == 1))
    if a.size and (a.min() < 0 or a.max() > 1 or fractions):
        raise InputError(*_not_binary(a, what, path))
    count = int(np.count_nonzero(a))
    if count == 0:
        raise InputError(f"the {what} is empty", path, "give the prostate label of this image (voxels of value 1)")
    if count == a.size:
        raise InputError(f"every voxel of the {what} is 1: it marks the whole image, not the prostate", path,
                         "give the prostate label of this image (1 inside the gland, 0 elsewhere)")
    box = tuple(slice(int(k[0]), int(k[-1]) + 1) for k in (np.flatnonzero(a.any(axis=other))
                                                            for other in ((1, 2), (0, 2), (0, 1))))
    pieces, n = ndimage.label(a[box] != 0, structure=np.ones((3, 3, 3), bool))  # in its bounding box
    if n > 1:
        largest = int(np.bincount(pieces.ravel())[1:].max())
        if largest < LABEL_LARGEST_PIECE * count:
            raise InputError(f"the {what} is scattered: its {count} voxels fall in {n} separate pieces, the largest "
                             f"holding {largest}; a prostate label is one region", path,
                             "give the prostate label of this image (one connected region of 1s)")


def _not_binary(a: np.ndarray, what: str, path) -> tuple[str, str | Path | None, str]:
    """The message, path and fix for a label whose values are not all 0 or 1."""
    values = np.unique(a)
    shown = ", ".join(f"{v:g}" for v in values[:8]) + (f", ... ({len(values)} values)" if len(values) > 8 else "")
    fractional = values[(values % 1 != 0)]
    if len(fractional):
        return (f"the {what} holds values between the whole numbers ({shown}): a probability map, or a label "
                "resampled with linear interpolation, not a 0/1 mask", path,
                "threshold it (e.g. SimpleITK.Cast(label >= 0.5, sitk.sitkUInt8)), and resample labels with "
                "nearest-neighbour interpolation")
    if values.min() < 0:
        return (f"the {what} holds negative values ({shown}); a label is 0 outside and 1 inside", path,
                "write the label as 0/1 (e.g. SimpleITK.Cast(label > 0, sitk.sitkUInt8) if every non-zero voxel is "
                "the prostate)")
    positive = values[values > 0]
    if len(positive) == 1:
        return (f"the {what} holds the values 0 and {positive[0]:g}, not 0 and 1", path,
                f"write it as 0/1: SimpleITK.Cast(label == {positive[0]:g}, sitk.sitkUInt8)")
    return (f"the {what} holds the values {shown}: a multi-label segmentation, not a 0/1 mask", path,
            "keep the prostate's value K as a 0/1 label (SimpleITK.Cast(label == K, sitk.sitkUInt8); "
            f"label > 0 for every non-zero value), and give that file; this one's values are {shown}")
