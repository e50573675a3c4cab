"""Masks for elastix and the moving image's modality.

* the fixed mask: the MR prostate label dilated by a distance in millimetres (:func:`dilated_mask`);
* the moving mask: the field of view of an ultrasound volume, its fan (:func:`fan_mask`), used only when the
  moving image is ultrasound (:func:`moving_is_ultrasound`: what the case declares, or a guess from the image,
  :func:`looks_like_ultrasound`) or when the registrar is told to (:func:`moving_mask_for`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import SimpleITK as sitk

from regkit.errors import InputError

#: The moving mask of a classical registration: the ultrasound fan when the moving image is ultrasound
#: (``"auto"``), always (``"fan"``), or never (``"none"``).
MovingMask = Literal["auto", "fan", "none"]


def dilated_mask(label: sitk.Image, radius_mm: float) -> sitk.Image:
    """The label dilated by ``radius_mm`` (a ball, in physical units), as a 0/1 UInt8 image."""
    radius = [max(1, round(radius_mm / s)) for s in label.GetSpacing()]
    mask = sitk.BinaryDilate(sitk.Cast(label > 0, sitk.sitkUInt8), radius, sitk.sitkBall)
    return mask


def fan_mask(image: sitk.Image, erode_mm: float = 1.0) -> sitk.Image:
    """The field of view of an ultrasound volume (its fan), slightly eroded, as a 0/1 mask.

    The fan is the non-zero region with its holes filled, slice by slice: anechoic tissue inside the fan is
    stored as 0 too, and must stay inside the mask; only the zero region connected to a slice's border (the
    outside of the fan) is left out.
    """
    from scipy.ndimage import binary_fill_holes

    mask = sitk.Cast(image > 0, sitk.sitkUInt8)
    mask = sitk.BinaryMorphologicalClosing(mask, [2, 2, 2])
    arr = sitk.GetArrayFromImage(mask).astype(bool)
    filled = np.stack([binary_fill_holes(s) for s in arr]).astype(np.uint8)
    out = sitk.GetImageFromArray(filled)
    out.CopyInformation(image)
    radius = [max(1, round(erode_mm / s)) for s in image.GetSpacing()]
    return sitk.BinaryErode(out, radius)


ULTRASOUND = ("us", "ultrasound", "trus")


def looks_like_ultrasound(image: sitk.Image, min_zero_fraction: float = 0.05) -> bool:
    """A guess from the image alone: B-mode volumes are scan-converted to 8 bits with the outside of the fan
    set to 0, so an 8-bit image with at least ``min_zero_fraction`` of its voxels exactly 0 is taken for one.

    MR and CT are stored with 12 to 16 bits (or floats); an 8-bit MR with a zeroed background would be taken for
    ultrasound, so say what the moving image is when it matters (the case's ``moving_modality``, or the
    registrar's ``moving_mask`` option).
    """
    if image.GetPixelID() not in (sitk.sitkUInt8, sitk.sitkInt8):
        return False
    return float((sitk.GetArrayViewFromImage(image) == 0).mean()) >= min_zero_fraction


def moving_is_ultrasound(case) -> tuple[bool, str]:
    """Whether a case's moving image is ultrasound, and how that is known.

    The case's ``metadata["moving_modality"]`` decides when it is there ("US", "ultrasound" or "TRUS" mean
    ultrasound; regkit's dataset layout sets "US", since its moving image is ``trus.*``, and ``regkit register
    --moving-modality`` sets what the user says); otherwise :func:`looks_like_ultrasound` guesses from the image.
    """
    declared = (case.metadata or {}).get("moving_modality")
    if declared:
        return str(declared).strip().lower() in ULTRASOUND, f"moving_modality={declared}"
    guess = looks_like_ultrasound(case.moving)
    return guess, f"image test: {'8-bit with a zero-filled outside' if guess else 'not an 8-bit fan image'}"


def moving_mask_for(case, mode: str, erode_mm: float = 1.0,
                    ultrasound: tuple[bool, str] | None = None) -> tuple[sitk.Image | None, str]:
    """The moving mask a registrar uses: the fan of an ultrasound moving image, or none.

    ``mode``: ``"auto"`` (the fan only when :func:`moving_is_ultrasound`, or ``ultrasound``: its answer, when
    the caller has it already), ``"fan"`` (always) or ``"none"``.
    Returns the mask (or None) and a note saying why, for the registration's info.
    """
    mode = check_moving_mask(mode)
    if mode == "none":
        return None, "none (moving_mask=none)"
    if mode == "fan":
        return fan_mask(case.moving, erode_mm), "fan (moving_mask=fan)"
    us, why = ultrasound or moving_is_ultrasound(case)
    return (fan_mask(case.moving, erode_mm), f"fan ({why})") if us else (None, f"none ({why})")


def check_moving_mask(mode) -> str:
    """``mode`` as one of ``"auto"``, ``"fan"`` or ``"none"``, or an :class:`InputError`."""
    mode = str(mode).lower()
    if mode not in ("auto", "fan", "none"):
        raise InputError(f"unknown moving_mask {mode!r}", fix="use 'auto', 'fan' or 'none'")
    return mode
