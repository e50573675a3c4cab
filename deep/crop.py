"""The networks' input: a box around the MR prostate, the fixed channel, and the moving TRUS resampled in it.

* **Crop box.** The MR prostate label's bounding box in the MR's voxel axes, enlarged by 30 % of its size on
  each side (so 1.6× the box), sampled on a (D, H, W) = 32 × 96 × 96 grid with cell-centred samples: voxel
  (k, j, i) sits at the centre of its cell. The spacing differs per axis and per case, as in the original.
* **Fixed channel.** The MR image or the MR label, sampled once per case (trilinear).
* **Moving channel.** The TRUS read at ``T(p)`` for each box point ``p`` under the current estimate ``T``
  (fixed → moving), trilinear, 0 outside the TRUS volume. Many estimates are resampled in one
  ``grid_sample`` call.
* **Intensities.** Each channel is scaled to [0, 1] separately: images by their 0.5 and 99.5 percentiles
  (over the non-zero voxels, which excludes the black outside of the TRUS fan) and clipped; labels as 0/1.
  (The original code min-max scaled both channels jointly; per-channel scaling keeps the MR contrast
  independent of the TRUS gain.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from regkit.errors import InputError
from regkit.image import ImageGeometry, intensity_window
from regkit.transform import RigidTransform

INPUT_SHAPE = (32, 96, 96)  # (D, H, W)
ENLARGE = 0.3
NORMALIZATION = "percentile-0.5-99.5"  # images: these percentiles of the non-zero voxels → [0, 1]; labels: 0/1
_LEGACY_NORMALIZATION = {"per-channel percentile 0.5-99.5 to [0, 1]; labels 0/1": NORMALIZATION}


def percentiles(normalization: str) -> tuple[float, float]:
    """The (low, high) percentiles of a ``"percentile-LOW-HIGH"`` normalisation (as checkpoints store it)."""
    name = _LEGACY_NORMALIZATION.get(normalization, normalization)
    kind, _, bounds = name.partition("-")
    try:
        low, high = (float(v) for v in bounds.split("-"))
    except ValueError:
        kind = ""
    if kind != "percentile" or not 0 <= low < high <= 100:
        raise InputError(f"unknown input normalisation {normalization!r}",
                         fix=f"regkit reads 'percentile-LOW-HIGH', e.g. {NORMALIZATION!r}")
    return low, high


@dataclass(frozen=True)
class CropBox:
    """An oriented box in MR physical space and its sampling grid.

    Attributes
    ----------
    center : (3,) mm
    axes : (3, 3)
        Columns are the box's x (W), y (H) and z (D) axes in physical space: the MR's direction cosines (with the
        z axis reversed for a left-handed MR, so that the frame is a rotation).
    size : (3,) mm
        Extent along x, y, z.
    shape : (D, H, W)
    """

    center: np.ndarray
    axes: np.ndarray
    size: np.ndarray
    shape: tuple[int, int, int] = INPUT_SHAPE

    @property
    def spacing(self) -> np.ndarray:
        """Sample spacing along x, y, z (mm)."""
        return self.size / np.array(self.shape[::-1], dtype=float)

    @property
    def frame(self) -> RigidTransform:
        """Box frame → physical: box-frame coordinates are mm along the box axes, from the box centre."""
        return RigidTransform.from_rotation_translation(self.axes, self.center)

    def local_points(self) -> np.ndarray:
        """Sample points in the box frame, shape (D, H, W, 3), cell-centred."""
        d, h, w = self.shape
        axes = [(np.arange(n) + 0.5) / n * s - s / 2 for n, s in zip((w, h, d), self.size, strict=True)]
        zz, yy, xx = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
        return np.stack([xx, yy, zz], axis=-1)

    def points(self) -> np.ndarray:
        """Sample points in physical space, shape (D, H, W, 3)."""
        return self.frame.apply(self.local_points().reshape(-1, 3)).reshape(*self.shape, 3)


def crop_box(label: sitk.Image, enlarge: float = ENLARGE, shape: tuple[int, int, int] = INPUT_SHAPE) -> CropBox:
    """The crop box of an MR prostate label (see the module docstring)."""
    a = sitk.GetArrayViewFromImage(label) > 0
    if not a.any():
        raise InputError("the MR prostate label is empty; the crop box needs it")
    geo = ImageGeometry.of(label)
    nz = [np.nonzero(a.any(axis=ax))[0] for ax in ((0, 1), (0, 2), (1, 2))]  # x, y, z index ranges
    lo = np.array([n.min() for n in nz], dtype=float) - 0.5
    hi = np.array([n.max() for n in nz], dtype=float) + 0.5
    extent = (hi - lo) * geo.spacing
    center = geo.to_physical((lo + hi) / 2.0)
    axes = geo.direction.copy()
    if np.linalg.det(axes) < 0:  # a left-handed image (flipped axis): keep the box frame a rotation
        axes[:, 2] = -axes[:, 2]
    return CropBox(center=center, axes=axes, size=extent * (1.0 + 2.0 * enlarge), shape=shape)


class VolumeSampler:
    """A volume on a device, read at physical points by trilinear ``grid_sample`` (0 outside).

    Parameters
    ----------
    image : SimpleITK.Image
    normalize : str
        Intensity scaling to [0, 1]: ``"percentile-LOW-HIGH"`` (see the module docstring), ``"label"`` (0/1)
        or ``"none"``.
    device : torch.device or str
    compact : bool
        Keep the normalised volume as 8-bit (a quarter of the memory; for holding many training cases), and
        expand it to float for each read. Only for "percentile" and "label", whose values lie in [0, 1].
    """

    def __init__(self, image: sitk.Image, normalize: str = NORMALIZATION, device="cpu", compact: bool = False):
        a = sitk.GetArrayFromImage(image).astype(np.float32)
        if normalize == "label":
            a = (a > 0).astype(np.float32)
        elif normalize != "none":
            lo, hi = intensity_window(image, *percentiles(normalize))
            a = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
        if compact and normalize == "none":
            raise InputError("a compact volume needs intensities normalised to [0, 1]")
        self.compact = compact
        if compact:
            self.volume = torch.from_numpy(np.round(a * 255.0).astype(np.uint8))[None, None].to(device)
        else:
            self.volume = torch.from_numpy(a)[None, None].to(device)
        geo = ImageGeometry.of(image)
        size = np.array(geo.size, dtype=float)
        # physical → normalised grid coordinates in [-1, 1] (align_corners=True: -1/+1 = first/last voxel centre)
        to_norm = np.diag(np.append(2.0 / np.maximum(size - 1, 1), 1.0))
        to_norm[:3, 3] = -1.0
        self.physical_to_grid = to_norm @ geo.physical_to_index
        self.device = torch.device(device)

    def _volume(self) -> torch.Tensor:
        return self.volume.float().mul_(1.0 / 255.0) if self.compact else self.volume

    def sample_box(self, box: CropBox, transforms: RigidTransform) -> torch.Tensor:
        """Values on a crop box's grid under a batch of transforms (fixed → this volume): (N, D, H, W).

        The volume read at ``T(p)`` for each of ``box.points()``, but the whole mapping is one affine per
        transform, so no point grid is built or stored.
        """
        t = transforms if transforms.batch_shape else RigidTransform.from_matrix(transforms.matrix[None])
        m = t.matrix.reshape(-1, 4, 4)
        # output normalised coordinates (align_corners=False: cell centres) → box frame → physical → T → grid
        to_box = np.diag(np.append(box.size / 2.0, 1.0))
        theta = self.physical_to_grid @ m @ box.frame.matrix @ to_box
        theta = torch.tensor(theta[:, :3, :], dtype=torch.float32, device=self.device)
        d, h, w = box.shape
        n = len(m)
        grid = F.affine_grid(theta, [n, 1, d, h, w], align_corners=False)
        vol = self._volume()
        out = F.grid_sample(vol.expand(n, *vol.shape[1:]) if n > 1 else vol, grid, mode="bilinear",
                            padding_mode="zeros", align_corners=True)
        return out[:, 0]


class CaseInput:
    """Everything needed to build network inputs for one case, prepared once.

    Parameters
    ----------
    case : regkit.Case
    variant : {"image", "label"}
        Fixed channel: the MR image or the MR prostate label.
    shape, enlarge, normalization
        The network's input grid, crop-box enlargement and intensity scaling, as its checkpoint stores them.
    compact : bool
        Keep only what training needs (the fixed crop, an 8-bit copy of the normalised TRUS, the ground truth
        and the surface points), not the case's images: for holding hundreds of training cases in memory.
    group : str
        The dataset the case comes from, where a training pools several (each one's validation SRE is logged
        apart); "" otherwise.
    """

    def __init__(self, case, variant: str = "image", device="cpu", shape: tuple[int, int, int] = INPUT_SHAPE,
                 enlarge: float = ENLARGE, normalization: str = NORMALIZATION, compact: bool = False,
                 group: str = ""):
        if case.fixed_label is None:
            raise InputError(f"case {case.case_id!r} has no MR prostate label; the deep registrars need it for "
                             "the crop box")
        self.case_id = case.case_id
        self.group = group
        self.ground_truth = case.ground_truth
        self.surface_points = case.surface_points
        self.case = None if compact else case
        self.box = crop_box(case.fixed_label, enlarge=enlarge, shape=tuple(shape))
        self.device = torch.device(device)
        fixed_img = case.fixed_input(variant)
        fixed_sampler = VolumeSampler(fixed_img, "label" if variant == "label" else normalization, device)
        self.fixed = fixed_sampler.sample_box(self.box, RigidTransform.identity((1,)))[0]
        self.moving = VolumeSampler(case.moving, normalization, device, compact=compact)

    @property
    def points(self) -> np.ndarray:
        """The crop box's sample points in physical space, (D, H, W, 3)."""
        return self.box.points()

    def inputs(self, transforms: RigidTransform) -> torch.Tensor:
        """Network input for a batch of estimates: (N, 2, D, H, W), channel 0 fixed, channel 1 moving."""
        moving = self.moving.sample_box(self.box, transforms)
        fixed = self.fixed.expand_as(moving)
        return torch.stack([fixed, moving], dim=1)
