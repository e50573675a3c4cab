"""Label channels and landmarks.

* A label file may be 3-D (one channel), 4-D ``(x, y, z, k)`` or multi-component (vector); each channel is read
  as a binary (0/1, uint8) 3-D image, inside where the value is above 0.5 (:func:`read_label_channels`).
* µ-RegPro and DeepReg store the gland in channel 0 and corresponding landmarks (apex, base, urethra, lesions,
  cysts, calcifications, ...) in the other channels. A landmark is the **physical centroid** (LPS mm, from the
  image header) of its channel; a channel empty in either modality is skipped, with the reason recorded
  (:func:`corresponding_landmarks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from regkit.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

LANDMARK_NOTE = "physical centroids (LPS mm) of the label channels after the gland, non-empty in both labels"


def _read_label_file(path: str | Path, what: str) -> sitk.Image:
    import SimpleITK as sitk

    from regkit.image_checks import check_image_file

    path = Path(path)
    if not path.exists():
        raise InputError(f"the {what} file does not exist", path)
    check_image_file(path, what)  # header geometry ITK would silently replace (regkit.image_checks)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise InputError(f"cannot read the {what}: {last}", path, "give a readable NIfTI label") from None


def _channel_count(img: sitk.Image, what: str, path) -> int:
    if img.GetDimension() == 4:
        return img.GetSize()[3]
    if img.GetDimension() != 3:
        raise InputError(f"the {what} is {img.GetDimension()}-D; a 3-D or 4-D (x, y, z, channel) label is needed",
                         path)
    return max(1, img.GetNumberOfComponentsPerPixel())


def _channel(img: sitk.Image, channel: int) -> sitk.Image:
    import SimpleITK as sitk

    if img.GetDimension() == 4:
        size = list(img.GetSize())
        size[3] = 0
        img = sitk.Extract(img, size, [0, 0, 0, channel], sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX)
    if img.GetNumberOfComponentsPerPixel() > 1:
        img = sitk.VectorIndexSelectionCast(img, channel)
    binary = sitk.GetImageFromArray((sitk.GetArrayViewFromImage(img) > 0.5).astype(np.uint8))
    binary.CopyInformation(img)
    return binary


def read_label_channel(path: str | Path, what: str = "label", channel: int = 0) -> tuple[sitk.Image, int]:
    """Channel ``channel`` of a label as a binary (0/1, uint8) 3-D image, and the number of channels.

    Accepts 3-D labels (one channel), 4-D ``(x, y, z, k)`` labels and multi-component (vector) labels. Values
    above 0.5 are inside.
    """
    img = _read_label_file(path, what)
    channels = _channel_count(img, what, path)
    if not 0 <= channel < channels:
        raise InputError(f"the {what} has {channels} channels; channel {channel} is needed", path)
    return _channel(img, channel), channels


def read_label_channels(path: str | Path, what: str = "label") -> list[sitk.Image]:
    """Every channel of a label file as binary (0/1, uint8) 3-D images, reading the file once."""
    img = _read_label_file(path, what)
    return [_channel(img, k) for k in range(_channel_count(img, what, path))]


def label_centroid(label: sitk.Image) -> np.ndarray | None:
    """The physical centroid (LPS mm) of a binary label's inside, or None when it is empty."""
    import SimpleITK as sitk

    idx = np.argwhere(sitk.GetArrayViewFromImage(label) > 0)
    if not len(idx):
        return None
    from regkit.image import ImageGeometry

    return ImageGeometry.of(label).to_physical(idx[:, ::-1].mean(axis=0)[None].astype(float))[0]


@dataclass
class Landmarks:
    """Corresponding landmarks: ``fixed[i]`` (MR) and ``moving[i]`` (TRUS) are the same anatomical point, LPS mm.

    ``skipped`` names the landmarks left out and why (empty in one modality, missing channel, ...).
    """

    names: list[str]
    fixed: np.ndarray
    moving: np.ndarray
    skipped: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fixed = np.asarray(self.fixed, float).reshape(-1, 3)
        self.moving = np.asarray(self.moving, float).reshape(-1, 3)
        if len(self.names) != len(self.fixed) or self.fixed.shape != self.moving.shape:
            raise InputError(f"landmarks need one name and one MR and one TRUS point each; got {len(self.names)} "
                             f"names, {len(self.fixed)} MR and {len(self.moving)} TRUS points")

    def __len__(self) -> int:
        return len(self.names)

    def to_json(self, **extra) -> dict:
        """The ``"landmarks"`` entry of ``case.json`` (read by :mod:`regkit.evaluation.measures`)."""
        doc = {"names": list(self.names), "fixed": np.round(self.fixed, 4).tolist(),
               "moving": np.round(self.moving, 4).tolist(), "units": "mm (LPS physical)", **extra}
        if self.skipped:
            doc["skipped"] = dict(self.skipped)
        return doc


def corresponding_landmarks(mr_channels: dict[str, sitk.Image], us_channels: dict[str, sitk.Image]) -> Landmarks:
    """Landmarks from label channels of the same names: the physical centroid of each channel non-empty in both.

    Channels in one modality only, or empty in one, are skipped and the reason recorded.
    """
    names, fixed, moving, skipped = [], [], [], {}
    for name in list(mr_channels) + [n for n in us_channels if n not in mr_channels]:
        if name not in mr_channels or name not in us_channels:
            skipped[name] = f"only in the {'MR' if name in mr_channels else 'TRUS'} label"
            continue
        a, b = label_centroid(mr_channels[name]), label_centroid(us_channels[name])
        if a is None or b is None:
            empty = " and ".join(m for m, c in (("MR", a), ("TRUS", b)) if c is None)
            skipped[name] = f"empty in the {empty} label"
            continue
        names.append(name)
        fixed.append(a)
        moving.append(b)
    return Landmarks(names, np.reshape(fixed, (-1, 3)), np.reshape(moving, (-1, 3)), skipped)


def channel_landmarks(mr_label: Path, us_label: Path, channels: int, voxel_grid: sitk.Image | None) -> dict | None:
    """Paired landmarks from the label channels after the gland (µ-RegPro's landmarks), as ``case.json``'s
    ``"landmarks"`` entry, or None when no channel is non-empty in both. ``voxel_grid``: give the labels this
    grid first."""
    mr = read_label_channels(mr_label, "MR label")[1:channels]
    us = read_label_channels(us_label, "TRUS label")[1:channels]
    if voxel_grid is not None:
        for img in mr + us:
            if img.GetSize() == voxel_grid.GetSize():
                img.CopyInformation(voxel_grid)
    lm = corresponding_landmarks({f"channel{k}": img for k, img in enumerate(mr, 1)},
                                 {f"channel{k}": img for k, img in enumerate(us, 1)})
    if not len(lm):
        return None
    return lm.to_json(channels=[int(n.removeprefix("channel")) for n in lm.names], note=LANDMARK_NOTE)
