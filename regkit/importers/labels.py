"""Label channels: one channel of a 3-D, 4-D ``(x, y, z, k)`` or vector label as a binary image, and the
physical centroids of the landmark channels (the channels after the gland) present in both labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from regkit.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk


def read_label_channel(path: str | Path, what: str = "label", channel: int = 0) -> tuple[sitk.Image, int]:
    """Channel ``channel`` of a label as a binary (0/1, uint8) 3-D image, and the number of channels.

    Accepts 3-D labels (one channel), 4-D ``(x, y, z, k)`` labels and multi-component (vector) labels. Values
    above 0.5 are inside.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise InputError(f"the {what} file does not exist", path)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise InputError(f"cannot read the {what}: {last}", path, "give a readable NIfTI label") from None
    channels = 1
    if img.GetDimension() == 4:
        size = list(img.GetSize())
        channels = size[3]
        if not 0 <= channel < channels:
            raise InputError(f"the {what} has {channels} channels; channel {channel} is needed", path)
        size[3] = 0
        img = sitk.Extract(img, size, [0, 0, 0, channel],
                           sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX)
    elif img.GetDimension() != 3:
        raise InputError(f"the {what} is {img.GetDimension()}-D; a 3-D or 4-D (x, y, z, channel) label is needed",
                         path)
    if img.GetNumberOfComponentsPerPixel() > 1:
        channels = img.GetNumberOfComponentsPerPixel()
        if not 0 <= channel < channels:
            raise InputError(f"the {what} has {channels} components; component {channel} is needed", path)
        img = sitk.VectorIndexSelectionCast(img, channel)
    binary = sitk.GetImageFromArray((sitk.GetArrayViewFromImage(img) > 0.5).astype(np.uint8))
    binary.CopyInformation(img)
    return binary, channels


def channel_landmarks(mr_label: Path, us_label: Path, channels: int, voxel_grid: sitk.Image | None) -> dict | None:
    """Paired landmarks from the label channels after the gland (µ-RegPro's landmarks): the physical centroid of
    each channel ``k ≥ 1`` that is non-empty in both labels. ``voxel_grid``: give the labels this grid first."""
    import SimpleITK as sitk

    fixed, moving, used = [], [], []
    for k in range(1, channels):
        points = []
        for path, what in ((mr_label, "MR label"), (us_label, "TRUS label")):
            try:
                img, _ = read_label_channel(path, what, k)
            except InputError:  # the TRUS label has fewer channels
                break
            if voxel_grid is not None and img.GetSize() == voxel_grid.GetSize():
                img.CopyInformation(voxel_grid)
            stats = sitk.LabelShapeStatisticsImageFilter()
            stats.Execute(img)
            if not stats.HasLabel(1):
                break
            points.append(list(stats.GetCentroid(1)))
        if len(points) == 2:
            fixed.append(points[0])
            moving.append(points[1])
            used.append(k)
    if not used:
        return None
    return {"fixed": fixed, "moving": moving, "channels": used,
            "note": "centroids (LPS mm) of the label channels after the gland, present in both labels"}
